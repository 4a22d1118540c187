"""Boundary extension of an image and its exact adjoint.

"reflect" mirrors about the edge pixel without repeating it (d c b | a b c d | c b a), as
torch's F.pad(mode="reflect") does, but for any pad width (the mirror repeats periodically),
so kernels may be larger than the image. "circular" wraps around; "zeros" pads with 0.

reflect and circular are index maps, padded = x[idx]; the adjoint of a gather is the
scatter-add x* = sum of y over all padded positions that copied the same pixel, which
index_add computes exactly. The adjoint of zero padding is cropping.
"""

from __future__ import annotations

import torch

BOUNDARIES = ("reflect", "circular", "zeros")


def source_index(size: int, before: int, after: int, boundary: str) -> torch.Tensor:
    """For each position of the padded axis, the index of the pixel it copies."""
    pos = torch.arange(-before, size + after)
    if boundary == "circular":
        return pos % size
    if size == 1:
        return torch.zeros_like(pos)
    period = 2 * (size - 1)
    pos = pos % period
    return torch.where(pos < size, pos, period - pos)


def pad(x: torch.Tensor, pads: tuple[int, int, int, int], boundary: str) -> torch.Tensor:
    """Extend the last two axes of x by pads = (top, bottom, left, right)."""
    top, bottom, left, right = pads
    if boundary == "zeros":
        return torch.nn.functional.pad(x, (left, right, top, bottom))
    h, w = x.shape[-2:]
    rows = source_index(h, top, bottom, boundary).to(x.device)
    cols = source_index(w, left, right, boundary).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def pad_adjoint(y: torch.Tensor, pads: tuple[int, int, int, int], boundary: str) -> torch.Tensor:
    """The exact adjoint of `pad`: folds the padded border back onto the pixels it copied."""
    top, bottom, left, right = pads
    h, w = y.shape[-2] - top - bottom, y.shape[-1] - left - right
    if boundary == "zeros":
        return y[..., top:top + h, left:left + w]
    rows = source_index(h, top, bottom, boundary).to(y.device)
    cols = source_index(w, left, right, boundary).to(y.device)
    folded = y.new_zeros(*y.shape[:-1], w).index_add(-1, cols, y)
    return folded.new_zeros(*y.shape[:-2], h, w).index_add(-2, rows, folded)
