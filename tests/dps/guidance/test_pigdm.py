"""`pigdm` (dps/guidance/pigdm.py) against its formula where every term is known: a linear
denoiser D(x) = SHRINK x and pixel rendering (x + 1) / 2, so J = SHRINK / 2 and

    w = (s c^2 A A^T + Sigma_y)^{-1} (y - A (D + 1) / 2),   d = sigma^2 / alpha * J A^T w,
    D_y = D + strength * beta * d

with s the solve's scale (from the residual where A A^T is a multiple of I, else the spectral
estimate of the covariance, which for this denoiser is sigma^2 / alpha * SHRINK) and beta the step scale set by the covariance the model shows along A^T w, computed here with
dense float64 matrices; and against the exact posterior denoiser of Gaussian priors whose
variance is not the unit variance that r^2 assumes."""

import pytest
import torch

from comfyui_dps.dps.guidance import METHODS, GuidanceTrace, cg, core, gram, pigdm
from comfyui_dps.dps.guidance.likelihood import RENDER_SCALE
from comfyui_dps.dps.measurement import Measurement, as_real, simulate
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise
from comfyui_dps.dps.operators import (FourierUndersampling, GaussianBlur, Inpainting, PhaseRetrieval,
                                       RandomInpainting, SuperResolution)
from testkit.gaussian_case import dense

SHRINK = 0.8
PIGDM = METHODS["pigdm"].function
OPERATORS = {
    "random inpainting": lambda: RandomInpainting(0.7, seed=1),
    "average SR": lambda: SuperResolution(2, "average"),
    "bicubic SR": lambda: SuperResolution(2, "bicubic"),
    "reflect blur": lambda: GaussianBlur(3, 0.8),
    "Fourier": lambda: FourierUndersampling(2.0, 0.25, seed=2),
}


def problem(operator, noise=None, batch=2, channels=1):
    noise = noise or GaussianNoise(0.05)
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(1, channels, 4, 4, generator=generator, dtype=torch.float64)
    measurement = simulate(truth, operator, noise, seed=3)
    x = 2 * torch.randn(batch, channels, 4, 4, generator=generator, dtype=torch.float64)
    return measurement, x


def expected(x, measurement, sigma, alpha, strength):
    shape = x.shape[1:]
    matrix = dense(measurement.operator, shape)
    denoised = SHRINK * x
    out = []
    for i in range(x.shape[0]):
        prediction = matrix @ ((denoised[i].reshape(-1) + 1) / 2)
        residual = as_real(measurement.y[0]).reshape(-1) - prediction
        variance = torch.broadcast_to(measurement.noise.std(measurement.y), as_real(measurement.y).shape)[0]
        bound = sigma[i]**2 / (alpha[i]**2 + sigma[i]**2) * RENDER_SCALE**2
        noise_variances = variance.reshape(-1).square()
        factor = sigma[i]**2 / alpha[i] if alpha[i] >= core.MIN_ALPHA else 0.0
        if gram.closed_form(measurement.operator) in pigdm.ISOTROPIC_GRAM:
            # The solve's scale: what the residual implies, (||r||^2 - tr Sigma_y) / tr(A^T A), at most r^2 c^2.
            scale = ((residual @ residual - noise_variances.sum()) / matrix.square().sum()).clamp(min=0, max=bound)
        else:
            # The spectral estimate of Cov[x0 | x_t] for D = SHRINK x: factor * SHRINK I, seen through (x + 1) / 2.
            scale = factor * SHRINK * RENDER_SCALE**2
        system = scale * matrix @ matrix.T + torch.diag(noise_variances)
        inverse_noise = 1 / noise_variances
        back = matrix.T @ torch.linalg.solve(system, residual)
        g = SHRINK / 2 * back
        # <v, d> with v = A_r^T w = back / 2 and d = factor * g: the model's covariance along v.
        covariance = (back / 2) @ (factor * g)
        a = covariance / (back @ back)
        forward = matrix @ back
        beta = (forward @ (inverse_noise * residual)) / (a * forward @ (inverse_noise * forward) + back @ back)
        beta = max(float(beta), 0.0) if covariance > 0 else 1.0
        out.append(denoised[i] + strength * beta * factor * g.reshape(shape))
    return torch.stack(out)


@pytest.fixture(autouse=True)
def exact_trace(monkeypatch):
    """The formula tests take tr(A^T A) exactly; test_operator_trace checks the estimate itself."""
    monkeypatch.setattr(pigdm, "operator_trace", lambda operator, shape, like: dense(operator, shape).square().sum())


def run(measurement, x, sigma, alpha, strength=1.0, trace=None, render=None):
    return PIGDM(x=x, sigma=sigma, alpha=alpha, denoise=lambda z: SHRINK * z, render=render or core.PixelRenderer(),
                 measurement=measurement, strength=strength, trace=trace)


def test_a_renderer_with_a_data_range_clamps_the_estimate_to_it_and_nothing_else():
    measurement, x = problem(OPERATORS[next(iter(OPERATORS))]())
    x = 3 * x  # estimates well outside [-1, 1]
    sigma, alpha = torch.tensor([3.0, 0.2], dtype=torch.float64), torch.tensor([1.0, 0.7], dtype=torch.float64)
    free = run(measurement, x, sigma, alpha)
    bounded = run(measurement, x, sigma, alpha, render=core.PixelRenderer(data_range=(-1.0, 1.0)))
    assert free.abs().max() > 1.5
    torch.testing.assert_close(bounded, free.clamp(-1, 1), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(OPERATORS))
def test_pigdm_matches_its_formula_per_sample(name, monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))  # the formula itself, not the guard
    monkeypatch.setattr(cg, "TOLERANCE", 1e-12)  # conjugate gradients run to convergence here
    measurement, x = problem(OPERATORS[name]())
    sigma = torch.tensor([3.0, 0.2], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.7], dtype=torch.float64)
    trace = GuidanceTrace()
    guided = run(measurement, x, sigma, alpha, strength=1.5, trace=trace)
    torch.testing.assert_close(guided, expected(x, measurement, sigma, alpha, 1.5), rtol=1e-9, atol=1e-10)
    # The trace holds the normalised residual of the current estimate, as for every method.
    torch.testing.assert_close(torch.tensor(trace.residuals[0], dtype=torch.float64),
                               measurement.normalized_residual((SHRINK * x + 1) / 2))


@pytest.mark.parametrize("name", ["random inpainting", "average SR"])
@pytest.mark.parametrize("prior_std", [0.3, 1.0, 2.0])
def test_pigdm_is_the_exact_posterior_denoiser_of_an_isotropic_gaussian_prior_of_any_variance(
        name, prior_std, monkeypatch):
    """Prior N(mu, s^2 I) in model space: D and Cov[x0 | x_t] = k I are known in closed form, and
    where A A^T is a multiple of I pigdm must give E[x0 | x_t, y], whatever s (r_t^2 assumes s = 1).
    Masks solve with the spectral estimate of the covariance, read off D's response to x_t, which a
    prior mean would confound: there the prior is centred (the estimate is then k I exactly), and
    conjugate gradients run to convergence."""
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))
    monkeypatch.setattr(cg, "TOLERANCE", 1e-12)
    measurement, x = problem(OPERATORS[name](), batch=3)
    generator = torch.Generator().manual_seed(4)
    mu = 0.5 * torch.randn(1, 1, 4, 4, generator=generator, dtype=torch.float64)
    if gram.closed_form(measurement.operator) not in pigdm.ISOTROPIC_GRAM:
        mu = torch.zeros_like(mu)
    sigma = torch.tensor([8.0, 1.0, 0.05], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.8, 0.95], dtype=torch.float64)
    s2 = prior_std**2
    gain = (alpha * s2 / (alpha**2 * s2 + sigma**2)).reshape(-1, 1, 1, 1)
    k = s2 * sigma**2 / (alpha**2 * s2 + sigma**2)

    def denoise(z):
        return mu + gain * (z - alpha.reshape(-1, 1, 1, 1) * mu)

    guided = PIGDM(x=x, sigma=sigma, alpha=alpha, denoise=denoise, render=core.PixelRenderer(),
                   measurement=measurement, strength=1.0)
    matrix = dense(measurement.operator, x.shape[1:])
    noise = measurement.noise.std(measurement.y).square()
    for i in range(x.shape[0]):
        mean = denoise(x)[i].reshape(-1)
        residual = measurement.y[0].reshape(-1) - matrix @ ((mean + 1) / 2)
        image_cov = k[i] / 4  # the renderer halves the spread
        system = image_cov * matrix @ matrix.T + noise * torch.eye(matrix.shape[0], dtype=torch.float64)
        exact = mean + 2 * image_cov * matrix.T @ torch.linalg.solve(system, residual)
        torch.testing.assert_close(guided[i].reshape(-1), exact, rtol=1e-9, atol=1e-10)


def test_pigdm_weights_poisson_noise_per_element(monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))
    measurement, x = problem(SuperResolution(2, "average"), noise=PoissonNoise(50.0), channels=3)
    sigma, alpha = torch.tensor([0.5, 1.5], dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    torch.testing.assert_close(run(measurement, x, sigma, alpha), expected(x, measurement, sigma, alpha, 1.0),
                               rtol=1e-9, atol=1e-10)


def test_pigdm_at_the_default_cg_tolerance_stays_within_it(monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))
    measurement, x = problem(GaussianBlur(3, 0.8))
    sigma, alpha = torch.tensor([3.0, 0.2], dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    reference = expected(x, measurement, sigma, alpha, 1.0)
    error = run(measurement, x, sigma, alpha) - reference
    correction = reference - SHRINK * x
    assert (error.flatten(1).norm(dim=1) / correction.flatten(1).norm(dim=1)).max() < 10 * cg.TOLERANCE


def test_pigdm_gives_no_correction_where_alpha_vanishes_and_at_strength_zero():
    measurement, x = problem(RandomInpainting(0.5, seed=0))
    sigma, alpha = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    guided = run(measurement, x, sigma, alpha)
    torch.testing.assert_close(guided[0], SHRINK * x[0])
    assert not torch.equal(guided[1], SHRINK * x[1])
    torch.testing.assert_close(run(measurement, x, sigma, alpha, strength=0.0), SHRINK * x)


def test_pigdm_keeps_the_denoisers_dtype():
    measurement, x = problem(Inpainting(torch.zeros(4, 4)))
    guided = PIGDM(x=x.half(), sigma=torch.tensor([0.5]), alpha=torch.tensor([1.0]),
                   denoise=lambda z: SHRINK * z, render=core.PixelRenderer(),
                   measurement=measurement.to(dtype=torch.float32), strength=1.0)
    assert guided.dtype == torch.float16 and torch.isfinite(guided).all()


def test_pigdm_refuses_a_non_linear_operator_naming_the_mode():
    entry = METHODS["pigdm"]
    assert entry.needs_linear and entry.through_model
    phase = Measurement(torch.rand(1, 3, 16, 16), PhaseRetrieval(2.0), GaussianNoise(0.1))
    with pytest.raises(ValueError, match="guidance_mode: 'pigdm' needs a linear operator, but .*phase"):
        entry.check(phase)


@pytest.mark.parametrize("operator", [GaussianBlur(5, 1.0), SuperResolution(2, "bicubic"), RandomInpainting(0.6, seed=2),
                                      FourierUndersampling(2.0, 0.25, seed=2)], ids=lambda o: o.name)
def test_operator_trace_estimates_the_trace_of_a_transpose_a(operator):
    """The Hutchinson estimate pigdm's solve scale uses, against the dense trace (exact for masks)."""
    shape = (3, 16, 16)
    exact = dense(operator, shape).square().sum()
    estimate = pigdm.operator_trace(operator, shape, torch.zeros(1, dtype=torch.float64))
    assert abs(estimate / exact - 1) < 0.05
