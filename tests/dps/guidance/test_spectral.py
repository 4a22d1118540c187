"""The spectral estimate of Cov[x0 | x_t] (dps/guidance/spectral.py) against dense float64 matrices.

A stationary prior with reflecting borders is diagonal in the 2-D DCT-II basis; its Wiener denoiser
is D = G x with G = Q^T diag(g) Q (Q the orthonormal DCT, g a function of the frequency's ring), and
Cov[x0 | x_t] = sigma^2 / alpha * G. The DCT (testkit.gaussian_case) is built from its definition, not
from the FFT the module uses, so the test checks the module's reflection, ring pooling and colour basis."""

import math

import pytest
import torch

from comfyui_dps.dps.guidance import core
from comfyui_dps.dps.guidance.spectral import SpectralCovariance
from testkit.gaussian_case import stationary_matrix

H, W = 4, 6


def stationary_gain(profile) -> torch.Tensor:
    """The dense [H W, H W] filter Q^T diag(g) Q of one channel."""
    return stationary_matrix(H, W, profile)


def dense(covariance: SpectralCovariance, shape) -> torch.Tensor:
    n = math.prod(shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return torch.stack([covariance.apply(basis[i:i + 1])[0].reshape(-1) for i in range(n)], 1)


def test_a_stationary_denoiser_gives_its_exact_covariance_per_sample():
    """One channel, two samples at different noise levels (and flow-like alpha < 1)."""
    gain = stationary_gain(lambda r: 0.9 / (1 + 0.5 * r))
    sigma = torch.tensor([2.0, 0.3], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.6], dtype=torch.float64)
    x = torch.randn(2, 1, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    denoised = (x.reshape(2, -1) @ gain.T).reshape(x.shape)
    covariance = SpectralCovariance(x, denoised, sigma, alpha)
    for i in range(2):
        single = SpectralCovariance(x[i:i + 1], denoised[i:i + 1], sigma[i:i + 1], alpha[i:i + 1])
        torch.testing.assert_close(dense(single, (1, H, W)), sigma[i]**2 / alpha[i] * gain, rtol=1e-9, atol=1e-12)
    z = torch.randn(2, 1, H, W, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    batched = covariance.apply(z, factor=0.25)
    for i in range(2):
        torch.testing.assert_close(batched[i].reshape(-1), 0.25 * sigma[i]**2 / alpha[i] * gain @ z[i].reshape(-1))


def test_floored_raises_each_variance_to_the_average_and_keeps_the_rest():
    """Dense check: the floored covariance is Q^T diag(max(g, mean g)) Q per sample (the average of the
    unfloored variances, tr Cov / n), a copy: the original covariance is unchanged."""
    profile = lambda r: 0.9 / (1 + 2 * r)  # noqa: E731
    gain = stationary_gain(profile)
    sigma = torch.tensor([1.5, 0.4], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.8], dtype=torch.float64)
    x = torch.randn(2, 1, H, W, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    denoised = (x.reshape(2, -1) @ gain.T).reshape(x.shape)
    covariance = SpectralCovariance(x, denoised, sigma, alpha)
    before = covariance.variance.clone()
    floored = covariance.floored()
    torch.testing.assert_close(covariance.variance, before, rtol=0, atol=0)
    eigenvalues, vectors = torch.linalg.eigh(gain)
    for i in range(2):
        scale = sigma[i]**2 / alpha[i]
        floor = scale * eigenvalues.mean()
        expected = vectors @ torch.diag(torch.maximum(scale * eigenvalues, floor)) @ vectors.T
        single = SpectralCovariance(x[i:i + 1], denoised[i:i + 1], sigma[i:i + 1], alpha[i:i + 1]).floored()
        torch.testing.assert_close(dense(single, (1, H, W)), expected, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(floored.variance[i], single.variance[0])
        assert (scale * eigenvalues < floor).any() and (scale * eigenvalues > floor).any()  # both sides tested


def test_colour_is_fitted_per_opponent_component():
    """Three channels whose luma and chroma components have different spectra: the covariance is
    B^T diag(G_luma, G_chroma, G_chroma') B with B the orthonormal opponent basis."""
    basis = torch.tensor([[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=torch.float64)
    basis = basis / basis.norm(dim=1, keepdim=True)
    gains = [stationary_gain(lambda r: 0.95 / (1 + r)), stationary_gain(lambda r: 0.5 / (1 + 2 * r)),
             stationary_gain(lambda r: 0.3 + 0 * r)]
    block = torch.block_diag(*gains)
    mixing = torch.kron(basis, torch.eye(H * W, dtype=torch.float64))
    operator = mixing.T @ block @ mixing
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    denoised = (operator @ x.reshape(-1)).reshape(x.shape)
    sigma, alpha = torch.tensor([0.7], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    covariance = SpectralCovariance(x, denoised, sigma, alpha)
    torch.testing.assert_close(dense(covariance, (3, H, W)), 0.49 * operator, rtol=1e-9, atol=1e-12)


def test_a_non_linear_denoiser_still_gives_a_symmetric_positive_semi_definite_covariance():
    x = 3 * torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    covariance = SpectralCovariance(x, torch.tanh(x) - 0.2, torch.tensor([3.0, 3.0]), torch.tensor([1.0, 1.0]))
    for i in range(2):
        single = SpectralCovariance(x[i:i + 1], torch.tanh(x[i:i + 1]) - 0.2, torch.tensor([3.0]), torch.tensor([1.0]))
        matrix = dense(single, (3, H, W))
        torch.testing.assert_close(matrix, matrix.T, rtol=1e-9, atol=1e-12)
        assert torch.linalg.eigvalsh(matrix).min() > -1e-9
        # Clamped to [0, 1 / alpha] per ring: at most the prior's sigma^2 / alpha^2 = 9.
        assert torch.linalg.eigvalsh(matrix).max() <= 9 + 1e-9
    assert covariance.mean_variance().shape == (2,)


@pytest.mark.parametrize("alpha", [0.0, 1e-4])
def test_no_covariance_where_x_t_carries_no_information(alpha):
    x = torch.randn(1, 3, H, W, dtype=torch.float64)
    covariance = SpectralCovariance(x, 0.5 * x, torch.tensor([1.0]), torch.tensor([alpha]))
    assert alpha < core.MIN_ALPHA
    assert torch.equal(covariance.apply(torch.randn(1, 3, H, W, dtype=torch.float64)),
                       torch.zeros(1, 3, H, W, dtype=torch.float64))


def test_a_uniform_shrinkage_is_an_isotropic_covariance_in_the_input_dtype():
    # A shrinkage by 0.5 is exact in half precision: any other factor rounds D(x) per pixel, and a ring
    # with one DCT coefficient of small power turns that rounding into a large error in its gain.
    x = torch.randn(2, 3, H, W).half()
    covariance = SpectralCovariance(x, 0.5 * x, torch.tensor([0.5]), torch.tensor([1.0]))
    z = torch.randn(2, 3, H, W)
    out = covariance.apply(z)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, 0.25 * 0.5 * z, rtol=1e-4, atol=1e-5)
