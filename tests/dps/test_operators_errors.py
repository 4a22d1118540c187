"""Bad settings and mismatched inputs raise ValueError naming the culprit and what was
expected, in words a user can act on."""

import pytest
import torch
from test_operators_cases import image, one_thread  # noqa: F401 (autouse)

import comfyui_dps.dps.operators as ops


def test_mask_size_mismatch_names_both_sizes():
    op = ops.Inpainting(torch.zeros(64, 64))
    with pytest.raises(ValueError, match=r"^mask: size 64x64 \(width x height\) does not match the image size 96x128 \(width x height\)$"):
        op(torch.zeros(1, 3, 128, 96))


def test_mask_batch_mismatch_names_both_batches():
    op = ops.Inpainting(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r"mask: batch size 2 does not match the image batch size 3"):
        op(torch.zeros(3, 3, 8, 8))


@pytest.mark.parametrize(
    "mask,pattern",
    [
        (torch.zeros(2, 3, 8, 8), r"mask: expected shape \[H, W\], \[B, H, W\] or \[B, 1, H, W\], got \(2, 3, 8, 8\)"),
        (torch.zeros(8), r"mask: expected shape"),
        (torch.full((4, 4), 1.5), r"mask: expected values in \[0, 1\], got values in \[1.5, 1.5\]"),
        (torch.full((4, 4), float("nan")), r"mask: expected finite values"),
        (torch.zeros(0, 4), r"mask: expected a non-empty mask"),
        ([[0, 1]], r"mask: expected a tensor, got list"),
    ],
)
def test_bad_masks(mask, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.Inpainting(mask)


def test_boolean_masks_are_accepted():
    y = ops.Inpainting(torch.tensor([[True, False]]))(torch.ones(1, 1, 1, 2))
    assert y.tolist() == [[[[0.0, 1.0]]]]


@pytest.mark.parametrize("fraction", [1.0, -0.1, float("nan"), "half"])
def test_random_inpainting_fraction(fraction):
    with pytest.raises(ValueError, match=r"^missing_fraction: expected a number in \[0, 1\)"):
        ops.RandomInpainting(fraction, seed=0)


@pytest.mark.parametrize("seed", [-1, 1.5, 2**64])
def test_seeds_must_be_non_negative_integers(seed):
    with pytest.raises(ValueError, match=r"^seed: expected an integer"):
        ops.RandomInpainting(0.5, seed=seed)
    with pytest.raises(ValueError, match=r"^seed: expected an integer"):
        ops.FourierUndersampling(4, 0.08, seed=seed)


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


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(size=60), r"^size: expected an odd integer >= 3, got 60$"),
    (dict(size=1), r"^size: expected an odd integer >= 3"),
    (dict(intensity=1.5), r"^intensity: expected a number in \[0, 1\], got 1.5$"),
    (dict(seed=-2), r"^seed: expected an integer >= 0, got -2$"),
])
def test_camera_shake_parameters(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.camera_shake_kernel(**kwargs)


def test_colorization_needs_rgb():
    with pytest.raises(ValueError, match=r"^image: expected 3 colour channels \(RGB\), got 1$"):
        ops.Colorization()(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"image: expected a picture \[B, 1 or 3, H, W\]"):
        ops.Colorization().measurement_from_image(torch.zeros(1, 4, 4, 4))


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(acceleration=0.5), r"^acceleration: expected a number >= 1, got 0.5$"),
    (dict(acceleration=4, center_fraction=0.5), r"^center_fraction: expected a number in \(0, 1/acceleration\] = \(0, 0.25\], got 0.5$"),
    (dict(center_fraction=0), r"^center_fraction: expected"),
])
def test_fourier_parameters(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.FourierUndersampling(**kwargs)


def test_phase_retrieval_parameters_and_sizes():
    with pytest.raises(ValueError, match=r"^oversampling: expected a number >= 1, got 0.5$"):
        ops.PhaseRetrieval(0.5)
    with pytest.raises(ValueError, match=r"^measurement: height 31 is not an oversampled image size for oversampling 2$"):
        ops.PhaseRetrieval(2.0).image_size((31, 32))


@pytest.mark.parametrize("op", [ops.GaussianBlur(3, 1.0), ops.SuperResolution(2), ops.Colorization(),
                                ops.FourierUndersampling(), ops.PhaseRetrieval(), ops.RandomInpainting(0.5)])
def test_images_must_be_4d(op):
    with pytest.raises(ValueError, match=r"^image: expected a tensor of shape \[B, C, H, W\], got \(3, 8, 8\)$"):
        op(torch.zeros(3, 8, 8))


def test_composition_needs_operators_and_checks_both_stages():
    with pytest.raises(ValueError, match=r"^second: expected an Operator, got str$"):
        ops.Composition(ops.Colorization(), "blur")
    both = ops.Composition(ops.GaussianBlur(3, 1.0), ops.SuperResolution(4))
    with pytest.raises(ValueError, match=r"height 30 is not divisible by the super-resolution factor 4"):
        both(torch.zeros(1, 3, 30, 32))
