"""Same-size convolution (convolution.py): a true convolution for every boundary, both paths
(direct and FFT), checked against numpy and deepinv; exact adjoints for any size; bad kernels."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from operator_cases import FAST, adjoint_gap, image, like, rand

import comfyui_dps.dps.operators as ops
from comfyui_dps.dps.operators import padding
from comfyui_dps.dps.operators.convolution import fast_fft_size


def test_blur_of_an_impulse_is_the_flipped_kernel_at_the_centre():
    # A true convolution puts k[m] at offset m - centre from an impulse: the kernel itself.
    kernel = torch.rand(5, 7, dtype=torch.float64)
    x = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    x[..., 10, 10] = 1
    y = ops.Convolution(kernel, "zeros")(x)
    torch.testing.assert_close(y[0, 0, 8:13, 7:14], kernel / kernel.sum())
    assert y.sum().item() == pytest.approx(1.0)


def test_reflect_blur_matches_scipy_style_mirror_reference():
    # Independent numpy reference: mirror-pad without repeating the edge, then convolve.
    kernel = np.random.default_rng(0).random((9, 9))
    kernel /= kernel.sum()
    x = np.random.default_rng(1).random((13, 11))
    padded = np.pad(x, 4, mode="reflect")
    ref = np.zeros_like(x)
    for i in range(13):
        for j in range(11):
            ref[i, j] = (padded[i : i + 9, j : j + 9] * kernel[::-1, ::-1]).sum()
    ours = ops.Convolution(torch.from_numpy(kernel), "reflect")(torch.from_numpy(x)[None, None])
    np.testing.assert_allclose(ours[0, 0].numpy(), ref, atol=1e-12)


def test_blur_preserves_flat_images_except_zero_boundary():
    x = torch.full((1, 3, 16, 16), 0.7, dtype=torch.float64)
    for boundary in ("reflect", "circular"):
        torch.testing.assert_close(ops.GaussianBlur(9, 2.0, boundary)(x), x)
    dark = ops.GaussianBlur(9, 2.0, "zeros")(x)
    assert dark[..., 0, 0].max() < 0.7 - 0.1
    torch.testing.assert_close(dark[..., 8, 8], x[..., 8, 8])


def test_fast_fft_size_is_the_next_length_with_factors_up_to_7():
    assert [fast_fft_size(n) for n in (1, 11, 13, 17, 97, 100, 121)] == [1, 12, 14, 18, 98, 100, 125]


@FAST
@given(h=st.integers(1, 20), w=st.integers(1, 20), kh=st.integers(1, 15), kw=st.integers(1, 15),
       boundary=st.sampled_from(padding.BOUNDARIES), seed=st.integers(0, 2**16))
def test_convolution_adjoint_for_any_sizes(h, w, kh, kw, boundary, seed):
    op = ops.Convolution(rand((kh, kw), seed) + 0.01, boundary)
    x = rand((1, 2, h, w), seed + 1)
    assert op(x).shape == x.shape
    assert adjoint_gap(op, x, seed + 2) < 1e-6


@pytest.mark.parametrize("boundary,mode", [("reflect", "reflect"), ("circular", "circular"), ("zeros", "constant")])
@pytest.mark.parametrize("kernel_hw", [(5, 5), (4, 6), (9, 9), (8, 11), (21, 17)])
def test_convolution_matches_deepinv_blur_forward_and_adjoint(boundary, mode, kernel_hw, deepinv):
    # Covers the direct (<= 5x5) and FFT paths, even sizes (same centre convention) and every
    # boundary. deepinv's Blur adjoint is its own exact transpose, so matching it also checks
    # our adjoint independently of the inner-product test.
    g = torch.Generator().manual_seed(sum(kernel_hw))
    kernel = torch.rand(*kernel_hw, generator=g, dtype=torch.float64)
    ours = ops.Convolution(kernel, boundary)
    theirs = deepinv.physics.Blur(filter=(kernel / kernel.sum())[None, None], padding=mode)
    x = image(batch=2, size=(24, 20), seed=1)
    y = like(ours(x), seed=2)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.adjoint(y), theirs.A_adjoint(y), rtol=0, atol=1e-12)


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kernel,pattern",
    [
        (torch.zeros(0, 3), r"kernel: expected a non-empty 2-D tensor"),
        (torch.ones(3), r"kernel: expected a non-empty 2-D tensor \[kh, kw\], got shape \(3,\)"),
        (torch.ones(1, 3, 3), r"kernel: expected a non-empty 2-D tensor"),
        (-torch.ones(3, 3), r"kernel: expected a kernel with a positive sum .* got sum -9"),
        (torch.tensor([[1.0, -1.0]]), r"positive sum"),
        (torch.tensor([[float("nan")]]), r"kernel: expected finite values"),
        (torch.ones(2, 2, dtype=torch.complex64), r"kernel: expected real values"),
    ],
)
def test_bad_blur_kernels(kernel, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.MotionBlur(kernel)


def test_bad_boundary():
    with pytest.raises(ValueError, match=r"^boundary: expected one of 'reflect', 'circular', 'zeros', got 'mirror'$"):
        ops.GaussianBlur(5, 1.0, boundary="mirror")
