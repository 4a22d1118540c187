"""Fourier undersampling (fourier.py): MRI's centred orthonormal FFT on fastMRI-like column masks,
its exact adjoint for any size, its pictures and settings; checked against numpy and deepinv."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from operator_cases import FAST, adjoint_gap, image, rand

import comfyui_dps.dps.operators as ops


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


@FAST
@given(h=st.integers(1, 16), w=st.integers(2, 40), acceleration=st.floats(1, 10),
       seed=st.integers(0, 2**16), data=st.data())
def test_fourier_adjoint_and_mask_for_any_sizes(h, w, acceleration, seed, data):
    center = data.draw(st.floats(0.01, 1 / acceleration))
    op = ops.FourierUndersampling(acceleration, center, seed)
    mask = op.mask(w)
    assert mask[w // 2]  # the zero frequency (at the centre of centred k-space) is always sampled
    x = rand((1, 1, h, w), seed)
    assert adjoint_gap(op, x, seed + 1) < 1e-6


def _to_deepinv_complex(x):
    """[B, 1, H, W] real -> deepinv's [B, 2, H, W] (real, imaginary) layout."""
    return torch.cat([x, torch.zeros_like(x)], dim=1)


def test_fourier_undersampling_matches_deepinv_mri(deepinv):
    # deepinv's MRI uses centred k-space, fftshift(fft2(ifftshift(x))), as ours does: the same
    # mask gives the same complex measurement, and the same zero-filled reconstruction A* A x.
    op = ops.FourierUndersampling(4, 0.08, seed=3)
    x = image(batch=2, channels=1, size=(32, 40), seed=13)
    mask = op.mask(40).double()
    theirs = deepinv.physics.MRI(mask=mask.expand(32, 40).clone(), img_size=(32, 40))
    k_theirs = theirs(_to_deepinv_complex(x))
    k_theirs = torch.complex(k_theirs[:, 0], k_theirs[:, 1])[:, None]
    k_ours = op(x)
    torch.testing.assert_close(k_ours, k_theirs, rtol=0, atol=1e-12)
    zero_filled_theirs = theirs.A_adjoint(theirs(_to_deepinv_complex(x)))[:, :1]
    torch.testing.assert_close(op.adjoint(k_ours), zero_filled_theirs, rtol=0, atol=1e-12)


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(acceleration=0.5), r"^acceleration: expected a number >= 1, got 0.5$"),
    (dict(acceleration=4, center_fraction=0.5), r"^center_fraction: expected a number in \(0, 1/acceleration\] = \(0, 0.25\], got 0.5$"),
    (dict(center_fraction=0), r"^center_fraction: expected"),
])
def test_fourier_parameters(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.FourierUndersampling(**kwargs)


@pytest.mark.parametrize("seed", [-1, 1.5, 2**64])
def test_fourier_seeds_must_be_non_negative_integers(seed):
    with pytest.raises(ValueError, match=r"^seed: expected an integer"):
        ops.FourierUndersampling(4, 0.08, seed=seed)
