"""PNG and TIFF images as ComfyUI IMAGE tensors [1, H, W, C] float32.

Values are scaled to [0, 1] by the file's sample depth (8-bit / 255, 16-bit / 65535, 1-bit as 0/1);
32-bit float TIFFs are returned as stored (not clipped) but must be finite. Grey stays grey (C = 1),
colour is C = 3, palettes become RGB, and an alpha channel is dropped. Orientation tags, ICC profiles
and gamma are ignored: the pixel grid and values are returned as stored. Multi-page TIFFs give page 1.

The formats live in png_files and tiff_files; this module holds what they share.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from .arrays import check_finite


def not_image(name: str, why: str) -> ValueError:
    return ValueError(f"file '{name}' is not a readable image: {why}")


def missing_library(name: str, package: str, error: ImportError) -> ValueError:
    # Decoders are imported when an image needs them: a failed install costs images, not the pack.
    return ValueError(f"file '{name}': reading it needs the {package} package (pip install {package}); {error}")


def inflates_within(parts, limit: int) -> bool:
    """Whether the zlib stream split over `parts` inflates to at most `limit` bytes. Counts in bounded
    pieces and keeps nothing: the guard that runs before a decoder that would inflate without bound."""
    inflater = zlib.decompressobj()
    total = 0
    for part in parts:
        pending = part
        while pending:
            produced = len(inflater.decompress(pending, limit + 1 - total))
            total += produced
            if total > limit:
                return False
            if not produced and len(inflater.unconsumed_tail) == len(pending):
                break  # no progress: the stream is corrupt, which the decoder reports
            pending = inflater.unconsumed_tail
    return True


def image_tensor(name: str, samples: np.ndarray, scale: float | None) -> torch.Tensor:
    """[1, H, W, C] float32 from samples [H, W] or [H, W, C], divided by `scale` (None: as stored)."""
    values = samples.astype(np.float32)
    if scale is not None and scale != 1:
        values /= np.float32(scale)
    if values.ndim == 2:
        values = values[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(values)).unsqueeze(0)
    if samples.dtype.kind not in "biu" or not (scale is None or scale >= 1):
        check_finite(name, tensor)  # integers over a scale of at least 1 are finite: skip the pass
    return tensor
