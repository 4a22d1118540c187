"""Super-resolution (super_resolution.py): antialiased bicubic and box shrinking, checked against
torch's own resamplers and deepinv, its exact adjoint for any size, and its settings."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from operator_cases import FAST, adjoint_gap, image, like, rand

import comfyui_dps.dps.operators as ops


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_bicubic_matches_torch_antialiased_interpolate(factor, dtype, tol):
    # Achieved: ~4e-16 in float64, ~3e-7 in float32 (both compute the same weights).
    x = image(batch=2, size=(48, 72), dtype=dtype, seed=1)
    ours = ops.SuperResolution(factor, "bicubic")(x)
    ref = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_average_matches_avg_pool(factor):
    x = image(batch=2, size=(48, 72), seed=2)
    torch.testing.assert_close(ops.SuperResolution(factor, "average")(x), F.avg_pool2d(x, factor), rtol=0, atol=1e-14)


@pytest.mark.parametrize("kernel", ["bicubic", "average"])
def test_super_resolution_sizes_and_flat_images(kernel):
    op = ops.SuperResolution(4, kernel)
    x = torch.full((1, 3, 32, 16), 0.3, dtype=torch.float64)
    y = op(x)
    assert y.shape == (1, 3, 8, 4) and op.image_size((8, 4)) == (32, 16)
    torch.testing.assert_close(y, torch.full_like(y, 0.3))  # weights sum to 1 per output pixel


def test_average_shrinking_undoes_nearest_upsampling():
    y = image(batch=1, size=(5, 7), seed=3)
    up = F.interpolate(y, scale_factor=2, mode="nearest")
    torch.testing.assert_close(ops.SuperResolution(2, "average")(up), y)


@FAST
@given(factor=st.sampled_from([2, 3, 4, 8]), kernel=st.sampled_from(["bicubic", "average"]),
       mh=st.integers(1, 6), mw=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_super_resolution_adjoint_for_any_sizes(factor, kernel, mh, mw, seed):
    op = ops.SuperResolution(factor, kernel)
    x = rand((1, 3, mh * factor, mw * factor), seed)
    assert op(x).shape[-2:] == (mh, mw)
    assert adjoint_gap(op, x, seed + 1) < 1e-6


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_average_super_resolution_matches_deepinv_box_downsampling(factor, deepinv):
    x = image(batch=2, size=(32, 48), seed=7)
    box = torch.full((1, 1, factor, factor), 1 / factor**2, dtype=torch.float64)
    theirs = deepinv.physics.Downsampling(img_size=(3, 32, 48), filter=box, factor=factor, padding="valid")
    ours = ops.SuperResolution(factor, "average")
    y = like(ours(x), seed=8)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.adjoint(y), theirs.A_adjoint(y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bicubic_super_resolution_matches_deepinv_in_the_interior(factor, deepinv):
    # deepinv filters with the same stretched Keys cubic (identical taps for even factors) and
    # then keeps every factor-th pixel starting at 0, which centres output i at input
    # s*i + 0.5 instead of s*i + (s - 1)/2 (the pixel-area centre, PIL/torch): shifting the
    # input by s/2 - 1 pixels aligns them. deepinv pads the border circularly; we truncate and
    # renormalise as PIL/torch do, so only the interior is comparable (2 output pixels in).
    # Odd factors are not comparable: deepinv samples the cubic half a pixel off ours.
    # deepinv builds the filter in float32, hence 1e-6.
    x = image(batch=1, size=(64, 80), seed=9)
    theirs = deepinv.physics.Downsampling(img_size=(3, 64, 80), filter="bicubic", factor=factor, padding="circular")
    shift = factor // 2 - 1
    theirs_y = theirs(torch.roll(x, (-shift, -shift), dims=(-2, -1)).float()).double()
    ours = ops.SuperResolution(factor, "bicubic")(x)
    inner = (..., slice(2, -2), slice(2, -2))
    torch.testing.assert_close(ours[inner], theirs_y[inner], rtol=0, atol=1e-6)
    # ...and the border really is where the two differ (so the crop above is not hiding more).
    assert (ours - theirs_y).abs().max() > 1e-3


# --- settings and sizes -------------------------------------------------------------------

def test_super_resolution_size_not_divisible_names_axis_and_factor():
    with pytest.raises(ValueError, match=r"^image: height 30 is not divisible by the super-resolution factor 4$"):
        ops.SuperResolution(4)(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"^image: width 32 is not divisible by the super-resolution factor 3$"):
        ops.SuperResolution(3)(torch.zeros(1, 3, 30, 32))


@pytest.mark.parametrize("factor", [5, 1, 0, 2.5, "4"])
def test_super_resolution_factor(factor):
    with pytest.raises(ValueError, match=r"^scale_factor: expected"):
        ops.SuperResolution(factor)


def test_super_resolution_factor_5_lists_the_choices():
    with pytest.raises(ValueError, match=r"^scale_factor: expected one of 2, 3, 4, 8, got 5$"):
        ops.SuperResolution(5)


def test_super_resolution_kernel():
    with pytest.raises(ValueError, match=r"^kernel: expected one of 'bicubic', 'average', got 'lanczos'$"):
        ops.SuperResolution(2, "lanczos")
