"""DAPS: decoupled annealing posterior sampling (Zhang et al., CVPR 2025).

At each noise level of the schedule the sampler
  1. estimates x0 from x_t with the model (one denoiser call, or a few probability-flow ODE steps),
  2. draws x0 from  N(x0; x0_hat, r_t^2 I) * p(y | x0)  by a few Langevin steps (on the latent
     through the decoder for latent models), r_t^2 = sigma^2 / (alpha^2 + sigma^2)
     (guidance.core.prior_covariance_scale),
  3. re-noises it to the next level: x_t' = alpha' x0 + sigma' eps.
No gradient goes through the diffusion model; only the renderer and the operator are differentiated.

The Langevin step integrates the prior term exactly (an Ornstein-Uhlenbeck step towards x0_hat,
so its stiffness at small r_t costs nothing) and the likelihood term -log p(y | x0) = chi2 / 2
explicitly:

    x <- x0_hat + (1 - g) (x - x0_hat) - g r^2 grad chi2/2 + r sqrt(1 - (1 - g)^2) xi,

with g = step_size / (1 + r^2 L) per sample, L the largest Gauss-Newton curvature of chi2 / 2 (power
iteration at the first level's estimate). step_size is thus a fraction of the stability limit (2) that holds
for any operator, noise level and model scale; smaller is more accurate, larger mixes faster.

Notation as in guidance.core: ComfyUI's x_t = alpha x0 + sigma eps, alpha = 1 for EPS/V models,
1 - sigma for flow models. Every step size and norm is per sample: a sample never depends on its
batch mates. This module never imports ComfyUI; the node supplies the callables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .guidance.core import GuidanceTrace, at_least_float32, per_sample, prior_covariance_scale

#: (x, sigma) -> D(x) = E[x0 | x_t] at ComfyUI sigma `sigma` (a float), no gradient needed.
Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
#: sigma [1] -> (alpha, sigma) of x_t = alpha x0 + sigma eps, each [1] (nodes/noise_levels.py).
Levels = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: like -> standard normal noise shaped like `like`.
Noise = Callable[[torch.Tensor], torch.Tensor]

#: Power iterations for the likelihood's curvature, and the relative finite-difference step.
CURVATURE_ITERATIONS = 12
CURVATURE_EPS = 1e-3


@dataclass(frozen=True)
class DAPSSettings:
    """langevin_steps per level; step_size as a fraction of the stability limit (see the module
    docstring); ode_steps: denoiser calls for x0_hat (1 = a single call)."""

    langevin_steps: int = 20
    step_size: float = 0.5
    ode_steps: int = 1

    def __post_init__(self):
        if not (isinstance(self.langevin_steps, int) and self.langevin_steps >= 0):
            raise ValueError(f"langevin_steps: expected an integer >= 0, got {self.langevin_steps!r}")
        if not (0 < self.step_size <= 1):
            raise ValueError(f"step_size: expected a number in (0, 1], got {self.step_size!r}")
        if not (isinstance(self.ode_steps, int) and self.ode_steps >= 1):
            raise ValueError(f"ode_steps: expected an integer >= 1, got {self.ode_steps!r}")


def likelihood_gradient(x0, render, measurement):
    """grad of chi2 / 2 with respect to the model-space x0 [B, ...], and the normalised residual [B]."""
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x0.detach().clone().requires_grad_(True)
        chi2 = measurement.chi2(render(x_in))
        (gradient,) = torch.autograd.grad(chi2.sum() / 2, x_in)
    residual = (chi2.detach() / measurement.num_elements).sqrt()
    return torch.nan_to_num(at_least_float32(gradient)), residual


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def curvature(x0, render, measurement, noise: Noise, iterations: int = CURVATURE_ITERATIONS) -> torch.Tensor:
    """Largest eigenvalue of the Gauss-Newton curvature J^T J of chi2 / 2 at x0 (J: the Jacobian of the
    whitened residual), per sample [B], by power iteration: J v by a finite difference, J^T by autograd.
    Not the full Hessian: where the prediction is near a kink (|z| ~ 0 in phase retrieval) its second-order
    term is huge, and sizing the steps by it would freeze them; J^T J is what bounds a stable step."""
    x0 = at_least_float32(x0.detach())
    scale = per_sample(CURVATURE_EPS * (x0.reshape(x0.shape[0], -1).pow(2).mean(dim=1).sqrt() + 1.0), x0)
    v = noise(x0).to(x0.dtype)
    estimate = torch.zeros(x0.shape[0], device=x0.device, dtype=x0.dtype)
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x0.clone().requires_grad_(True)
        whitened = measurement.whitened_residual(render(x_in))
        base = whitened.detach()
        for _ in range(iterations):
            v = v / per_sample(_norms(v).clamp(min=1e-30), v)
            with torch.no_grad():
                jv = (measurement.whitened_residual(render(x0 + scale * v)) - base) / per_sample(
                    scale.reshape(-1), base)
            (jtjv,) = torch.autograd.grad(whitened, x_in, grad_outputs=jv, retain_graph=True)
            estimate = _norms(jtjv)
            v = torch.where(per_sample(estimate, jtjv) > 0, jtjv, noise(x0).to(x0.dtype))
    return torch.nan_to_num(estimate.detach(), nan=0.0, posinf=0.0)


def langevin(x0_hat, r2, lipschitz, render, measurement, settings: DAPSSettings, noise: Noise,
             check_interrupt: Callable[[], None] | None = None):
    """Langevin steps targeting N(x0_hat, r2 I) * exp(-chi2 / 2) from x0_hat (see the module docstring).
    r2 [B, 1, ...], lipschitz [B]. Returns (x0 sample, its normalised residual [B] before the last move)."""
    x0_hat = at_least_float32(x0_hat.detach())
    gain = (settings.step_size / (1 + r2 * per_sample(lipschitz, x0_hat))).clamp(max=1.0)
    keep = 1 - gain
    spread = (r2 * (1 - keep**2)).sqrt()
    x = x0_hat
    residual = None
    for _ in range(settings.langevin_steps):
        if check_interrupt is not None:
            check_interrupt()
        gradient, residual = likelihood_gradient(x, render, measurement)
        x = x0_hat + keep * (x - x0_hat) - gain * r2 * gradient + spread * noise(x).to(x.dtype)
    if residual is None:
        residual = likelihood_gradient(x, render, measurement)[1]
    return x, residual


def ode_sigmas(sigma: float, steps: int, sigma_min: float, rho: float = 7.0) -> list[float]:
    """The probability-flow ODE's grid from sigma to 0 for x0_hat: Karras spacing down to sigma_min."""
    if steps <= 1 or sigma <= sigma_min:
        return [sigma, 0.0]
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    top, bottom = sigma ** (1 / rho), sigma_min ** (1 / rho)
    return [float(s) for s in (top + ramp * (bottom - top)) ** rho] + [0.0]


def estimate_x0(x, sigma: float, denoise: Denoiser, ode_steps: int, sigma_min: float) -> torch.Tensor:
    """x0_hat from x_t: D(x_t), or Euler steps of the probability-flow ODE (ComfyUI's d = (x - D) / sigma
    holds for every family, flow models included) ending with D at the smallest sigma."""
    grid = ode_sigmas(sigma, ode_steps, sigma_min)
    for current, following in zip(grid[:-1], grid[1:], strict=True):
        denoised = denoise(x, current)
        if following == 0:
            return denoised
        x = x + (x - denoised) / current * (following - current)
    return x


def daps_sample(x, sigmas, *, denoise: Denoiser, render, measurement, levels: Levels, noise: Noise,
                settings: DAPSSettings = DAPSSettings(), sigma_min: float | None = None,
                callback: Callable[[dict], None] | None = None, check_interrupt: Callable[[], None] | None = None,
                trace: GuidanceTrace | None = None) -> torch.Tensor:
    """Run DAPS from x (at sigmas[0]) down the annealing schedule `sigmas` (ComfyUI's, ending at 0 for a
    clean sample). Returns the final sample in x's dtype: the last level's Langevin sample when the
    schedule ends at 0, else that sample re-noised to the last sigma."""
    sigmas = [float(s) for s in torch.as_tensor(sigmas).reshape(-1)]
    positive = [s for s in sigmas if s > 0]
    sigma_min = sigma_min if sigma_min is not None else (min(positive) if positive else 0.0)
    out_dtype = x.dtype
    lipschitz = None
    for i in range(len(sigmas) - 1):
        if check_interrupt is not None:
            check_interrupt()
        sigma = sigmas[i]
        x0_hat = estimate_x0(x, sigma, denoise, settings.ode_steps, sigma_min)
        alpha_t, sigma_t = levels(torch.tensor([sigma]))
        r2 = per_sample(prior_covariance_scale(at_least_float32(sigma_t), at_least_float32(alpha_t)), x0_hat)
        if lipschitz is None:
            lipschitz = curvature(x0_hat, render, measurement, noise)
        x0, residual = langevin(x0_hat, r2.to(x0_hat.device), lipschitz, render, measurement, settings, noise,
                                check_interrupt)
        if trace is not None:
            trace.record(sigma, residual)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": x0.to(out_dtype)})
        following = sigmas[i + 1]
        if following <= 0:
            x = x0
        else:
            alpha_n, sigma_n = levels(torch.tensor([following]))
            x = per_sample(alpha_n, x0) * x0 + per_sample(sigma_n, x0) * noise(x0).to(x0.dtype)
        x = x.to(out_dtype)
    return x
