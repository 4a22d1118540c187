"""Each operator computes what it promises, checked against independent references
(torch's own resamplers, direct formulas, numpy) and against its stated properties."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_operators_cases import ALL, image, one_thread  # noqa: F401 (autouse)

import comfyui_dps.dps.operators as ops


# --- super-resolution ---------------------------------------------------------------------

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
    # The pseudo-inverse returns flat images unchanged, and for "average" it is a right inverse.
    torch.testing.assert_close(op.pseudo_inverse(y), x)


def test_average_pseudo_inverse_is_nearest_upsampling_and_a_right_inverse():
    op = ops.SuperResolution(2, "average")
    y = image(batch=1, size=(5, 7), seed=3)
    up = op.pseudo_inverse(y)
    torch.testing.assert_close(up, F.interpolate(y, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(op(up), y)


def test_bicubic_pseudo_inverse_is_close_to_torch_bicubic_upsampling_for_smooth_images():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    y = (0.5 + 0.4 * torch.sin(3 * xx + 2 * yy))[None, None].double()
    up = ops.SuperResolution(4, "bicubic").pseudo_inverse(y)
    ref = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False)
    assert (up - ref)[..., 8:-8, 8:-8].abs().max() < 0.02


# --- blur ---------------------------------------------------------------------------------

def test_gaussian_kernel_formula_and_identity_at_sigma_zero():
    k = ops.gaussian_kernel(7, 1.5)
    t = torch.arange(7, dtype=torch.float64) - 3
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    torch.testing.assert_close(k, torch.outer(g, g) / g.sum() ** 2)
    x = image(seed=4)
    torch.testing.assert_close(ops.GaussianBlur(61, 0.0)(x), x, rtol=0, atol=1e-12)


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_shake_kernel_is_a_normalised_nonnegative_path(seed):
    k = ops.camera_shake_kernel(61, 0.5, seed)
    assert k.shape == (61, 61) and k.dtype == torch.float64
    assert (k >= 0).all() and k.sum().item() == pytest.approx(1.0)
    support = (k > 1e-3 * k.max()).sum().item()
    assert 20 < support < 61 * 61 / 4  # a thin trail, neither a dot nor a blob
    torch.testing.assert_close(k, ops.camera_shake_kernel(61, 0.5, seed), rtol=0, atol=0)
    assert not torch.equal(k, ops.camera_shake_kernel(61, 0.5, seed + 10))


def test_user_motion_kernel_is_normalised():
    blur = ops.MotionBlur(torch.tensor([[0.0, 2.0, 2.0]]))
    torch.testing.assert_close(blur.kernel, torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64))


# --- inpainting ---------------------------------------------------------------------------

def test_inpainting_keeps_unmasked_pixels_and_weights_partial_ones():
    mask = torch.zeros(4, 4)
    mask[0, 0], mask[1, 1] = 1.0, 0.25
    x = image(batch=2, size=(4, 4), seed=5)
    y = ops.Inpainting(mask)(x)
    assert (y[..., 0, 0] == 0).all()
    torch.testing.assert_close(y[..., 1, 1], 0.75 * x[..., 1, 1])
    torch.testing.assert_close(y[..., 2:, :], x[..., 2:, :], rtol=0, atol=0)
    assert ops.Inpainting(mask).pseudo_inverse(y) is y


@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4), (1, 1, 4, 4), (2, 4, 4), (2, 1, 4, 4)])
def test_inpainting_mask_layouts(shape):
    mask = (torch.arange(16.0).view(4, 4) % 3 == 0).float().expand(shape)
    y = ops.Inpainting(mask)(torch.ones(2, 3, 4, 4))
    torch.testing.assert_close(y, (1 - mask.reshape(-1, 1, 4, 4)).expand(2, 3, 4, 4))


def test_random_inpainting_fraction_determinism_and_channel_sharing():
    op = ops.RandomInpainting(0.3, seed=7)
    m = op.mask(40, 50)
    assert m.sum().item() == round(0.3 * 2000)
    torch.testing.assert_close(ops.RandomInpainting(0.3, seed=7).mask(40, 50), m, rtol=0, atol=0)
    assert not torch.equal(ops.RandomInpainting(0.3, seed=8).mask(40, 50), m)
    y = op(torch.ones(2, 3, 40, 50))
    assert (y == y[:1, :1]).all()  # one mask for every channel and batch item
    assert ops.RandomInpainting(0.0, 1)(torch.ones(1, 1, 3, 3)).eq(1).all()


# --- colorization -------------------------------------------------------------------------

def test_colorization_luma_and_picture_conversions():
    op = ops.Colorization()
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2).double()
    torch.testing.assert_close(op(x), torch.full((1, 1, 2, 2), 0.299, dtype=torch.float64))
    rgb = image(batch=1, seed=6)
    torch.testing.assert_close(op.measurement_from_image(rgb), op(rgb))
    grey = image(batch=1, channels=1, seed=7)
    assert op.measurement_from_image(grey) is grey
    assert op.measurement_to_image(grey).shape == (1, 3, 24, 24)
    # The grey picture is an exact preimage of its luma (weights sum to 1).
    torch.testing.assert_close(op(op.pseudo_inverse(grey)), grey)


# --- Fourier undersampling ----------------------------------------------------------------

def test_fourier_is_the_centred_orthonormal_fft_on_sampled_columns():
    op = ops.FourierUndersampling(4, 0.08, seed=1)
    x = image(batch=2, size=(16, 63), seed=8)
    y = op(x)
    mask = op.mask(63)
    axes = (-2, -1)  # MRI's centred FFT, as fastMRI writes k-space: frequency 0 at [H // 2, W // 2]
    full = torch.from_numpy(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes), norm="ortho"), axes))
    torch.testing.assert_close(y[..., mask], full[..., mask], rtol=0, atol=1e-12)
    assert (y[..., ~mask] == 0).all()
    # Fully sampled, A is unitary: the adjoint inverts it exactly.
    full_op = ops.FourierUndersampling(1, 1.0, seed=0)
    torch.testing.assert_close(full_op.adjoint(full_op(x)), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("acceleration,center", [(4, 0.08), (8, 0.04), (2, 0.2)])
def test_fourier_mask_is_fastmri_like(acceleration, center):
    width = 320
    fractions = []
    for seed in range(30):
        m = ops.FourierUndersampling(acceleration, center, seed).mask(width)
        low = round(width * center)
        # The lowest frequencies (|f| < low / 2 around 0, centred order) are always kept.
        freqs = torch.fft.fftshift(torch.fft.fftfreq(width)) * width
        assert m[freqs.abs() < low / 2 - 1].all()
        fractions.append(m.float().mean().item())
    assert abs(np.mean(fractions) - 1 / acceleration) < 0.1 / acceleration
    torch.testing.assert_close(ops.FourierUndersampling(acceleration, center, 3).mask(width),
                               ops.FourierUndersampling(acceleration, center, 3).mask(width), rtol=0, atol=0)


def test_fourier_pictures():
    op = ops.FourierUndersampling(4, 0.08, seed=1)
    with pytest.raises(ValueError, match="k-space"):
        op.measurement_from_image(image())
    pic = op.measurement_to_image(op(image(seed=9)))
    assert pic.shape == (2, 3, 24, 24) and not pic.is_complex()
    assert pic.min() >= 0 and pic.amax(dim=(1, 2, 3)).allclose(torch.ones(2, dtype=pic.dtype))
    # The DC term, the brightest for a positive image, is at the centre of centred k-space.
    assert pic[0, 0, 12, 12] == pic[0, 0].max()


# --- phase retrieval ----------------------------------------------------------------------

def test_phase_retrieval_is_the_oversampled_fourier_magnitude():
    x = image(batch=1, size=(10, 12), seed=10)
    y = ops.PhaseRetrieval(2.0)(x)
    assert y.shape == (1, 3, 20, 24)
    ref = np.abs(np.fft.fft2(np.pad(x.numpy(), ((0, 0), (0, 0), (5, 5), (6, 6))), norm="ortho"))
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-6)  # the epsilon shifts |z| by <= 1e-6
    # Magnitudes ignore translation: moving the content inside a zero margin changes nothing.
    framed = F.pad(x, (0, 3, 0, 2))
    moved = torch.roll(framed, (1, 2), (-2, -1))
    torch.testing.assert_close(ops.PhaseRetrieval(2.0)(framed), ops.PhaseRetrieval(2.0)(moved))
    # Parseval: the total energy is the image's (orthonormal FFT, zero padding adds none).
    assert (y**2).sum().item() == pytest.approx((x**2).sum().item() + 1e-12 * y.numel(), rel=1e-10)


@pytest.mark.parametrize("oversampling", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("size", [(16, 16), (15, 9), (33, 20)])
def test_phase_retrieval_image_size_inverts_the_padding(oversampling, size):
    op = ops.PhaseRetrieval(oversampling)
    y = op(torch.rand(1, 1, *size))
    assert y.shape[-2] == math.ceil(oversampling * size[0] - 1e-9)
    assert op.image_size(tuple(y.shape[-2:])) == size


def test_phase_retrieval_pictures():
    op = ops.PhaseRetrieval(2.0)
    with pytest.raises(ValueError, match="picture"):
        op.measurement_from_image(image())
    pic = op.measurement_to_image(op(image(seed=11)))
    assert pic.shape == (2, 3, 48, 48) and pic.min() >= 0 and pic.max() <= 1
    with pytest.raises(NotImplementedError):
        op.pseudo_inverse(op(image()))


# --- composition --------------------------------------------------------------------------

def test_composition_applies_in_order_and_composes_sizes():
    blur, sr = ops.GaussianBlur(5, 1.0), ops.SuperResolution(2)
    both = ops.Composition(blur, sr)
    x = image(seed=12)
    torch.testing.assert_close(both(x), sr(blur(x)))
    assert both.is_linear and both.image_size((12, 12)) == (24, 24)
    assert not ops.Composition(blur, ops.PhaseRetrieval(2.0)).is_linear
    assert ops.Composition(sr, ops.PhaseRetrieval(2.0)).image_size((24, 24)) == (24, 24)
    assert "then" in both.name


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_operator_has_a_name_and_description(name):
    op = ALL[name]()
    assert isinstance(op.name, str) and op.name
    assert isinstance(op.describe(), str) and op.describe()
    assert repr(op) != object.__repr__(op)
