"""Property-based checks over random shapes and settings (hypothesis): the exact-adjoint
identity holds for any image size, kernel shape and boundary, not only the fixed cases."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_operators_cases import inner, like, one_thread  # noqa: F401 (autouse)

import comfyui_dps.dps.operators as ops
from comfyui_dps.dps.operators import padding

FAST = settings(max_examples=25, deadline=None)
boundaries = st.sampled_from(padding.BOUNDARIES)


def _rand(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _adjoint_gap(op, x, seed):
    ax = op(x)
    y = like(ax, seed=seed)
    lhs, rhs = inner(ax, y), inner(x, op.adjoint(y))
    return abs(float(lhs - rhs)) / max(abs(float(lhs)), 1e-30)


@FAST
@given(h=st.integers(1, 12), w=st.integers(1, 12), pads=st.tuples(*[st.integers(0, 30)] * 4),
       boundary=boundaries, seed=st.integers(0, 2**16))
def test_padding_adjoint_for_any_widths(h, w, pads, boundary, seed):
    x = _rand((2, 1, h, w), seed)
    p = padding.pad(x, pads, boundary)
    assert p.shape[-2:] == (h + pads[0] + pads[1], w + pads[2] + pads[3])
    y = _rand(p.shape, seed + 1)
    lhs, rhs = inner(p, y), inner(x, padding.pad_adjoint(y, pads, boundary))
    assert abs(float(lhs - rhs)) <= 1e-9 * max(abs(float(lhs)), 1.0)


@FAST
@given(h=st.integers(1, 20), w=st.integers(1, 20), kh=st.integers(1, 15), kw=st.integers(1, 15),
       boundary=boundaries, seed=st.integers(0, 2**16))
def test_convolution_adjoint_for_any_sizes(h, w, kh, kw, boundary, seed):
    op = ops.Convolution(_rand((kh, kw), seed) + 0.01, boundary)
    x = _rand((1, 2, h, w), seed + 1)
    assert op(x).shape == x.shape
    assert _adjoint_gap(op, x, seed + 2) < 1e-6


@FAST
@given(factor=st.sampled_from([2, 3, 4, 8]), kernel=st.sampled_from(["bicubic", "average"]),
       mh=st.integers(1, 6), mw=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_super_resolution_adjoint_for_any_sizes(factor, kernel, mh, mw, seed):
    op = ops.SuperResolution(factor, kernel)
    x = _rand((1, 3, mh * factor, mw * factor), seed)
    assert op(x).shape[-2:] == (mh, mw)
    assert _adjoint_gap(op, x, seed + 1) < 1e-6


@FAST
@given(h=st.integers(1, 16), w=st.integers(2, 40), acceleration=st.floats(1, 10),
       seed=st.integers(0, 2**16), data=st.data())
def test_fourier_adjoint_and_mask_for_any_sizes(h, w, acceleration, seed, data):
    center = data.draw(st.floats(0.01, 1 / acceleration))
    op = ops.FourierUndersampling(acceleration, center, seed)
    mask = op.mask(w)
    assert mask[w // 2]  # the zero frequency (at the centre of centred k-space) is always sampled
    x = _rand((1, 1, h, w), seed)
    assert _adjoint_gap(op, x, seed + 1) < 1e-6
