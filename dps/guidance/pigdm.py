"""`pigdm`: pseudoinverse-guided diffusion (Song et al., ICLR 2023) for linear operators, with its
step set by the model's own covariance.

The likelihood of x_t is taken Gaussian around the rendered denoised estimate, with the
uncertainty of that estimate carried into its covariance:

    p(y | x_t) ~ N(y; A render(D(x_t)), r_t^2 c^2 A A^T + Sigma_y),   r_t^2 = sigma_t^2 / (alpha_t^2 + sigma_t^2)

r_t^2 is Cov[x0 | x_t] for a prior of unit variance per model-space element (core.
prior_covariance_scale); c = likelihood.RENDER_SCALE is that prior's standard deviation seen
through the renderer (pixel models render x in [-1, 1] as (x + 1) / 2, so c = 1/2 exactly; for
latent models it approximates the decoder's spread per unit latent). Sigma_y is the noise variance
per measured element (Gaussian: sigma^2; Poisson: the std of `measurement.noise` at y, squared;
k-space as real pairs). Its gradient is a vector-Jacobian product through the denoiser and the
renderer, with the system solved exactly where the operator allows it and by conjugate gradients
otherwise (gram.py):

    w = (r_t^2 c^2 A A^T + Sigma_y)^{-1} (y - A render(D(x_t))),   d = (sigma_t^2 / alpha_t) J^T A_r^T w

(A_r = A times the renderer's Jacobian). The paper applies D + strength * d. A real prior is not of
unit variance and uncorrelated, and r_t^2 then misjudges how far to trust y (on the pack's
correlated Gaussian checks pigdm sat further from the posterior mean than dps on 4 of 5
operators). The same backward pass measures the model's own covariance along the step: with
v = A_r^T w, Tweedie's second moment gives v^T Cov[x0 | x_t] v = <v, d>, which is also
(A^T w)^T C (A^T w) for the image-space covariance C = J_r Cov[x0 | x_t] J_r^T, so

    a = <v, d> / ||A^T w||^2    (the Rayleigh quotient of C along A^T w, in image units)

replaces the assumed r_t^2 c^2 at no extra cost. The step is then scaled by beta, the minimiser
along d of the local posterior objective ||y - A render(D + beta d)||^2_{Sigma_y^-1} + beta^2 d^T Cov^-1 d,
with A_r d = A C A^T w taken as a A A^T w (C isotropic with the variance a it shows along the
step, as pigdm already takes it isotropic; exact when C is a multiple of I):

    beta = <A A^T w, Sigma_y^-1 r> / (a ||A A^T w||^2_{Sigma_y^-1} + ||A^T w||^2),
    D_y(x_t) = D(x_t) + strength * beta * d.

Where A A^T is a multiple of I (masks, average super-resolution, colourisation) this is exactly
pigdm with r_t^2 c^2 replaced by a, whatever scale the solve used. Elsewhere (blur, bicubic
super-resolution, k-space) the solve's covariance shapes w, and a is not known before the backward
pass. Pixel models then solve with the covariance the denoiser shows in each spatial frequency
(spectral.py: no extra pass, exact for stationary priors); on the correlated Gaussian checks this
took pigdm from 7 of 9 to 9 of 9 blur settings closer to the posterior mean than dps. Masks (pixel
models) solve with that covariance floored at its own average variance (SpectralCovariance.floored):
its low-frequency shape carries the measured pixels' residual into a hole, which the isotropic solve
cannot (box holes: 0 of 9 checks closer than dps with it, 9 of 9 floored), and the floor keeps the
small high-frequency variances from weighting the residual's high frequencies, mostly measurement
noise, by up to 1 / Sigma_y, which the unfloored covariance did (it met the checks too but lowered the
posterior mean's PSNR on photographs by 0.1-3.9 dB). Latent
models take the scale the residual itself implies, E||r||^2 = s tr(A A^T) + tr(Sigma_y) (the plug-in
estimate `dps` uses, likelihood.py), at most r_t^2 c^2 (`solve_scale`). Where the model's
covariance is r_t^2 I and the residual is as large as that predicts, a = s = r_t^2 c^2 and beta = 1:
the paper's step. A Jacobian with <v, d> <= 0 (no covariance to measure) keeps beta = 1.

Where the renderer knows the data's range (pixel models of images: [-1, 1]) D_y is clamped to it
(core.within_data_range): the posterior mean of images lies in their range. On 40 px box holes in
the tuning photographs (6 positions, 4 samples, demo prior) this lifted single samples by 1.1 dB and
the posterior mean by 0.8 dB on average (a correction that over-shoots in a hole no longer leaves
saturated blobs there).
"""

from __future__ import annotations

import torch

from . import gram
from .core import (at_least_float32, corrected, per_sample, per_sample_sum, posterior_scale, prior_covariance_scale,
                   within_data_range)
from .likelihood import RENDER_SCALE
from .spectral import SpectralCovariance


#: Probes of the Hutchinson estimate of tr(A^T A) (fixed Rademacher vectors, so a step is
#: reproducible): its relative error is about sqrt(2 / (probes * effective rank)), under 1% for images.
TRACE_PROBES = 4

#: Closed forms (gram.py) whose A A^T is a multiple of I: there the step scale beta makes any
#: isotropic solve exact for an isotropic prior. Masks ("diagonal") still take the floored spectral
#: covariance with pixel models (module docstring); average super-resolution and colourisation met the
#: exact checks with the isotropic solve.
ISOTROPIC_GRAM = ("block", "scalar")


def operator_trace(operator, image_shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """tr(A^T A) = E ||A z||^2 over Rademacher z of one image's shape (real elements of A z)."""
    generator = torch.Generator().manual_seed(0)
    total = torch.zeros((), dtype=like.real.dtype if like.is_complex() else like.dtype, device=like.device)
    with torch.no_grad():
        for _ in range(TRACE_PROBES):
            z = torch.randint(0, 2, (1, *image_shape), generator=generator).to(device=like.device, dtype=total.dtype)
            total = total + gram.as_real(operator.forward(2 * z - 1)).square().sum()
    return total / TRACE_PROBES


def solve_scale(measurement, residual: torch.Tensor, image_shape: tuple, noise_variance: torch.Tensor,
                bound: torch.Tensor) -> torch.Tensor:
    """The solve's covariance scale per sample [B]: (||r||^2 - tr(Sigma_y)) / tr(A^T A), in [0, bound]."""
    with torch.no_grad():
        real = gram.as_real(residual)
        noise_total = torch.broadcast_to(noise_variance, real.shape)[0].sum()
        excess = (per_sample_sum(real.square()) - noise_total).clamp(min=0)
        estimate = excess / operator_trace(measurement.operator, image_shape, residual).clamp(min=1e-30)
        return torch.minimum(estimate, bound.to(estimate.device, estimate.dtype).expand_as(estimate))


def step_scale(measurement, residual: torch.Tensor, weights: torch.Tensor, noise_variance: torch.Tensor,
               covariance: torch.Tensor) -> torch.Tensor:
    """beta per sample [B] (see the module's docstring) from the residual r, the solve's w, Sigma_y
    and <v, d> (`covariance`, [B]); 1 where <v, d> is not positive or the terms are not finite."""
    with torch.no_grad():
        back = measurement.operator.adjoint(weights)
        forward = gram.as_real(measurement.operator.forward(back))
        back_size = per_sample_sum(gram.as_real(back).square())
        a = covariance / back_size.clamp(min=1e-30)
        numerator = per_sample_sum(forward * gram.as_real(residual) / noise_variance)
        denominator = a * per_sample_sum(forward.square() / noise_variance) + back_size
        beta = (numerator / denominator.clamp(min=1e-30)).clamp(min=0)
        usable = (covariance > 0) & (back_size > 0) & torch.isfinite(beta)
        return torch.where(usable, beta, torch.ones_like(beta))


def _weights(x, denoised, sigma, alpha, render, measurement, fixed, noise_variance, image_shape) -> torch.Tensor:
    """w = (A C A^T + Sigma_y)^-1 r, with C the spectral estimate of the model's covariance
    (spectral.py; floored for masks) for pixel models except where ISOTROPIC_GRAM names the operator's
    closed form, else C = solve_scale I."""
    kind = gram.closed_form(measurement.operator)
    if render.affine and kind not in ISOTROPIC_GRAM:
        covariance = SpectralCovariance(x, denoised, sigma, alpha)
        if kind == "diagonal":
            covariance = covariance.floored()
        return gram.solve_with_covariance(measurement.operator, fixed, covariance=covariance,
                                          noise_variance=noise_variance, factor=RENDER_SCALE**2)
    bound = RENDER_SCALE**2 * prior_covariance_scale(at_least_float32(sigma).reshape(-1),
                                                     at_least_float32(alpha).reshape(-1))
    scale = solve_scale(measurement, fixed, tuple(image_shape[1:]), noise_variance, bound)
    return gram.solve(measurement.operator, fixed, scale=scale, noise_variance=noise_variance)


def pigdm_guidance(*, x, sigma, alpha, denoise, render, measurement, strength, trace=None) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        denoised = denoise(x_in)
        image = at_least_float32(render(denoised))
        residual = measurement.residual(image)
        fixed = residual.detach()
        noise_variance = gram.noise_variance(measurement, fixed)
        weights = _weights(x, denoised, sigma, alpha, render, measurement, fixed, noise_variance, image.shape)
        # d/dx of <residual, w> with w held fixed is -J^T A_r^T w (the gradient of -log p(y | x_t));
        # d/dD of it is -v, from the same backward pass.
        inner = per_sample_sum(gram.as_real(residual) * gram.as_real(weights))
        gradient, cotangent = torch.autograd.grad(inner.sum(), (x_in, denoised))
    step = per_sample(posterior_scale(sigma, alpha), x) * at_least_float32(gradient)  # -d
    covariance = per_sample_sum(at_least_float32(cotangent).to(step.device) * step)  # <v, d>
    beta = step_scale(measurement, fixed, weights, noise_variance, covariance.to(fixed.device))
    whitened = gram.as_real(fixed) / noise_variance.sqrt()
    normalized = (per_sample_sum(whitened.square()) / measurement.num_elements).sqrt()
    correction = strength * per_sample(beta, step) * step
    return within_data_range(corrected(denoised, correction, sigma=sigma, residual=normalized, trace=trace), render)
