"""`dps`: the paper's method (Chung et al., ICLR 2023): the likelihood gradient is back-propagated
through the denoiser and the renderer (the VAE decoder of a latent model), then applied with
Tweedie's factor sigma_t^2 / alpha_t:

    D_y(x_t) = D(x_t) - strength * (sigma_t^2 / alpha_t) * grad_{x_t} [ chi2 / (2 v) ]
"""

from __future__ import annotations

import torch

from .core import at_least_float32, corrected, per_sample, posterior_scale
from .likelihood import likelihood_loss, variance_bound


def dps_guidance(*, x, sigma, alpha, denoise, render, measurement, strength, trace=None) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        denoised = denoise(x_in)
        loss, residual = likelihood_loss(measurement, render(denoised), variance_bound(measurement, sigma, alpha))
        (gradient,) = torch.autograd.grad(loss.sum(), x_in)
    correction = strength * per_sample(posterior_scale(sigma, alpha), x) * at_least_float32(gradient)
    return corrected(denoised, correction, sigma=sigma, residual=residual, trace=trace)
