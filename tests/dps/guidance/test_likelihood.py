"""The plug-in variance of the guidance and its bound (dps/guidance/likelihood.py), against hand-computed values."""

import pytest
import torch

from comfyui_dps.dps.guidance.core import PixelRenderer, posterior_scale, prior_covariance_scale
from comfyui_dps.dps.guidance.dps import dps_guidance
from comfyui_dps.dps.guidance.likelihood import RENDER_SCALE, likelihood_loss, plug_in_variance, variance_bound
from comfyui_dps.dps.measurement import Measurement, simulate
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise
from comfyui_dps.dps.operators import Inpainting


def test_variance_bound_is_one_plus_the_rendered_prior_variance_over_the_noise_variance():
    y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    measurement = Measurement(y, Inpainting(torch.ones(8, 8)), GaussianNoise(0.1))
    sigma = torch.tensor([2.0, 0.1], dtype=torch.float64)
    alpha = torch.ones(2, dtype=torch.float64)
    expected = 1 + RENDER_SCALE**2 * sigma**2 / (1 + sigma**2) / 0.1**2
    torch.testing.assert_close(variance_bound(measurement, sigma, alpha), expected, rtol=1e-12, atol=0)
    # Flow models: alpha = 1 - sigma; at sigma = 1 the prior variance is all there is.
    flow = variance_bound(measurement, torch.tensor([1.0]), torch.tensor([0.0]))
    torch.testing.assert_close(flow, torch.tensor([1 + RENDER_SCALE**2 / 0.01]))


def test_poisson_noise_variance_is_averaged_over_the_measured_values():
    y = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]], dtype=torch.float64)
    measurement = Measurement(y, Inpainting(torch.ones(2, 2)), PoissonNoise(100.0))
    # std^2 = max(y, 1/100) / 100 per element
    assert measurement.mean_noise_variance() == pytest.approx((0.01 + 0.5 + 1.0 + 0.25) / 4 / 100, rel=1e-12)


def test_plug_in_variance_is_chi2_over_m_between_one_and_the_bound():
    chi2 = torch.tensor([50.0, 500.0, 5000.0, 50000.0])
    bound = torch.tensor([20.0, 20.0, 200.0, 200.0])
    torch.testing.assert_close(plug_in_variance(chi2, 100, bound), torch.tensor([1.0, 5.0, 50.0, 200.0]))
    torch.testing.assert_close(plug_in_variance(chi2, 100), torch.tensor([1.0, 5.0, 50.0, 500.0]))


def test_late_in_sampling_a_sample_far_from_y_gets_the_bounded_likelihood_gradient():
    # Identity denoiser and pixel rendering: the guided denoiser is x - s * grad chi2 / (2 v) with
    # v the bound (chi2 / m is far above it), i.e. close to the exact likelihood at small sigma.
    truth = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = torch.rand(8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) > 0.5
    measurement = simulate(truth, Inpainting(mask), GaussianNoise(0.05), seed=2)
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)  # renders to 0.5 everywhere: far from y
    sigma, alpha = torch.tensor([0.05], dtype=torch.float64), torch.ones(1, dtype=torch.float64)

    guided = dps_guidance(x=x, sigma=sigma, alpha=alpha, denoise=lambda z: z, render=PixelRenderer(),
                          measurement=measurement, strength=1.0)

    bound = 1 + RENDER_SCALE**2 * prior_covariance_scale(sigma, alpha) / 0.05**2
    assert 1 < bound.item() < 1.3
    keep = (~mask).double()  # the mask marks the missing pixels, as ComfyUI's masks do
    residual = (measurement.y - (x + 1) / 2) * keep  # y - A(render(x)) on the kept pixels
    gradient = -residual / 2 / (0.05**2 * bound)  # d/dx of chi2 / (2 v): chain rule through (x + 1) / 2
    expected = x - posterior_scale(sigma, alpha) * gradient
    torch.testing.assert_close(guided, expected, rtol=1e-10, atol=1e-12)


def test_likelihood_loss_is_chi2_over_twice_the_plug_in_variance_and_only_it_has_a_graph():
    y = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    measurement = Measurement(y, Inpainting(torch.zeros(2, 2)), GaussianNoise(0.5))
    image = torch.tensor([0.5, 2.0], dtype=torch.float64).reshape(2, 1, 1, 1).expand(2, 1, 2, 2).clone()
    image.requires_grad_(True)
    loss, residual = likelihood_loss(measurement, image)
    chi2 = torch.tensor([4 * (0.5 / 0.5) ** 2, 4 * (2.0 / 0.5) ** 2], dtype=torch.float64)  # [4, 64]
    variance = torch.tensor([1.0, 16.0], dtype=torch.float64)  # clamp(chi2 / 4, 1)
    torch.testing.assert_close(loss, chi2 / (2 * variance), rtol=1e-12, atol=0)
    torch.testing.assert_close(residual, (chi2 / 4).sqrt(), rtol=1e-12, atol=0)
    assert loss.requires_grad and not residual.requires_grad
    # v is held fixed: the gradient is that of chi2 / (2 v) with v a constant.
    (gradient,) = torch.autograd.grad(loss.sum(), image)
    torch.testing.assert_close(gradient[1], (2 * image[1] / 0.25 / (2 * 16.0)).detach(), rtol=1e-12, atol=0)
