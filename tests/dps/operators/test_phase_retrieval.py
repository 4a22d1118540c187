"""Fourier phase retrieval (phase_retrieval.py): the oversampled Fourier magnitude, its sizes,
pictures and finite gradient; checked against numpy and deepinv."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from operator_cases import image

import comfyui_dps.dps.operators as ops
from comfyui_dps.dps.operators.phase_retrieval import EPS


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


def test_phase_retrieval_gradient_is_finite_where_the_spectrum_vanishes():
    # A zero image has |FFT| = 0 everywhere: without the epsilon the gradient would be NaN.
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    ops.PhaseRetrieval(2.0)(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_phase_retrieval_matches_deepinv_with_an_fft_operator(deepinv):
    # deepinv's PhaseRetrieval(B) measures |B x|^2 for a linear B; with B = deepinv's full-mask
    # MRI (an orthonormal centred FFT) applied to the zero-padded image it is the square of
    # ours (minus our 1e-12 epsilon), fftshifted.
    x = image(batch=2, channels=1, size=(12, 10), seed=14)
    ours = ops.PhaseRetrieval(2.0)(x)
    padded = F.pad(x, (5, 5, 6, 6))
    fft = deepinv.physics.MRI(img_size=(24, 20))
    # deepinv squares its (real, imaginary) channels separately: |Bx|^2 is their sum.
    parts = deepinv.physics.PhaseRetrieval(B=fft)(_to_deepinv_complex(padded))
    theirs = parts[:, :1] + parts[:, 1:]
    torch.testing.assert_close(torch.fft.fftshift(ours**2 - EPS, dim=(-2, -1)), theirs, rtol=0, atol=1e-12)


def _to_deepinv_complex(x):
    """[B, 1, H, W] real -> deepinv's [B, 2, H, W] (real, imaginary) layout."""
    return torch.cat([x, torch.zeros_like(x)], dim=1)


# --- settings -----------------------------------------------------------------------------

def test_phase_retrieval_parameters_and_sizes():
    with pytest.raises(ValueError, match=r"^oversampling: expected a number >= 1, got 0.5$"):
        ops.PhaseRetrieval(0.5)
    with pytest.raises(ValueError, match=r"^measurement: height 31 is not an oversampled image size for oversampling 2$"):
        ops.PhaseRetrieval(2.0).image_size((31, 32))
