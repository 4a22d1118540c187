"""Parameter checks shared by the operators and noise models: each raises ValueError naming the
parameter and what was expected, so a user sees which setting is wrong."""

from __future__ import annotations

import math
import numbers

import torch


def integer(name: str, value, minimum: int | None = None, odd: bool = False) -> int:
    """`value` as an int; rejects bools, floats with a fraction, and values below `minimum`."""
    expected = "an odd integer" if odd else "an integer"
    if minimum is not None:
        expected += f" >= {minimum}"
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok or (minimum is not None and value < minimum) or (odd and value % 2 == 0):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(value)


def number(name: str, value, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, expected: str | None = None) -> float:
    """`value` as a finite float inside the given (half-)open or closed range."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if expected is None:
            lo = "(" if low_open else "["
            hi = ")" if high_open else "]"
            expected = f"a number in {lo}{'-inf' if low is None else low}, " \
                       f"{'inf' if high is None else high}{hi}"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return float(value)


def seed(name: str, value) -> int:
    """A seed usable by torch.Generator.manual_seed (0 <= seed < 2**64)."""
    value = integer(name, value, minimum=0)
    if value >= 2 ** 64:
        raise ValueError(f"{name}: expected an integer in [0, 2**64), got {value!r}")
    return value


def floating_dtype(name: str, value) -> torch.dtype | None:
    """None, or a real floating torch dtype (what `to` converts floating tensors to)."""
    if value is None or (isinstance(value, torch.dtype) and value.is_floating_point):
        return value
    raise ValueError(f"{name}: expected a real floating dtype such as torch.float32, got {value!r}")


def size_text(shape) -> str:
    """'WxH (width x height)' of an image or mask shape [..., H, W], for messages: the order in which
    ComfyUI's nodes and the other messages of this pack give sizes."""
    return f"{shape[-1]}x{shape[-2]} (width x height)"
