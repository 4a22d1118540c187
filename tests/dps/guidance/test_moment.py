"""`moment` (dps/guidance/moment.py) on Gaussian priors, where it is exact: with pixel rendering and
the exact denoiser, its posterior denoiser must equal the exact E[x0 | x_t, y] (dense float64)."""

import pytest
import torch

from comfyui_dps.dps.guidance import METHODS, GuidanceTrace, core, moment
from comfyui_dps.dps.operators import (FourierUndersampling, GaussianBlur, PhaseRetrieval, RandomInpainting,
                                       SuperResolution)
from comfyui_dps.dps.measurement import Measurement
from comfyui_dps.dps.noise import GaussianNoise

from testkit.gaussian_case import GaussianCase

MOMENT = METHODS["moment"]
OPERATORS = {
    "random inpainting": lambda: RandomInpainting(0.6, seed=1),
    "bicubic SR": lambda: SuperResolution(2, "bicubic"),
    "reflect blur": lambda: GaussianBlur(3, 0.8),
    "Fourier": lambda: FourierUndersampling(2.0, 0.25, seed=2),
}
LEVELS = [(1.0, 5.0), (1.0, 0.3), (0.4, 0.6)]  # (alpha, sigma): eps early, eps late, flow mid-way


def run(case, x, alpha, sigma, strength=1.0, steps=None, trace=None):
    return MOMENT.call(steps=steps, x=x, sigma=torch.tensor([sigma], dtype=torch.float64),
                       alpha=torch.tensor([alpha], dtype=torch.float64), denoise=case.denoiser(alpha, sigma),
                       render=core.PixelRenderer(), measurement=case.measurement, strength=strength, trace=trace)


@pytest.mark.parametrize("alpha,sigma", LEVELS)
@pytest.mark.parametrize("name", list(OPERATORS))
def test_moment_is_the_exact_posterior_mean_for_a_gaussian_prior(name, alpha, sigma, monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))  # the formula itself, not the guard
    monkeypatch.setattr(moment, "TOLERANCE", 1e-12)  # CG to convergence: the solve is then exact
    case = GaussianCase(OPERATORS[name]())
    x = case.noisy(2, alpha, sigma)
    guided = run(case, x, alpha, sigma, steps=200)
    torch.testing.assert_close(guided, case.posterior_mean(x, alpha, sigma), rtol=1e-7, atol=1e-8)


def test_at_its_defaults_moment_is_close_to_exact(monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))
    case = GaussianCase(GaussianBlur(3, 0.8))
    x = case.noisy(3, 1.0, 0.5)
    exact = case.posterior_mean(x, 1.0, 0.5)
    prior = case.denoiser(1.0, 0.5)(x)
    error = (run(case, x, 1.0, 0.5) - exact).flatten(1).norm(dim=1)
    assert (error / (exact - prior).flatten(1).norm(dim=1)).max() < 0.05


def test_strength_scales_the_update_and_the_trace_records_the_estimates_residual():
    case = GaussianCase(RandomInpainting(0.6, seed=1))
    x = case.noisy(2, 1.0, 0.5)
    denoised = case.denoiser(1.0, 0.5)(x)
    trace = GuidanceTrace()
    full = run(case, x, 1.0, 0.5, trace=trace)
    half = run(case, x, 1.0, 0.5, strength=0.5)
    torch.testing.assert_close(half - denoised, (full - denoised) / 2)
    torch.testing.assert_close(torch.tensor(trace.residuals[0], dtype=torch.float64),
                               case.measurement.normalized_residual((denoised + 1) / 2))


def test_a_sample_does_not_depend_on_its_batch_mates():
    case = GaussianCase(SuperResolution(2, "bicubic"))
    x = case.noisy(3, 1.0, 0.8)
    together = run(case, x, 1.0, 0.8)
    alone = run(case, x[1:2], 1.0, 0.8)
    torch.testing.assert_close(together[1:2], alone, rtol=1e-10, atol=1e-12)


def test_moment_refuses_a_non_linear_operator_naming_the_mode():
    assert MOMENT.needs_linear and MOMENT.through_model and MOMENT.inner_steps
    phase = Measurement(torch.rand(1, 3, 16, 16), PhaseRetrieval(2.0), GaussianNoise(0.1))
    with pytest.raises(ValueError, match="guidance_mode: 'moment' needs a linear operator"):
        MOMENT.check(phase)
