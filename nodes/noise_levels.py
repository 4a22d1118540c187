"""alpha_t and sigma_t of x_t = alpha_t x0 + sigma_t eps, read off a model family's own definition."""

from __future__ import annotations

from typing import NamedTuple

import torch


class NoiseLevels(NamedTuple):
    alpha: torch.Tensor  # [B]
    sigma: torch.Tensor  # [B]


def noise_levels(model_sampling, sigma: torch.Tensor, model_name: str = "model") -> NoiseLevels:
    """Per sample, from the family's noise_scaling, so EPS / V_PREDICTION (alpha = 1) and flow models
    (alpha = 1 - sigma) are handled by ComfyUI's definition rather than by a list of classes.

    A family whose noise_scaling adds no noise at a positive sigma (image-to-image flows start from
    an image, not from noise) has no x_t = alpha x0 + sigma eps to guide: that is an error, named."""
    if not callable(getattr(model_sampling, "noise_scaling", None)):
        raise ValueError(f"model: {model_name}'s sampling ({type(model_sampling).__name__}) does not say how it "
                         "adds noise (no noise_scaling), so DPS guidance cannot read it; this model family is not "
                         "supported")
    sigma = sigma.reshape(-1).float()
    ones = torch.ones(sigma.shape[0], 1, 1, 1, device=sigma.device)
    zeros = torch.zeros_like(ones)
    alpha = model_sampling.noise_scaling(sigma, zeros.clone(), ones.clone()).reshape(-1)
    noise = model_sampling.noise_scaling(sigma, ones.clone(), zeros.clone()).reshape(-1)
    if bool(((noise <= 0) & (sigma > 0)).any()) or not bool(torch.isfinite(alpha).all() and torch.isfinite(noise).all()):
        raise ValueError(
            f"model: {model_name}'s sampling ({type(model_sampling).__name__}) adds no noise of scale sigma, so DPS "
            "guidance cannot read x_t = alpha x0 + sigma eps from it; this model family is not supported"
        )
    return NoiseLevels(alpha=alpha, sigma=noise)
