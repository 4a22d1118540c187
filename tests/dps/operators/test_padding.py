"""Boundary extension (padding.py): what each boundary copies, for pad widths beyond the image
too, and the exact adjoint for any widths."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from operator_cases import FAST, inner, rand

from comfyui_dps.dps.operators import padding

boundaries = st.sampled_from(padding.BOUNDARIES)


def test_source_index_of_each_boundary():
    # Pixels a b c padded by 4 on each side.
    assert padding.source_index(3, 4, 4, "reflect").tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2]
    assert padding.source_index(3, 4, 4, "circular").tolist() == [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert padding.source_index(1, 2, 1, "reflect").tolist() == [0, 0, 0, 0]  # nothing to mirror


@pytest.mark.parametrize(("boundary", "mode"), [("reflect", "reflect"), ("circular", "circular"),
                                                ("zeros", "constant")])
def test_pad_matches_torch_within_the_image_size(boundary, mode):
    x = rand((2, 3, 7, 9), 1)
    pads = (6, 3, 8, 0)  # torch's reflect needs widths < the size
    expected = F.pad(x, (pads[2], pads[3], pads[0], pads[1]), mode=mode)
    torch.testing.assert_close(padding.pad(x, pads, boundary), expected, rtol=0, atol=0)


@pytest.mark.parametrize("boundary", ["reflect", "circular"])
def test_pad_matches_numpy_beyond_the_image_size(boundary):
    # numpy's "reflect" and "wrap" repeat the mirror (period) for any width, as ours do.
    x = rand((1, 1, 3, 4), 2)
    pads = (9, 7, 10, 11)
    expected = np.pad(x[0, 0].numpy(), ((9, 7), (10, 11)), mode="reflect" if boundary == "reflect" else "wrap")
    np.testing.assert_array_equal(padding.pad(x, pads, boundary)[0, 0].numpy(), expected)


@FAST
@given(h=st.integers(1, 12), w=st.integers(1, 12), pads=st.tuples(*[st.integers(0, 30)] * 4),
       boundary=boundaries, seed=st.integers(0, 2**16))
def test_padding_adjoint_for_any_widths(h, w, pads, boundary, seed):
    x = rand((2, 1, h, w), seed)
    p = padding.pad(x, pads, boundary)
    assert p.shape[-2:] == (h + pads[0] + pads[1], w + pads[2] + pads[3])
    y = rand(p.shape, seed + 1)
    lhs, rhs = inner(p, y), inner(x, padding.pad_adjoint(y, pads, boundary))
    assert abs(float(lhs - rhs)) <= 1e-9 * max(abs(float(lhs)), 1.0)
