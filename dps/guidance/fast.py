"""`fast`: the likelihood gradient through the renderer (decoder) only, at D(x_t), with
Cov[x0 | x_t] taken as isotropic, r_t^2 I (manifold-preserving style): no backward pass through
the diffusion model.

    D_y(x_t) = D(x_t) - strength * r_t^2 * grad_{x0} [ chi2 / (2 v) ] at x0 = D(x_t)
"""

from __future__ import annotations

import torch

from .core import at_least_float32, corrected, per_sample, prior_covariance_scale
from .likelihood import likelihood_loss, variance_bound


def fast_guidance(*, x, sigma, alpha, denoise, render, measurement, strength, trace=None) -> torch.Tensor:
    denoised = denoise(x).detach()
    with torch.inference_mode(False), torch.enable_grad():
        estimate = denoised.clone().requires_grad_(True)
        loss, residual = likelihood_loss(measurement, render(estimate), variance_bound(measurement, sigma, alpha))
        (gradient,) = torch.autograd.grad(loss.sum(), estimate)
    correction = strength * per_sample(prior_covariance_scale(sigma, alpha), x) * at_least_float32(gradient)
    return corrected(denoised, correction, sigma=sigma, residual=residual, trace=trace)
