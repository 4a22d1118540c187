"""Batched conjugate gradients for symmetric positive definite systems, one per sample.

Solves M v = b where `apply(z)` computes M z for a batch [B, ...] of real tensors; every sample
has its own step sizes and stops on its own (its relative residual ||b - M v|| / ||b|| below
`tolerance`), all stop at `max_iterations`. Used by the Gram solves (gram.py) for operators without a
closed form (bicubic super-resolution, padded blur, compositions), and, with a preconditioner (an
approximate inverse of M, also symmetric positive definite), by the solves with the spectral
covariance (`pigdm`, `proximal`; gram.solve_with_covariance) and by `moment`.
"""

from __future__ import annotations

from typing import Callable

import torch

from .core import per_sample_sum

#: Cap on iterations: a solve costs one operator forward and adjoint per iteration, small next
#: to a network pass. The systems of pigdm are (a A A^T + noise variance): their condition number
#: is at most 1 + a ||A||^2 / noise variance (about 100 at noise 0.05), so CG's error falls by
#: about (sqrt(kappa) - 1) / (sqrt(kappa) + 1) ~ 0.8 per iteration at worst and far faster in
#: practice (the spectrum of blurs and shrinking clusters near 0).
MAX_ITERATIONS = 100
#: Relative residual at which a sample stops: the correction is then exact to about 1%, below what
#: the approximations of the likelihood leave. Measured on a 13x13 reflect blur of a 128 px image
#: at noise 0.02, r_t^2 = 0.9: 1e-3 took 44-89 iterations (smooth or white right-hand side), 1e-2
#: 18-63; at r_t^2 = 0.1, 20-28 and 11-19. Each iteration is an operator forward and adjoint. (A
#: circular-blur preconditioner did not help: the border, where padding differs, dominates.)
TOLERANCE = 1e-2


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real inner product, shaped [B, 1, ...] to broadcast over the sample."""
    return per_sample_sum(a * b, keepdim=True)


def _ratio(num: torch.Tensor, den: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """num / den where `where` and den > 0, else 0 (converged samples, vanishing curvature)."""
    ok = where & (den > 0)
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def conjugate_gradients(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *,
                        max_iterations: int | None = None, tolerance: float | None = None,
                        precondition: Callable[[torch.Tensor], torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, int]:
    """(v, iterations run) with M v ~ b for each sample of the real batch b [B, ...];
    `max_iterations` and `tolerance` default to MAX_ITERATIONS and TOLERANCE. `precondition(r)`
    applies an approximate inverse of M (default: none)."""
    max_iterations = MAX_ITERATIONS if max_iterations is None else max_iterations
    tolerance = TOLERANCE if tolerance is None else tolerance
    precondition = precondition or (lambda r: r)
    v = torch.zeros_like(b)
    r = b.clone()
    z = precondition(r)
    p = z.clone()
    rr = _dot(r, r)
    rz = _dot(r, z)
    target = (tolerance**2) * rr
    iterations = 0
    for _ in range(max_iterations):
        active = rr > target
        if not bool(active.any()):
            break
        iterations += 1
        mp = apply(p)
        step = _ratio(rz, _dot(p, mp), active)
        v = v + step * p
        r = r - step * mp
        z = precondition(r)
        rz_new = _dot(r, z)
        beta = _ratio(rz_new, rz, active)
        p = z + beta * p
        rr = torch.where(active, _dot(r, r), rr)
        rz = torch.where(active, rz_new, rz)
    return v, iterations
