"""`pigdm`: pseudoinverse-guided diffusion (Song et al., ICLR 2023) for linear operators.

The likelihood of x_t is taken Gaussian around the rendered denoised estimate, with the
uncertainty of that estimate carried into its covariance:

    p(y | x_t) ~ N(y; A render(D(x_t)), r_t^2 c^2 A A^T + Sigma_y),   r_t^2 = sigma_t^2 / (alpha_t^2 + sigma_t^2)

r_t^2 is Cov[x0 | x_t] for a prior of unit variance per model-space element (core.
prior_covariance_scale); c = likelihood.RENDER_SCALE is that prior's standard deviation seen
through the renderer (pixel models render x in [-1, 1] as (x + 1) / 2, so c = 1/2 exactly; for
latent models it approximates the decoder's spread per unit latent, and the covariance is taken
isotropic in image space: an approximation, as is the Jacobian of the decoder being the only
non-linearity considered). Sigma_y is the noise variance per measured element (Gaussian: sigma^2;
Poisson: the std of `measurement.noise` at y, squared; k-space as real pairs). Its gradient is a
vector-Jacobian product through the denoiser and the renderer,

    g = J^T A^T (r_t^2 c^2 A A^T + Sigma_y)^{-1} (y - A render(D(x_t))),
    D_y(x_t) = D(x_t) + strength * (sigma_t^2 / alpha_t) * g,

with the system solved exactly where the operator allows it and by conjugate gradients
otherwise (gram.py). Unlike `dps` there is no step-size rule: the covariance sets the step.
"""

from __future__ import annotations

import torch

from . import gram
from .core import at_least_float32, corrected, per_sample, posterior_scale, prior_covariance_scale
from .likelihood import RENDER_SCALE


def pigdm_guidance(*, x, sigma, alpha, denoise, render, measurement, strength, trace=None) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        denoised = denoise(x_in)
        residual = measurement.residual(at_least_float32(render(denoised)))
        fixed = residual.detach()
        noise_variance = gram.noise_variance(measurement, fixed)
        scale = RENDER_SCALE**2 * prior_covariance_scale(at_least_float32(sigma).reshape(-1),
                                                         at_least_float32(alpha).reshape(-1))
        weights = gram.solve(measurement.operator, fixed, scale=scale, noise_variance=noise_variance)
        # d/dx of <residual, v> with v held fixed is -J^T A^T v: the gradient of -log p(y | x_t).
        inner = (gram.as_real(residual) * gram.as_real(weights)).reshape(residual.shape[0], -1).sum(dim=1)
        (gradient,) = torch.autograd.grad(inner.sum(), x_in)
    whitened = gram.as_real(fixed) / noise_variance.sqrt()
    normalized = (whitened.square().reshape(fixed.shape[0], -1).sum(dim=1) / measurement.num_elements).sqrt()
    correction = strength * per_sample(posterior_scale(sigma, alpha), x) * at_least_float32(gradient)
    return corrected(denoised, correction, sigma=sigma, residual=normalized, trace=trace)
