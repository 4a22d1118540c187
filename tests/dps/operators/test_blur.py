"""The DPS paper's two blurs (blur.py): the Gaussian kernel and its settings, and motion blur from
a user's or a camera-shake kernel; checked against deepinv."""

import pytest
import torch
from operator_cases import image, like

import comfyui_dps.dps.operators as ops


def test_gaussian_kernel_formula_and_identity_at_sigma_zero():
    k = ops.gaussian_kernel(7, 1.5)
    t = torch.arange(7, dtype=torch.float64) - 3
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    torch.testing.assert_close(k, torch.outer(g, g) / g.sum() ** 2)
    x = image(seed=4)
    torch.testing.assert_close(ops.GaussianBlur(61, 0.0)(x), x, rtol=0, atol=1e-12)


def test_user_motion_kernel_is_normalised():
    blur = ops.MotionBlur(torch.tensor([[0.0, 2.0, 2.0]]))
    torch.testing.assert_close(blur.kernel, torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64))


@pytest.mark.parametrize("sigma", [0.8, 2.0, 3.0])
def test_gaussian_kernel_matches_deepinv(sigma, deepinv):
    ours = ops.gaussian_kernel(61, sigma)
    theirs = deepinv.physics.functional.gaussian_blur(psf_size=(61, 61), sigma=(sigma, sigma), dtype=torch.float64)
    torch.testing.assert_close(ours, theirs[0, 0], rtol=0, atol=1e-12)


def test_camera_shake_motion_blur_matches_deepinv_blur(deepinv):
    blur = ops.MotionBlur.camera_shake(61, 0.5, seed=3)
    theirs = deepinv.physics.Blur(filter=blur.kernel[None, None], padding="reflect")
    x = image(batch=1, size=(40, 36), seed=4)  # reflect padding of 30 needs sides > 30 in torch
    torch.testing.assert_close(blur(x), theirs(x), rtol=0, atol=1e-12)


def test_circular_gaussian_blur_matches_deepinv_blur_fft(deepinv):
    blur = ops.GaussianBlur(9, 1.7, boundary="circular")
    x = image(batch=2, size=(24, 24), seed=5)
    theirs = deepinv.physics.BlurFFT(img_size=(3, 24, 24), filter=blur.kernel[None, None])
    y = like(x, seed=6)
    # BlurFFT multiplies spectra computed in float32 internally: agreement to ~1e-7.
    torch.testing.assert_close(blur(x), theirs(x).double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(blur.adjoint(y), theirs.A_adjoint(y).double(), rtol=0, atol=1e-6)


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [4, 0, -3, 2.5, True])
def test_gaussian_kernel_size(size):
    with pytest.raises(ValueError, match=r"^kernel_size: expected an odd integer >= 1, got"):
        ops.GaussianBlur(size, 1.0)


def test_gaussian_kernel_size_message_is_exact():
    with pytest.raises(ValueError, match=r"^kernel_size: expected an odd integer >= 1, got 4$"):
        ops.GaussianBlur(4, 1.0)


@pytest.mark.parametrize("sigma", [-1, float("inf"), float("nan"), None])
def test_gaussian_sigma(sigma):
    with pytest.raises(ValueError, match=r"^sigma: expected a non-negative number, got"):
        ops.GaussianBlur(5, sigma)


def test_gaussian_negative_sigma_message_is_exact():
    with pytest.raises(ValueError, match=r"^sigma: expected a non-negative number, got -1$"):
        ops.GaussianBlur(5, -1)
