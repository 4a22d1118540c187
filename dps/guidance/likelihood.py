"""The likelihood every method differentiates: Gaussian in the whitened residual, with the
noise variance replaced by its plug-in estimate per sample.

DPS (Chung et al., ICLR 2023) approximates p(y | x_t) by p(y | x0 = D(x_t)). With the exact noise
variance this is badly over-confident early in sampling, when D(x_t) is far from any image that
explains y. We replace the variance by its plug-in estimate per sample,

    v = clamp(chi2 / m, 1, v_max(sigma_t)),     chi2 = || (y - A(render(D(x_t)))) / noise_std ||^2,

where m is the number of (real) measurement elements. chi2 / m estimates the predictive variance
(noise plus the uncertainty of D(x_t) seen through A) in units of the noise variance; it falls
to the noise level as the sample comes to explain y, where the likelihood becomes the exact one.
It cannot tell that uncertainty from a misfit the prior cannot explain, though, and a sample that
stays off y would keep a large v and a weak pull to the end. v_max bounds it by the predictive
variance of a prior of unit variance per model-space element (PiGDM's r_t^2 = sigma^2 / (alpha^2
+ sigma^2)) seen through the renderer: v_max = 1 + RENDER_SCALE^2 r_t^2 / mean noise variance.
Early it is far above chi2 / m and changes nothing; as sigma_t falls it takes v down to the exact
noise variance. Because v is per sample, a sample never depends on its batch mates.
"""

from __future__ import annotations

import torch

from .core import at_least_float32, prior_covariance_scale

#: Std of the rendered image (in [0, 1]) per unit std of the model-space sample: pixel models render
#: x in [-1, 1] as (x + 1) / 2; latent formats scale latents to about unit variance, which decoders
#: map to images of no larger spread. Used by the bound on the plug-in variance (v_max above).
RENDER_SCALE = 0.5


def variance_bound(measurement, sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """v_max per sample [B]: 1 + RENDER_SCALE^2 r_t^2 / (mean noise variance)."""
    r2 = prior_covariance_scale(at_least_float32(sigma).reshape(-1), at_least_float32(alpha).reshape(-1))
    return 1 + RENDER_SCALE**2 * r2 / measurement.mean_noise_variance()


def plug_in_variance(chi2: torch.Tensor, m: int, bound: torch.Tensor | None = None) -> torch.Tensor:
    """v = clamp(chi2 / m, 1, bound) per sample."""
    variance = (chi2 / m).clamp(min=1.0)
    if bound is not None:
        variance = torch.minimum(variance, bound.to(variance.device, variance.dtype).expand_as(variance))
    return variance


def likelihood_loss(measurement, image: torch.Tensor, bound: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample chi2 / (2 v) with the plug-in variance v (at most `bound`, held fixed), and the
    normalised residual sqrt(chi2 / m). Returns (loss [B], residual [B]); only `loss` has a graph."""
    chi2 = measurement.chi2(image)
    m = measurement.num_elements
    variance = plug_in_variance(chi2.detach(), m, bound)
    return chi2 / (2 * variance), (chi2.detach() / m).sqrt()
