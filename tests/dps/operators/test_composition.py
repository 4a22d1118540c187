"""Composition (composition.py): the second operator after the first, sizes composed, both
checked, and both moved by `to`."""

import pytest
import torch
from operator_cases import image

import comfyui_dps.dps.operators as ops


def test_composition_applies_in_order_and_composes_sizes():
    blur, sr = ops.GaussianBlur(5, 1.0), ops.SuperResolution(2)
    both = ops.Composition(blur, sr)
    x = image(seed=12)
    torch.testing.assert_close(both(x), sr(blur(x)))
    assert both.is_linear and both.image_size((12, 12)) == (24, 24)
    assert not ops.Composition(blur, ops.PhaseRetrieval(2.0)).is_linear
    assert ops.Composition(sr, ops.PhaseRetrieval(2.0)).image_size((24, 24)) == (24, 24)
    assert "then" in both.name


def test_adjoint_is_the_parts_adjoints_in_reverse_order():
    blur, sr = ops.GaussianBlur(5, 1.0), ops.SuperResolution(2)
    y = image(size=(12, 12), seed=13)
    torch.testing.assert_close(ops.Composition(blur, sr).adjoint(y), blur.adjoint(sr.adjoint(y)), rtol=0, atol=0)


def test_composition_needs_operators_and_checks_both_stages():
    with pytest.raises(ValueError, match=r"^second: expected an Operator, got str$"):
        ops.Composition(ops.Colorization(), "blur")
    both = ops.Composition(ops.GaussianBlur(3, 1.0), ops.SuperResolution(4))
    with pytest.raises(ValueError, match=r"height 30 is not divisible by the super-resolution factor 4"):
        both(torch.zeros(1, 3, 30, 32))


def test_to_moves_both_parts_into_new_ones():
    blur, mask = ops.GaussianBlur(5, 1.0), ops.Inpainting(torch.zeros(24, 24))
    both = ops.Composition(blur, mask)
    moved = both.to("meta", torch.float32)
    assert moved.first is not blur and moved.second is not mask
    assert moved.first.kernel.device.type == "meta" and moved.first.kernel.dtype == torch.float32
    assert moved.second.keep.device.type == "meta" and moved.second.keep.dtype == torch.float32
    assert both.first is blur and blur.kernel.device.type == "cpu" and blur.kernel.dtype == torch.float64
    assert moved.name == both.name and moved.is_linear
