"""Inpainting: the measurement is the image with some pixels removed, y = keep * x.

Masks follow ComfyUI: 1 = missing (to be generated), 0 = kept. Fractional mask values are
allowed and act as weights, keep = 1 - mask. The operator is a diagonal matrix with entries in
[0, 1], so it is linear and self-adjoint.
"""

from __future__ import annotations

import torch

from . import _checks
from .base import Operator


class Masking(Operator):
    """y = keep * x for a keep-weight map [b, 1, H, W] (b = 1 broadcasts over the batch)."""

    is_linear = True

    def keep_weights(self, like: torch.Tensor) -> torch.Tensor:
        """The keep weights for images shaped like `like`, in its dtype, on its device."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.keep_weights(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.keep_weights(y)


class Inpainting(Masking):
    """Fixed-mask inpainting. `mask`: [H, W], [B, H, W] or [B, 1, H, W], values in [0, 1]
    (1 = missing). A batch-1 mask serves every image batch; a batch-B mask pairs with images
    of batch B."""

    tensor_names = ("keep",)

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor):
            raise ValueError(f"mask: expected a tensor, got {type(mask).__name__}")
        if mask.dim() == 2:
            mask = mask[None, None]
        elif mask.dim() == 3:
            mask = mask[:, None]
        elif mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask: expected shape [H, W], [B, H, W] or [B, 1, H, W], "
                             f"got {tuple(mask.shape)}")
        if mask.numel() == 0:
            raise ValueError(f"mask: expected a non-empty mask, got shape {tuple(mask.shape)}")
        if mask.is_complex():
            raise ValueError("mask: expected real values in [0, 1], got a complex tensor")
        # A private float64 CPU copy: later edits to the caller's tensor cannot leak in.
        mask = mask.detach().to(device="cpu", dtype=torch.float64).clone()
        if not torch.isfinite(mask).all():
            raise ValueError("mask: expected finite values in [0, 1], got NaN or infinity")
        lo, hi = float(mask.min()), float(mask.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"mask: expected values in [0, 1], got values in [{lo:g}, {hi:g}]")
        self.keep = 1 - mask
        missing = 100 * float(mask.mean())
        self.name = f"inpainting ({missing:.0f}% missing)"

    def __repr__(self) -> str:
        return f"Inpainting(mask of shape {tuple(self.keep.shape)}, {self.name})"

    def check_image(self, shape) -> None:
        super().check_image(shape)
        if tuple(shape[-2:]) != tuple(self.keep.shape[-2:]):
            raise ValueError(f"mask: size {_checks.size_text(self.keep.shape)} does not match the image "
                             f"size {_checks.size_text(shape)}")
        b = self.keep.shape[0]
        if b not in (1, shape[0]):
            raise ValueError(f"mask: batch size {b} does not match the image batch size "
                             f"{shape[0]}")

    def keep_weights(self, like: torch.Tensor) -> torch.Tensor:
        self.check_image(like.shape)
        return self.keep.to(device=like.device, dtype=like.dtype)


class RandomInpainting(Masking):
    """Inpainting with a random pixel mask (the same for every channel and batch item):
    round(missing_fraction * H * W) pixels are missing, chosen by a permutation drawn from a CPU
    torch.Generator seeded with `seed`, so the mask for a given image size never changes."""

    def __init__(self, missing_fraction: float, seed: int = 0):
        self.missing_fraction = _checks.number("missing_fraction", missing_fraction, 0, 1,
                                               high_open=True)
        self.seed = _checks.seed("seed", seed)
        self.name = f"random inpainting ({100 * self.missing_fraction:.0f}% missing)"

    def __repr__(self) -> str:
        return f"RandomInpainting(missing_fraction={self.missing_fraction:g}, seed={self.seed})"

    def mask(self, height: int, width: int) -> torch.Tensor:
        """The [1, 1, H, W] float64 CPU mask (1 = missing) used for images of this size."""
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        order = torch.randperm(height * width, generator=generator)
        flat = torch.zeros(height * width, dtype=torch.float64)
        flat[order[: round(self.missing_fraction * height * width)]] = 1
        return flat.view(1, 1, height, width)

    def keep_weights(self, like: torch.Tensor) -> torch.Tensor:
        (height, width), dtype = like.shape[-2:], like.dtype
        keep = self._derived(("keep", height, width, dtype), lambda: (1 - self.mask(height, width)).to(dtype))
        return keep.to(like.device)
