"""Cross-checks against deepinv 0.5.0 (an independent implementation; test-only dependency).

Where the definitions coincide the outputs must agree to float64 rounding; where deepinv's
convention differs (border handling of bicubic downsampling, centred k-space, |.|^2 instead
of |.| in phase retrieval, float32 luma weights) the comparable part is tested and the
difference is said next to the assertion.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F
from test_operators_cases import image, like, one_thread  # noqa: F401 (autouse)

import comfyui_dps.dps.operators as ops
from comfyui_dps.dps.operators.phase_retrieval import EPS

deepinv = pytest.importorskip("deepinv")
physics = deepinv.physics

EXACT = dict(rtol=0, atol=1e-12)  # float64 rounding


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deepinv warns about deprecated defaults
        yield


@pytest.mark.parametrize("boundary,padding", [("reflect", "reflect"), ("circular", "circular"), ("zeros", "constant")])
@pytest.mark.parametrize("kernel_hw", [(5, 5), (4, 6), (9, 9), (8, 11), (21, 17)])
def test_convolution_matches_deepinv_blur_forward_and_adjoint(boundary, padding, kernel_hw):
    # Covers the direct (<= 5x5) and FFT paths, even sizes (same centre convention) and every
    # boundary. deepinv's Blur adjoint is its own exact transpose, so matching it also checks
    # our adjoint independently of the inner-product test.
    g = torch.Generator().manual_seed(sum(kernel_hw))
    kernel = torch.rand(*kernel_hw, generator=g, dtype=torch.float64)
    ours = ops.Convolution(kernel, boundary)
    theirs = physics.Blur(filter=(kernel / kernel.sum())[None, None], padding=padding)
    x = image(batch=2, size=(24, 20), seed=1)
    y = like(ours(x), seed=2)
    torch.testing.assert_close(ours(x), theirs(x), **EXACT)
    torch.testing.assert_close(ours.adjoint(y), theirs.A_adjoint(y), **EXACT)


def test_camera_shake_motion_blur_matches_deepinv_blur():
    blur = ops.MotionBlur.camera_shake(61, 0.5, seed=3)
    theirs = physics.Blur(filter=blur.kernel[None, None], padding="reflect")
    x = image(batch=1, size=(40, 36), seed=4)  # reflect padding of 30 needs sides > 30 in torch
    torch.testing.assert_close(blur(x), theirs(x), **EXACT)


def test_circular_gaussian_blur_matches_deepinv_blur_fft():
    blur = ops.GaussianBlur(9, 1.7, boundary="circular")
    x = image(batch=2, size=(24, 24), seed=5)
    theirs = physics.BlurFFT(img_size=(3, 24, 24), filter=blur.kernel[None, None])
    y = like(x, seed=6)
    # BlurFFT multiplies spectra computed in float32 internally: agreement to ~1e-7.
    torch.testing.assert_close(blur(x), theirs(x).double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(blur.adjoint(y), theirs.A_adjoint(y).double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.8, 2.0, 3.0])
def test_gaussian_kernel_matches_deepinv(sigma):
    ours = ops.gaussian_kernel(61, sigma)
    theirs = deepinv.physics.functional.gaussian_blur(psf_size=(61, 61), sigma=(sigma, sigma), dtype=torch.float64)
    torch.testing.assert_close(ours, theirs[0, 0], **EXACT)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_average_super_resolution_matches_deepinv_box_downsampling(factor):
    x = image(batch=2, size=(32, 48), seed=7)
    box = torch.full((1, 1, factor, factor), 1 / factor**2, dtype=torch.float64)
    theirs = physics.Downsampling(img_size=(3, 32, 48), filter=box, factor=factor, padding="valid")
    ours = ops.SuperResolution(factor, "average")
    y = like(ours(x), seed=8)
    torch.testing.assert_close(ours(x), theirs(x), **EXACT)
    torch.testing.assert_close(ours.adjoint(y), theirs.A_adjoint(y), **EXACT)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bicubic_super_resolution_matches_deepinv_in_the_interior(factor):
    # deepinv filters with the same stretched Keys cubic (identical taps for even factors) and
    # then keeps every factor-th pixel starting at 0, which centres output i at input
    # s*i + 0.5 instead of s*i + (s - 1)/2 (the pixel-area centre, PIL/torch): shifting the
    # input by s/2 - 1 pixels aligns them. deepinv pads the border circularly; we truncate and
    # renormalise as PIL/torch do, so only the interior is comparable (2 output pixels in).
    # Odd factors are not comparable: deepinv samples the cubic half a pixel off ours.
    # deepinv builds the filter in float32, hence 1e-6.
    x = image(batch=1, size=(64, 80), seed=9)
    theirs = physics.Downsampling(img_size=(3, 64, 80), filter="bicubic", factor=factor, padding="circular")
    shift = factor // 2 - 1
    theirs_y = theirs(torch.roll(x, (-shift, -shift), dims=(-2, -1)).float()).double()
    ours = ops.SuperResolution(factor, "bicubic")(x)
    inner = (..., slice(2, -2), slice(2, -2))
    torch.testing.assert_close(ours[inner], theirs_y[inner], rtol=0, atol=1e-6)
    # ...and the border really is where the two differ (so the crop above is not hiding more).
    assert (ours - theirs_y).abs().max() > 1e-3


def test_inpainting_matches_deepinv_with_the_mask_inverted():
    # deepinv's mask marks KEPT pixels (1 = kept); ComfyUI's, and ours, marks missing ones.
    keep = (torch.rand(24, 24, generator=torch.Generator().manual_seed(3)) > 0.4).double()
    x = image(batch=2, seed=10)
    theirs = physics.Inpainting(img_size=(3, 24, 24), mask=keep)
    ours = ops.Inpainting(1 - keep)
    torch.testing.assert_close(ours(x), theirs(x), **EXACT)
    torch.testing.assert_close(ours.adjoint(x), theirs.A_adjoint(x), **EXACT)


def test_colorization_matches_deepinv_decolorize():
    # deepinv's default "rec601" uses MATLAB's rounded (0.2989, 0.5870, 0.1140) renormalised to
    # sum 1, 4e-5 away from the BT.601 (0.299, 0.587, 0.114) we use; so we give deepinv our
    # weights. It stores them in float32: agreement to ~1e-7.
    x = image(batch=2, seed=11)
    y = like(ops.Colorization()(x), seed=12)
    theirs = physics.Decolorize(srf=[0.299, 0.587, 0.114])
    torch.testing.assert_close(ops.Colorization()(x), theirs(x).double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ops.Colorization().adjoint(y), theirs.A_adjoint(y).double(), rtol=0, atol=1e-6)


def _to_deepinv_complex(x):
    """[B, 1, H, W] real -> deepinv's [B, 2, H, W] (real, imaginary) layout."""
    return torch.cat([x, torch.zeros_like(x)], dim=1)


def test_fourier_undersampling_matches_deepinv_mri():
    # deepinv's MRI uses centred k-space, fftshift(fft2(ifftshift(x))), as ours does: the same
    # mask gives the same complex measurement, and the same zero-filled reconstruction A* A x.
    op = ops.FourierUndersampling(4, 0.08, seed=3)
    x = image(batch=2, channels=1, size=(32, 40), seed=13)
    mask = op.mask(40).double()
    theirs = physics.MRI(mask=mask.expand(32, 40).clone(), img_size=(32, 40))
    k_theirs = theirs(_to_deepinv_complex(x))
    k_theirs = torch.complex(k_theirs[:, 0], k_theirs[:, 1])[:, None]
    k_ours = op(x)
    torch.testing.assert_close(k_ours, k_theirs, **EXACT)
    zero_filled_theirs = theirs.A_adjoint(theirs(_to_deepinv_complex(x)))[:, :1]
    torch.testing.assert_close(op.adjoint(k_ours), zero_filled_theirs, **EXACT)


def test_phase_retrieval_matches_deepinv_with_an_fft_operator():
    # deepinv's PhaseRetrieval(B) measures |B x|^2 for a linear B; with B = deepinv's full-mask
    # MRI (an orthonormal centred FFT) applied to the zero-padded image it is the square of
    # ours (minus our 1e-12 epsilon), fftshifted.
    x = image(batch=2, channels=1, size=(12, 10), seed=14)
    ours = ops.PhaseRetrieval(2.0)(x)
    padded = F.pad(x, (5, 5, 6, 6))
    fft = physics.MRI(img_size=(24, 20))
    # deepinv squares its (real, imaginary) channels separately: |Bx|^2 is their sum.
    parts = physics.PhaseRetrieval(B=fft)(_to_deepinv_complex(padded))
    theirs = parts[:, :1] + parts[:, 1:]

    torch.testing.assert_close(torch.fft.fftshift(ours**2 - EPS, dim=(-2, -1)), theirs, rtol=0, atol=1e-12)
