"""`moment`: covariance-aware guidance by moment matching (as in TMPD, Boys et al. 2023, and MMPS,
Rozet et al. 2024), exact for Gaussian priors.

The clean image given x_t is taken Gaussian with the denoiser's own first two moments: mean D(x_t)
and, by Tweedie's second-moment formula, covariance

    C = Cov[x0 | x_t] = (sigma_t^2 / alpha_t) dD/dx_t.

Seen through the renderer R (Jacobian J_R) and a linear operator A, y is then Gaussian with
covariance A J_R C J_R^T A^T + Sigma_y, and the posterior mean given y is one Kalman update:

    D_y(x_t) = D(x_t) + C J_R^T A^T w,   (A J_R C J_R^T A^T + Sigma_y) w = y - A R(D(x_t)).

For a Gaussian prior and pixel rendering every step of this is exact: the samples then follow the
exact posterior up to the sampler's discretisation. The denoiser's Jacobian is taken symmetric (it
is for an exact denoiser, being a covariance), so C J_R^T v = (sigma_t^2 / alpha_t) J_F^T v with
J_F the Jacobian of x_t -> R(D(x_t)): a vector-Jacobian product, reusing one forward graph. The
system is solved by conjugate gradients, preconditioned by pigdm's exact solve with C ~ r_t^2 I
(gram.py), to a relative residual of TOLERANCE or at most `steps` iterations.

Cost per sampling step: one forward of the denoiser and renderer, then one backward through both
per CG iteration plus one for the update (pixel models); latent models add one decoder forward per
iteration for J_R (a finite difference of the decoder). Strength scales the update (1 = exact).
"""

from __future__ import annotations

import torch

from . import gram
from .cg import conjugate_gradients
from .core import (at_least_float32, corrected, per_sample, posterior_scale, prior_covariance_scale,
                   render_response)
from .likelihood import RENDER_SCALE

#: Cap on CG iterations per sampling step, each a backward pass through the diffusion model.
MAX_ITERATIONS = 8
#: Relative residual at which CG stops: the preconditioner is exact for an isotropic covariance,
#: so most steps need few iterations.
TOLERANCE = 1e-2


def moment_guidance(*, x, sigma, alpha, denoise, render, measurement, strength, trace=None,
                    steps: int | None = None) -> torch.Tensor:
    iterations = MAX_ITERATIONS if steps is None else steps
    operator = measurement.operator
    factor = per_sample(posterior_scale(sigma, alpha), x)
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        denoised = denoise(x_in)
        image = render(denoised)
    u0 = at_least_float32(image.detach())
    base = denoised.detach()

    def covariance_pullback(v: torch.Tensor) -> torch.Tensor:
        """C J_R^T v = (sigma^2 / alpha) J_F^T v, in model space (x's shape)."""
        with torch.inference_mode(False), torch.enable_grad():
            (g,) = torch.autograd.grad(image, x_in, grad_outputs=v.to(image.dtype), retain_graph=True)
        return factor * at_least_float32(g)

    def through_renderer(v: torch.Tensor) -> torch.Tensor:
        """J_R v: exact for pixel rendering, a finite difference of the decoder for latent models."""
        with torch.no_grad():
            if render.affine:
                return at_least_float32(render(base.to(v.dtype) + v)) - u0
            return render_response(render, base, u0, v)

    with torch.no_grad():
        residual = measurement.residual(u0)
        noise_variance = gram.noise_variance(measurement, residual)
        isotropic = RENDER_SCALE**2 * prior_covariance_scale(at_least_float32(sigma).reshape(-1),
                                                             at_least_float32(alpha).reshape(-1))

        def apply(w_real: torch.Tensor) -> torch.Tensor:
            pulled = covariance_pullback(operator.adjoint(gram.from_real(w_real, residual)))
            return gram.as_real(operator(through_renderer(pulled))) + noise_variance * w_real

        def precondition(r_real: torch.Tensor) -> torch.Tensor:
            return gram.as_real(gram.solve(operator, gram.from_real(r_real, residual), scale=isotropic,
                                           noise_variance=noise_variance))

        weights, _ = conjugate_gradients(apply, gram.as_real(residual), max_iterations=iterations,
                                         tolerance=TOLERANCE, precondition=precondition)
        update = covariance_pullback(operator.adjoint(gram.from_real(weights, residual)))
        normalized = measurement.normalized_residual(u0)
    return corrected(denoised, -strength * update, sigma=sigma, residual=normalized, trace=trace)
