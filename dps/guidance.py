"""The likelihood-gradient mathematics of Diffusion Posterior Sampling, as functions over tensors.

Notation (ComfyUI's sampling space): a noisy sample is x_t = alpha_t x0 + sigma_t eps, with
alpha_t = 1 for EPS and V_PREDICTION models and alpha_t = 1 - sigma_t for flow models. The sampler
consumes a denoiser D(x_t) = E[x0 | x_t]. Tweedie's formula for the posterior gives the
*posterior denoiser* that every sampler can consume unchanged:

    E[x0 | x_t, y] = D(x_t) + (sigma_t^2 / alpha_t) * grad_{x_t} log p(y | x_t).

DPS (Chung et al., ICLR 2023) approximates p(y | x_t) by p(y | x0 = D(x_t)). With a Gaussian
likelihood of exact noise variance this is badly over-confident early in sampling, when D(x_t) is
far from any image that explains y. We replace the variance by its plug-in estimate per sample,

    v = clamp(chi2 / m, 1, v_max(sigma_t)),     chi2 = || (y - A(render(D(x_t)))) / noise_std ||^2,

where m is the number of (real) measurement elements. chi2 / m estimates the predictive variance
(noise plus the uncertainty of D(x_t) seen through A) in units of the noise variance; it falls
to the noise level as the sample comes to explain y, where the likelihood becomes the exact one.
It cannot tell that uncertainty from a misfit the prior cannot explain, though, and a sample that
stays off y would keep a large v and a weak pull to the end. v_max bounds it by the predictive
variance of a prior of unit variance per model-space element (PiGDM's r_t^2 = sigma^2 / (alpha^2
+ sigma^2)) seen through the renderer: v_max = 1 + RENDER_SCALE^2 r_t^2 / mean noise variance.
Early it is far above chi2 / m and changes nothing; as sigma_t falls it takes v down to the exact
noise variance.
The guided denoiser is then

    D_y(x_t) = D(x_t) - strength * (sigma_t^2 / alpha_t) * grad_{x_t} [ chi2 / (2 v) ]    (v held fixed)

Because it is a denoiser, not a step, the same `strength` (default 1) holds for any step count,
sampler and scheduler; and because v is per sample, a sample never depends on its batch mates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

#: Below this alpha_t (flow models at sigma = 1) x_t carries no information about x0: the
#: gradient through the denoiser vanishes while sigma^2 / alpha diverges. The exact limit needs
#: the prior covariance, which a network does not give, so guidance starts at the next step.
MIN_ALPHA = 1e-3

#: Std of the rendered image (in [0, 1]) per unit std of the model-space sample: pixel models render
#: x in [-1, 1] as (x + 1) / 2; latent formats scale latents to about unit variance, which decoders
#: map to images of no larger spread. Used by the bound on the plug-in variance (v_max above).
RENDER_SCALE = 0.5

#: A guard, never reached with sane strengths: the guidance may move the denoised estimate by at
#: most this many times its own RMS (plus one), so extreme strengths cannot produce Inf or NaN.
MAX_CORRECTION_RATIO = 4.0

Denoiser = Callable[[torch.Tensor], torch.Tensor]
Renderer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GuidanceTrace:
    """What guidance saw at each denoiser call: sigma and the per-sample normalised residual
    (1.0 means the current estimate explains y at the noise level)."""

    sigmas: list[float] = field(default_factory=list)
    residuals: list[list[float]] = field(default_factory=list)

    def record(self, sigma: float, residual: torch.Tensor) -> None:
        self.sigmas.append(float(sigma))
        # One transfer and one list: iterating a tensor would make a Python object per sample.
        self.residuals.append(residual.detach().float().cpu().tolist())


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision values promoted to float32 for the likelihood; float64 stays float64."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def variance_bound(measurement, sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """v_max per sample [B]: 1 + RENDER_SCALE^2 r_t^2 / (mean noise variance), r_t^2 as in
    `prior_covariance_scale` (see the module's docstring)."""
    r2 = prior_covariance_scale(at_least_float32(sigma).reshape(-1), at_least_float32(alpha).reshape(-1))
    return 1 + RENDER_SCALE**2 * r2 / measurement.mean_noise_variance()


def likelihood_loss(measurement, image: torch.Tensor, bound: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample negative log-likelihood with the plug-in variance (at most `bound`, per sample),
    and the normalised residual.

    Returns (loss [B], normalised residual [B]); only `loss` carries a graph.
    """
    chi2 = measurement.chi2(image)
    m = measurement.num_elements
    variance = plug_in_variance(chi2.detach(), m, bound)
    return chi2 / (2 * variance), (chi2.detach() / m).sqrt()


def plug_in_variance(chi2: torch.Tensor, m: int, bound: torch.Tensor | None = None) -> torch.Tensor:
    """v = clamp(chi2 / m, 1, bound) per sample."""
    variance = (chi2 / m).clamp(min=1.0)
    if bound is not None:
        variance = torch.minimum(variance, bound.to(variance.device, variance.dtype).expand_as(variance))
    return variance


def posterior_scale(sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """sigma^2 / alpha (the factor of Tweedie's formula), zero where alpha < MIN_ALPHA."""
    safe_alpha = alpha.clamp(min=MIN_ALPHA)
    return torch.where(alpha < MIN_ALPHA, torch.zeros_like(sigma), sigma**2 / safe_alpha)


def prior_covariance_scale(sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Cov[x0 | x_t] for a prior of unit variance per element: sigma^2 / (alpha^2 + sigma^2).

    Model latents are scaled to about unit variance by each family's latent format; used by the
    "fast" mode, which does not differentiate the denoiser."""
    return sigma**2 / (alpha**2 + sigma**2)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or [B] tensor of sigma/alpha over a [B, ...] sample."""
    values = at_least_float32(values.to(like.device)).reshape(-1)
    if values.numel() == 1:
        values = values.expand(like.shape[0])
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def bounded(correction: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """Replace non-finite values by 0 and limit each sample's correction (see MAX_CORRECTION_RATIO)."""
    correction = torch.nan_to_num(correction, nan=0.0, posinf=0.0, neginf=0.0)
    dims = tuple(range(1, correction.ndim))
    size = at_least_float32(correction).pow(2).mean(dim=dims, keepdim=True).sqrt()
    limit = MAX_CORRECTION_RATIO * (at_least_float32(denoised).pow(2).mean(dim=dims, keepdim=True).sqrt() + 1.0)
    factor = torch.where(size > limit, limit / size.clamp(min=1e-30), torch.ones_like(size))
    return correction * factor.to(correction.dtype)


def dps_denoise(x, sigma, alpha, denoise: Denoiser, render: Renderer, measurement, strength: float,
                trace: GuidanceTrace | None = None) -> torch.Tensor:
    """The paper's method: the likelihood gradient through the denoiser (and the renderer)."""
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        denoised = denoise(x_in)
        loss, residual = likelihood_loss(measurement, render(denoised), variance_bound(measurement, sigma, alpha))
        (gradient,) = torch.autograd.grad(loss.sum(), x_in)
    denoised = denoised.detach()
    scale = _per_sample(posterior_scale(sigma, alpha), x) * strength
    if trace is not None:
        trace.record(sigma.reshape(-1)[0], residual)
    return denoised - bounded(scale * at_least_float32(gradient), denoised).to(denoised.dtype)


def fast_denoise(x, sigma, alpha, denoise: Denoiser, render: Renderer, measurement, strength: float,
                 trace: GuidanceTrace | None = None) -> torch.Tensor:
    """Gradient through the renderer (decoder) at D(x_t) only, with Cov[x0 | x_t] taken as
    isotropic: no backward pass through the diffusion model (manifold-preserving style)."""
    denoised = denoise(x).detach()
    with torch.inference_mode(False), torch.enable_grad():
        estimate = denoised.clone().requires_grad_(True)
        loss, residual = likelihood_loss(measurement, render(estimate), variance_bound(measurement, sigma, alpha))
        (gradient,) = torch.autograd.grad(loss.sum(), estimate)
    scale = _per_sample(prior_covariance_scale(sigma, alpha), x) * strength
    if trace is not None:
        trace.record(sigma.reshape(-1)[0], residual)
    return denoised - bounded(scale * at_least_float32(gradient), denoised).to(denoised.dtype)


#: Guidance modes by the name users pick. Each has the signature of `dps_denoise`.
GUIDANCE_MODES = {"dps": dps_denoise, "fast": fast_denoise}
