"""What every guidance method shares: the trace, the noise-level factors and the epilogue.

Notation (ComfyUI's sampling space): a noisy sample is x_t = alpha_t x0 + sigma_t eps, with
alpha_t = 1 for EPS and V_PREDICTION models and alpha_t = 1 - sigma_t for flow models. The sampler
consumes a denoiser D(x_t) = E[x0 | x_t]; a guidance method returns a *posterior denoiser*
D_y(x_t) ~ E[x0 | x_t, y] instead, which every sampler consumes unchanged. Tweedie's formula:

    E[x0 | x_t, y] = D(x_t) + (sigma_t^2 / alpha_t) * grad_{x_t} log p(y | x_t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

#: Below this alpha_t (flow models at sigma = 1) x_t carries no information about x0: the
#: gradient through the denoiser vanishes while sigma^2 / alpha diverges. The exact limit needs
#: the prior covariance, which a network does not give, so guidance starts at the next step.
MIN_ALPHA = 1e-3

#: A guard: the guidance may move the denoised estimate by at most this many times its own RMS
#: (plus one), so extreme strengths cannot produce Inf or NaN. It is reached at strength 1 too:
#: `dps` on a 40 px hole with the demo prior hits it on most steps from sigma 14 to about 1 (its
#: 1 / (sigma_y^2 v) over-weights the directions where the model's covariance is large).
MAX_CORRECTION_RATIO = 4.0

#: x_t -> D(x_t), the model's denoised estimate in model space (differentiable when asked).
Denoiser = Callable[[torch.Tensor], torch.Tensor]


class Renderer(Protocol):
    """Model space <-> the image in [0, 1] that the operator sees: through the VAE for latent
    models, (x + 1) / 2 for pixel models. `encode` is its (approximate) inverse; `affine` says
    that rendering is (x + 1) / 2 itself, so `encode` inverts it exactly and its Jacobian is I / 2."""

    affine: bool
    #: (low, high) that model-space images of the data never leave (pixel models of images: -1, 1),
    #: or None where nothing bounds them (latents; PixelRenderer unless given one, as the engine's
    #: tests of analytic Gaussian priors use it).
    data_range: tuple[float, float] | None

    def __call__(self, latent: torch.Tensor) -> torch.Tensor: ...

    def encode(self, image: torch.Tensor) -> torch.Tensor: ...


class PixelRenderer:
    """The renderer of pixel models: x in [-1, 1] <-> (x + 1) / 2 in [0, 1]. `data_range` (default
    None): what the prior's samples are known to keep to, e.g. (-1, 1) for a model of images."""

    affine = True

    def __init__(self, data_range: tuple[float, float] | None = None):
        self.data_range = data_range

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        return (at_least_float32(latent) + 1) / 2

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return at_least_float32(image) * 2 - 1


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


def posterior_scale(sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """sigma^2 / alpha (the factor of Tweedie's formula), zero where alpha < MIN_ALPHA."""
    safe_alpha = alpha.clamp(min=MIN_ALPHA)
    return torch.where(alpha < MIN_ALPHA, torch.zeros_like(sigma), sigma**2 / safe_alpha)


def prior_covariance_scale(sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Cov[x0 | x_t] for a prior of unit variance per element: r_t^2 = sigma^2 / (alpha^2 + sigma^2).

    Model latents are scaled to about unit variance by each family's latent format. Used by the
    "fast" method as its isotropic covariance and by every method's bound on the plug-in variance."""
    return sigma**2 / (alpha**2 + sigma**2)


#: RMS size, in latent units (about unit variance), of the finite-difference probe of a decoder:
#: large enough to stay above half-precision rounding, small enough to stay local.
PROBE_SIZE = 1e-2


def render_response(render, at: torch.Tensor, rendered: torch.Tensor, direction: torch.Tensor,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """J_render(at) direction, per sample, by a finite difference: (render(at + eps d) - rendered) / eps
    with eps making the probe's RMS PROBE_SIZE (`rendered` = render(at); `dtype`: the renderer's input
    dtype, default at's). Used for decoders, whose forward-mode derivatives are not available."""
    size = direction.reshape(direction.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (direction.ndim - 1)))
    epsilon = PROBE_SIZE * direction[0].numel() ** 0.5 / size.clamp(min=1e-30)
    probe = (at + epsilon * direction).to(dtype or at.dtype)
    return (at_least_float32(render(probe)) - rendered) / epsilon


def per_sample_sum(t: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """The sum over each sample of a [B, ...] tensor: [B], or [B, 1, ...] to broadcast over it."""
    total = t.reshape(t.shape[0], -1).sum(dim=1)
    return total.reshape(-1, *([1] * (t.ndim - 1))) if keepdim else total


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
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


def within_data_range(estimate: torch.Tensor, render) -> torch.Tensor:
    """The posterior denoiser projected onto the renderer's data range, where it has one. E[x0 | x_t, y]
    lies in that range whenever x0 does, so the projection only moves an estimate closer to it."""
    bounds = getattr(render, "data_range", None)
    return estimate if bounds is None else estimate.clamp(*bounds)


def corrected(denoised: torch.Tensor, correction: torch.Tensor, *, sigma: torch.Tensor, residual: torch.Tensor,
              trace: GuidanceTrace | None) -> torch.Tensor:
    """The epilogue every method ends with: record the residual and return
    D_y = D - correction, the correction made finite and bounded, in the denoised estimate's dtype."""
    if trace is not None:
        trace.record(sigma.reshape(-1)[0], residual)
    denoised = denoised.detach()
    return denoised - bounded(at_least_float32(correction), denoised).to(denoised.dtype)
