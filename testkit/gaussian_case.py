"""A Gaussian prior over a small image in model space, its exact denoiser, and the exact posterior
mean E[x0 | x_t, y] given a linear measurement of the rendered image (x + 1) / 2: the reference
for the `moment` and `proximal` tests."""

import math

import torch

from comfyui_dps.dps.measurement import as_real, simulate
from comfyui_dps.dps.noise import GaussianNoise


def dense(operator, shape):
    """A as a [m, n] float64 matrix on images of `shape` [C, H, W], one basis image at a time (batch 1,
    as the measurement sees it), m counting real numbers of the measurement (complex as pairs)."""
    n = torch.Size(shape).numel()
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return torch.stack([as_real(operator(e[None])).reshape(-1) for e in basis], dim=1)


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II [n, n] from its definition: row k is the basis vector of frequency k / (2n)
    cycles per pixel."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    q = torch.cos(math.pi * k * (2 * i + 1) / (2 * n)) * math.sqrt(2 / n)
    q[0] /= math.sqrt(2)
    return q


def stationary_matrix(height: int, width: int, profile) -> torch.Tensor:
    """Q^T diag(g) Q on one channel's [H W] pixels (Q the 2-D DCT-II): the covariance of a stationary
    prior with reflecting borders, g = profile(ring) with ring = round(|f| * max(2H, 2W)) the
    frequency's ring on the reflected grid (as dps/guidance/spectral.py pools them)."""
    ky = torch.arange(height, dtype=torch.float64)[:, None] / (2 * height)
    kx = torch.arange(width, dtype=torch.float64)[None, :] / (2 * width)
    rings = torch.round((ky.square() + kx.square()).sqrt() * max(2 * height, 2 * width))
    q = torch.kron(dct_matrix(height), dct_matrix(width))
    return q.T @ torch.diag(profile(rings).reshape(-1)) @ q


class GaussianCase:
    """x0 ~ N(mean, cov) over `shape`; y = A (x0 + 1) / 2 + noise for one draw of x0."""

    def __init__(self, operator, shape=(1, 4, 4), noise=0.05, isotropic=False, seed=0, stationary=None):
        generator = torch.Generator().manual_seed(seed)
        self.shape = shape
        n = torch.Size(shape).numel()
        if isotropic:  # the prior `proximal` and `pigdm` assume: unit variance, no correlation
            self.mean, self.cov = torch.zeros(n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
        elif stationary is not None:  # zero mean, each channel the spectrum `stationary(ring)`
            self.mean = torch.zeros(n, dtype=torch.float64)
            self.cov = torch.kron(torch.eye(shape[0], dtype=torch.float64),
                                  stationary_matrix(shape[1], shape[2], stationary))
        else:
            q = torch.randn(n, n, generator=generator, dtype=torch.float64) / n**0.5
            self.mean = 0.3 * torch.randn(n, generator=generator, dtype=torch.float64)
            self.cov = q @ q.T + 0.1 * torch.eye(n, dtype=torch.float64)
        truth = self.mean + torch.linalg.cholesky(self.cov) @ torch.randn(n, generator=generator, dtype=torch.float64)
        self.measurement = simulate(((truth.reshape(1, *shape) + 1) / 2), operator, GaussianNoise(noise), seed=3)
        self.matrix = dense(operator, shape)
        self.noise = noise

    def gain(self, alpha, sigma):
        return alpha * self.cov @ torch.linalg.inv(alpha**2 * self.cov + sigma**2 * torch.eye(len(self.mean),
                                                                                             dtype=torch.float64))

    def denoiser(self, alpha, sigma):
        """x_t -> E[x0 | x_t] for one noise level (batched, differentiable)."""
        gain = self.gain(alpha, sigma)
        return lambda x: (self.mean + (x.reshape(x.shape[0], -1) - alpha * self.mean) @ gain.T).reshape(x.shape)

    def posterior_mean(self, x, alpha, sigma):
        """E[x0 | x_t, y] per sample: a Kalman update of the Gaussian x0 | x_t by y."""
        gain = self.gain(alpha, sigma)
        mean_t = self.mean + (x.reshape(x.shape[0], -1) - alpha * self.mean) @ gain.T
        cov_t = self.cov - gain @ (alpha * self.cov)
        h = self.matrix / 2
        y = as_real(self.measurement.y).reshape(-1)
        innovation = y - (mean_t + 1) @ h.T
        system = h @ cov_t @ h.T + self.noise**2 * torch.eye(len(y), dtype=torch.float64)
        return (mean_t + innovation @ torch.linalg.solve(system, h @ cov_t).reshape(len(y), -1)).reshape(x.shape)

    def noisy(self, batch, alpha, sigma, seed=1):
        generator = torch.Generator().manual_seed(seed)
        n = len(self.mean)
        x0 = self.mean + torch.randn(batch, n, generator=generator, dtype=torch.float64) @ \
            torch.linalg.cholesky(self.cov).T
        return (alpha * x0 + sigma * torch.randn(batch, n, generator=generator, dtype=torch.float64)).reshape(
            batch, *self.shape)
