"""The dtype policy every loaded array follows, and the rule that measurements are finite.

Floating (float32 / float64) and complex (complex64 / complex128) data keep their dtype; narrower
floats (float16, bfloat16, float8) become float32, complex32 becomes complex64; bool and integers of
at most 16 bits become float32 (exact) and wider integers float64 (exact up to 2**53).
"""

from __future__ import annotations

import torch


def check_finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ValueError(
                f"file '{name}' contains {bad} non-finite value(s) (NaN or infinity); measurements must be finite"
            )


def canonical_tensor(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in the policy's dtype, contiguous, checked finite."""
    dtype = tensor.dtype
    if dtype.is_complex:
        if dtype not in (torch.complex64, torch.complex128):
            tensor = tensor.to(torch.complex64)
    elif dtype.is_floating_point:
        if dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float32)
    elif dtype == torch.bool or tensor.element_size() <= 2:
        tensor = tensor.to(torch.float32)
    else:
        tensor = tensor.to(torch.float64)
    check_finite(name, tensor)
    return tensor.contiguous()
