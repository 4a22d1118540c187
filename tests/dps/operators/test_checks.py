"""Parameter checks (_checks.py): what each accepts, what it returns, and its exact messages."""

import math

import pytest
import torch

from comfyui_dps.dps.operators import _checks


def test_integer_accepts_whole_numbers_and_rejects_the_rest():
    assert _checks.integer("n", 3) == 3 and type(_checks.integer("n", 3.0)) is int
    for bad in (True, 2.5, "3", None):
        with pytest.raises(ValueError, match=r"^n: expected an integer, got"):
            _checks.integer("n", bad)
    with pytest.raises(ValueError, match=r"^k: expected an odd integer >= 1, got 4$"):
        _checks.integer("k", 4, minimum=1, odd=True)
    with pytest.raises(ValueError, match=r"^k: expected an integer >= 2, got 1$"):
        _checks.integer("k", 1, minimum=2)


def test_number_ranges_open_and_closed():
    assert _checks.number("p", 1, 0, 1) == 1.0 and _checks.number("p", 0, 0, 1) == 0.0
    with pytest.raises(ValueError, match=r"^p: expected a number in \(0, inf\], got 0$"):
        _checks.number("p", 0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^p: expected a number in \[0, 1\), got 1$"):
        _checks.number("p", 1, 0, 1, high_open=True)
    for bad in (math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match=r"^p: expected a number in \[-inf, inf\], got"):
            _checks.number("p", bad)


def test_seed_is_a_64_bit_unsigned_integer():
    assert _checks.seed("seed", 2**64 - 1) == 2**64 - 1
    with pytest.raises(ValueError, match=r"^seed: expected an integer in \[0, 2\*\*64\), got 18446744073709551616$"):
        _checks.seed("seed", 2**64)
    with pytest.raises(ValueError, match=r"^seed: expected an integer >= 0, got -1$"):
        _checks.seed("seed", -1)


def test_floating_dtype():
    assert _checks.floating_dtype("dtype", None) is None
    assert _checks.floating_dtype("dtype", torch.float16) is torch.float16
    for bad in (torch.int32, torch.complex128, "float32"):
        with pytest.raises(ValueError, match=r"^dtype: expected a real floating dtype"):
            _checks.floating_dtype("dtype", bad)


def test_size_text_gives_width_then_height():
    assert _checks.size_text((2, 3, 64, 32)) == "32x64 (width x height)"
