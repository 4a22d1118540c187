"""`proximal` (dps/guidance/proximal.py): for a unit-variance prior and, on pixel models, for any
stationary prior (whose covariance the spectral estimate recovers) its data-consistency step is the
exact posterior mean; its latent fit is steepest descent
with exact line search, checked on a linear "decoder"; it never differentiates the model."""

import pytest
import torch

from comfyui_dps.dps.guidance import METHODS, GuidanceTrace, cg, core, proximal
from comfyui_dps.dps.measurement import Measurement, simulate
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise
from comfyui_dps.dps.operators import (Colorization, FourierUndersampling, GaussianBlur, Inpainting, PhaseRetrieval,
                                       RandomInpainting, SuperResolution)
from testkit.gaussian_case import GaussianCase

PROXIMAL = METHODS["proximal"]
OPERATORS = {
    "random inpainting": lambda: RandomInpainting(0.6, seed=1),
    "average SR": lambda: SuperResolution(2, "average"),
    "bicubic SR": lambda: SuperResolution(2, "bicubic"),
    "reflect blur": lambda: GaussianBlur(3, 0.8),
    "circular blur": lambda: GaussianBlur(3, 0.8, boundary="circular"),
    "Fourier": lambda: FourierUndersampling(2.0, 0.25, seed=2),
}


BOX = torch.zeros(6, 6)
BOX[2:4, 1:5] = 1  # a 2x4 hole


def levels(alpha, sigma):
    return torch.tensor([sigma], dtype=torch.float64), torch.tensor([alpha], dtype=torch.float64)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 5.0), (1.0, 0.3), (0.4, 0.6)])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_proximal_is_the_exact_posterior_mean_for_a_unit_variance_prior(name, alpha, sigma, monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))
    monkeypatch.setattr(cg, "TOLERANCE", 1e-12)  # conjugate gradients (reflect blur, bicubic) to convergence
    case = GaussianCase(OPERATORS[name](), isotropic=True)
    x = case.noisy(2, alpha, sigma)
    sig, alp = levels(alpha, sigma)
    guided = PROXIMAL.function(x=x, sigma=sig, alpha=alp, denoise=case.denoiser(alpha, sigma),
                               render=core.PixelRenderer(), measurement=case.measurement, strength=1.0)
    torch.testing.assert_close(guided, case.posterior_mean(x, alpha, sigma), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 5.0), (1.0, 0.3), (0.4, 0.6)])
@pytest.mark.parametrize("name", list(OPERATORS) + ["box"])
def test_proximal_is_the_exact_posterior_mean_for_a_stationary_correlated_prior(name, alpha, sigma, monkeypatch):
    """Pixel models: the prior term takes the covariance the denoiser shows in each frequency ring
    (spectral.py), which for a stationary prior (here a smooth spectrum, luma-like: variance falling
    with frequency) is exact, so the step is E[x0 | x_t, y] however correlated the prior is."""
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))
    monkeypatch.setattr(cg, "TOLERANCE", 1e-12)
    operator = Inpainting(BOX) if name == "box" else OPERATORS[name]()
    case = GaussianCase(operator, shape=(1, 6, 6), stationary=lambda ring: 0.5 / (1 + ring.square()))
    x = case.noisy(2, alpha, sigma)
    sig, alp = levels(alpha, sigma)
    guided = PROXIMAL.function(x=x, sigma=sig, alpha=alp, denoise=case.denoiser(alpha, sigma),
                               render=core.PixelRenderer(), measurement=case.measurement, strength=1.0)
    torch.testing.assert_close(guided, case.posterior_mean(x, alpha, sigma), rtol=1e-5, atol=1e-6)


def test_strength_is_the_weight_of_the_prior_variance():
    """lambda -> infinity keeps only the data: on a mask the measured pixels become y exactly."""
    case = GaussianCase(RandomInpainting(0.5, seed=0), isotropic=True)
    x = case.noisy(1, 1.0, 0.5)
    sig, alp = levels(1.0, 0.5)
    guided = PROXIMAL.function(x=x, sigma=sig, alpha=alp, denoise=case.denoiser(1.0, 0.5),
                               render=core.PixelRenderer(), measurement=case.measurement, strength=1e9)
    keep = case.measurement.operator.keep_weights(x).bool().expand_as(x)
    torch.testing.assert_close(((guided + 1) / 2)[keep], case.measurement.y.expand_as(x)[keep])


def test_a_renderer_with_a_data_range_clamps_the_estimate_to_it_and_nothing_else():
    """Pixel models of images: E[x0 | x_t, y] lies in [-1, 1], so the step is projected onto it;
    without a range (latent models) it is left as solved."""
    case = GaussianCase(Inpainting(BOX), shape=(1, 6, 6), stationary=lambda ring: 0.5 / (1 + ring.square()))
    x = 6 * case.noisy(2, 1.0, 0.3)  # estimates well outside [-1, 1]
    sig, alp = levels(1.0, 0.3)

    def run(render):
        return PROXIMAL.function(x=x, sigma=sig, alpha=alp, denoise=case.denoiser(1.0, 0.3), render=render,
                                 measurement=case.measurement, strength=1.0)

    free = run(core.PixelRenderer())
    bounded = run(core.PixelRenderer(data_range=(-1.0, 1.0)))
    assert free.abs().max() > 1.5
    torch.testing.assert_close(bounded, free.clamp(-1, 1), rtol=0, atol=0)


class LinearDecoder:
    """A linear, non-affine renderer: image = W z (a 'decoder' with an exact least-squares inverse)."""

    affine = False

    def __init__(self, n, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.matrix = torch.eye(n, dtype=torch.float64) + 0.3 * torch.randn(n, n, generator=generator,
                                                                                 dtype=torch.float64) / n**0.5
        self.calls = 0

    def __call__(self, z):
        self.calls += 1
        return (z.reshape(z.shape[0], -1) @ self.matrix.T).reshape(z.shape)

    def encode(self, image):
        return torch.linalg.solve(self.matrix, image.reshape(image.shape[0], -1).T).T.reshape(image.shape)


def test_the_latent_fit_converges_to_the_decoders_inverse_and_each_step_lowers_the_misfit():
    decoder = LinearDecoder(16)
    generator = torch.Generator().manual_seed(4)
    start = torch.randn(2, 1, 4, 4, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 1, 4, 4, generator=generator, dtype=torch.float64)
    misfits = []
    for steps in range(4):
        z_in, image = proximal._rendered_with_graph(decoder, start)
        z = proximal.fit_latent(decoder, z_in, image, target, steps)
        misfits.append((decoder(z) - target).flatten(1).norm(dim=1))
    assert all((later < earlier).all() for earlier, later in zip(misfits, misfits[1:], strict=False))
    z_in, image = proximal._rendered_with_graph(decoder, start)
    torch.testing.assert_close(proximal.fit_latent(decoder, z_in, image, target, 200), decoder.encode(target),
                               rtol=1e-6, atol=1e-6)


def test_latent_models_pass_steps_and_never_differentiate_the_denoiser():
    decoder = LinearDecoder(16)
    case = GaussianCase(SuperResolution(2, "average"), isotropic=True)
    x = case.noisy(2, 1.0, 0.4)
    sig, alp = levels(1.0, 0.4)
    exact = case.denoiser(1.0, 0.4)

    def denoise(z):
        assert not torch.is_grad_enabled() or not z.requires_grad  # no model Jacobian is ever asked for
        return exact(z)

    trace = GuidanceTrace()
    PROXIMAL.call(steps=2, x=x, sigma=sig, alpha=alp, denoise=denoise, render=decoder,
                  measurement=case.measurement, strength=1.0, trace=trace)
    # Per step a rendering (the first step's is the rendering of D(x_t) itself) and a probe.
    assert decoder.calls == 2 * 2
    assert len(trace.residuals[0]) == 2


def test_poisson_noise_and_colourisation_stay_finite_and_move_towards_y():
    for operator, noise in [(Colorization(), GaussianNoise(0.05)), (SuperResolution(2, "average"), PoissonNoise(30.0))]:
        generator = torch.Generator().manual_seed(0)
        truth = torch.rand(1, 3, 8, 8, generator=generator)
        measurement = simulate(truth, operator, noise, seed=1)
        x = torch.randn(2, 3, 8, 8, generator=generator)
        guided = PROXIMAL.function(x=x, sigma=torch.tensor([0.3]), alpha=torch.tensor([1.0]),
                                   denoise=lambda z: 0.5 * z, render=core.PixelRenderer(), measurement=measurement,
                                   strength=1.0)
        before = measurement.normalized_residual((0.5 * x + 1) / 2)
        after = measurement.normalized_residual((guided + 1) / 2)
        assert torch.isfinite(guided).all() and (after < before).all()


def test_proximal_refuses_a_non_linear_operator_naming_the_mode():
    phase = Measurement(torch.rand(1, 3, 16, 16), PhaseRetrieval(2.0), GaussianNoise(0.1))
    with pytest.raises(ValueError, match="guidance_mode: 'proximal' needs a linear operator"):
        PROXIMAL.check(phase)
