"""Batched conjugate gradients for symmetric positive definite systems, one per sample.

Solves M v = b where `apply(z)` computes M z for a batch [B, ...] of real tensors; every sample
has its own step sizes and stops on its own (its relative residual ||b - M v|| / ||b|| below
`tolerance`), all stop at `max_iterations`. Used by the Gram solves of `pigdm` (gram.py) for
operators without a closed form (bicubic super-resolution, padded blur, compositions).
"""

from __future__ import annotations

from typing import Callable

import torch

#: Cap on iterations: a solve costs one operator forward and adjoint per iteration, small next
#: to a network pass. The systems of pigdm are (a A A^T + noise variance): their condition number
#: is at most 1 + a ||A||^2 / noise variance (about 100 at noise 0.05), so CG's error falls by
#: about (sqrt(kappa) - 1) / (sqrt(kappa) + 1) ~ 0.8 per iteration at worst and far faster in
#: practice (the spectrum of blurs and shrinking clusters near 0).
MAX_ITERATIONS = 100
#: Relative residual at which a sample stops: the correction is then exact to about 0.1%, far
#: below what the approximations of the likelihood leave (and float32 rounding limits it anyway).
TOLERANCE = 1e-3


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real inner product, shaped [B, 1, ...] to broadcast over the sample."""
    return (a * b).reshape(a.shape[0], -1).sum(dim=1).reshape(-1, *([1] * (a.ndim - 1)))


def conjugate_gradients(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *,
                        max_iterations: int | None = None, tolerance: float | None = None
                        ) -> tuple[torch.Tensor, int]:
    """(v, iterations run) with M v ~ b for each sample of the real batch b [B, ...];
    `max_iterations` and `tolerance` default to MAX_ITERATIONS and TOLERANCE."""
    max_iterations = MAX_ITERATIONS if max_iterations is None else max_iterations
    tolerance = TOLERANCE if tolerance is None else tolerance
    v = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = _dot(r, r)
    target = (tolerance**2) * rr
    iterations = 0
    for _ in range(max_iterations):
        active = rr > target
        if not bool(active.any()):
            break
        iterations += 1
        mp = apply(p)
        pmp = _dot(p, mp)
        # Converged samples (and any with a vanishing curvature) take no step.
        step = torch.where(active & (pmp > 0), rr / torch.where(pmp > 0, pmp, torch.ones_like(pmp)),
                           torch.zeros_like(rr))
        v = v + step * p
        r = r - step * mp
        rr_new = _dot(r, r)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = r + beta * p
        rr = torch.where(active, rr_new, rr)
    return v, iterations
