"""The guidance methods (dps/guidance/dps.py, fast.py) against their formulas on problems where
every term is known: a linear denoiser D(x) = a x and pixel rendering (x + 1) / 2, so the
likelihood gradient is exact and hand-computable."""

import pytest
import torch

from comfyui_dps.dps.guidance import METHODS, GuidanceTrace, core
from comfyui_dps.dps.guidance.likelihood import variance_bound
from comfyui_dps.dps.measurement import Measurement
from comfyui_dps.dps.noise import GaussianNoise
from comfyui_dps.dps.operators import Inpainting

SHRINK = 0.8  # D(x) = SHRINK * x


def problem(batch=2):
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(4, 4, generator=generator, dtype=torch.float64) > 0.5
    y = torch.rand(1, 3, 4, 4, generator=generator, dtype=torch.float64) * (~mask).double()  # A's range
    measurement = Measurement(y, Inpainting(mask), GaussianNoise(0.1))
    x = torch.randn(batch, 3, 4, 4, generator=generator, dtype=torch.float64)
    return measurement, mask, x


def expected(x, measurement, mask, sigma, alpha, factor, through_model):
    """D - factor * grad of chi2 / (2 v), v = clamp(chi2 / m, 1, bound) per sample, by hand."""
    denoised = SHRINK * x
    residual = (measurement.y - (denoised + 1) / 2) * (~mask).double()
    chi2 = (residual / 0.1).pow(2).sum(dim=(1, 2, 3))
    m = measurement.num_elements
    v = torch.minimum((chi2 / m).clamp(min=1), variance_bound(measurement, sigma, alpha))
    grad_x0 = -residual / 0.1**2 / 2 / v.reshape(-1, 1, 1, 1)  # chain rule through (x + 1) / 2
    grad = grad_x0 * SHRINK if through_model else grad_x0
    return denoised - factor.reshape(-1, 1, 1, 1) * grad


@pytest.mark.parametrize("name", ["dps", "fast"])
def test_method_matches_its_formula_per_sample(name, monkeypatch):
    monkeypatch.setattr(core, "MAX_CORRECTION_RATIO", float("inf"))  # the formula itself, not the guard
    measurement, mask, x = problem()
    sigma = torch.tensor([3.0, 0.2], dtype=torch.float64)
    alpha = torch.tensor([1.0, 1.0], dtype=torch.float64)
    trace = GuidanceTrace()
    guided = METHODS[name].function(x=x, sigma=sigma, alpha=alpha, denoise=lambda z: SHRINK * z,
                                    render=core.PixelRenderer(), measurement=measurement, strength=1.0, trace=trace)
    factor = sigma**2 / alpha if name == "dps" else sigma**2 / (alpha**2 + sigma**2)
    torch.testing.assert_close(guided, expected(x, measurement, mask, sigma, alpha, factor, name == "dps"),
                               rtol=1e-10, atol=1e-12)
    assert len(trace.residuals) == 1 and len(trace.residuals[0]) == 2


@pytest.mark.parametrize("name", ["dps", "fast"])
def test_strength_scales_the_correction_and_zero_strength_returns_the_denoiser(name):
    measurement, _, x = problem()
    sigma, alpha = torch.tensor([0.5, 0.5], dtype=torch.float64), torch.ones(2, dtype=torch.float64)

    def run(strength):
        return METHODS[name].function(x=x, sigma=sigma, alpha=alpha, denoise=lambda z: SHRINK * z,
                                      render=core.PixelRenderer(), measurement=measurement, strength=strength)

    torch.testing.assert_close(run(0.0), SHRINK * x)
    torch.testing.assert_close(run(2.0) - SHRINK * x, 2 * (run(1.0) - SHRINK * x), rtol=1e-10, atol=1e-12)


def test_each_sample_is_independent_of_its_batch_mates():
    measurement, _, x = problem(batch=3)
    sigma, alpha = torch.tensor([1.0]), torch.tensor([1.0])
    for name, guidance in METHODS.items():
        kwargs = dict(sigma=sigma, alpha=alpha, denoise=lambda z: SHRINK * z, render=core.PixelRenderer(),
                      measurement=measurement, strength=1.0)
        together = guidance.function(x=x, **kwargs)
        alone = guidance.function(x=x[1:2], **kwargs)
        torch.testing.assert_close(together[1:2], alone, rtol=1e-12, atol=1e-14, msg=name)


def test_dps_gives_no_correction_where_alpha_vanishes():
    """Flow models at sigma = 1: x_t holds nothing of x0, Tweedie's factor is taken as 0."""
    measurement, _, x = problem()
    guided = METHODS["dps"].function(x=x, sigma=torch.tensor([1.0]), alpha=torch.tensor([0.0]),
                                     denoise=lambda z: SHRINK * z, render=core.PixelRenderer(),
                                     measurement=measurement, strength=1.0)
    torch.testing.assert_close(guided, SHRINK * x)
