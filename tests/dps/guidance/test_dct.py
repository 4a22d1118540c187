"""The DCT (dps/guidance/dct.py), by matrix product and by FFT, against the DCT-II matrix from its
definition, and the identity spectral.py relies on: a filter even in frequency on the half-sample-reflected
grid is diagonal in it."""

import pytest
import torch

from comfyui_dps.dps.guidance import dct as dct_module
from comfyui_dps.dps.guidance.dct import dct, dct2, idct, idct2
from testkit.gaussian_case import dct_matrix


@pytest.fixture(params=["matrix", "fft"])
def transform(request, monkeypatch):
    """Each test below runs with both ways of transforming an axis (the FFT one serves long axes)."""
    if request.param == "fft":
        monkeypatch.setattr(dct_module, "MATRIX_UP_TO", 0)
    return request.param


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("dim", [-1, -2, 1])
def test_dct_is_the_orthonormal_dct_ii_and_idct_its_inverse(n, dim, transform):
    shape = [2, 3, 5]
    shape[dim] = n
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    q = dct_matrix(n)
    expected = torch.movedim(torch.movedim(x, dim, -1) @ q.T, -1, dim)
    torch.testing.assert_close(dct(x, dim), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(idct(x, dim), torch.movedim(torch.movedim(x, dim, -1) @ q, -1, dim),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(idct(dct(x, dim), dim), x, rtol=1e-12, atol=1e-12)


def test_dct2_matches_the_kronecker_matrix_in_single_precision(transform):
    x = torch.randn(2, 3, 5, 8, generator=torch.Generator().manual_seed(0))
    q = torch.kron(dct_matrix(5), dct_matrix(8))
    expected = (x.double().reshape(2, 3, -1) @ q.T).reshape(x.shape)
    assert dct2(x).dtype == torch.float32
    torch.testing.assert_close(dct2(x).double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(idct2(dct2(x)), x, rtol=1e-5, atol=1e-5)


def test_even_filters_on_the_reflected_grid_are_diagonal_in_the_dct(transform):
    """FFT filtering of the half-sample-symmetric extension (2H x 2W) by gains even in frequency, cropped,
    equals idct2(gains[:H, :W] * dct2(x))."""
    height, width = 6, 5
    x = torch.randn(1, 2, height, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fy = torch.fft.fftfreq(2 * height, dtype=torch.float64)
    fx = torch.fft.fftfreq(2 * width, dtype=torch.float64)
    gains = 1 / (1 + 9 * fy[:, None].abs() + 4 * fx[None, :].square())  # even in each axis, not radial
    extended = torch.cat([x, x.flip(-2)], -2)
    extended = torch.cat([extended, extended.flip(-1)], -1)
    filtered = torch.fft.ifft2(torch.fft.fft2(extended) * gains).real[..., :height, :width]
    torch.testing.assert_close(idct2(dct2(x) * gains[:height, :width]), filtered, rtol=1e-12, atol=1e-12)


def test_factors_cached_in_inference_mode_serve_autograd_later(transform):
    """ComfyUI samples in inference mode; the matrices and factors cached there must not be inference tensors."""
    with torch.inference_mode():
        dct2(torch.randn(1, 1, 9, 11))
    z = torch.randn(1, 1, 9, 11, dtype=torch.float32, requires_grad=True)
    idct2(dct2(z) * 2).square().sum().backward()
    torch.testing.assert_close(z.grad, 8 * z.detach(), rtol=1e-5, atol=1e-5)
