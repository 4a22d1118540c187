"""Noise models: how a clean measurement A x becomes the observed y, and its likelihood.

Noise is drawn on the CPU from a torch.Generator seeded by the caller and then moved to the
measurement's device, so a seed gives the same noise on every device. Complex measurements
(k-space) are handled as real pairs: Gaussian noise of std sigma on the real AND the
imaginary part; `std` then returns a tensor broadcastable to torch.view_as_real(y).
"""

from __future__ import annotations

import math

import torch

from .operators import _checks

#: Std used where sigma = 0 ("no added noise") must still divide: the quantisation noise of an
#: 8-bit picture, 1 / (255 sqrt 12) ~ 1.1e-3 on the [0, 1] scale, the least any real
#: measurement carries. Keeps the likelihood and the whitened residual finite.
SIGMA_FLOOR = 1 / (255 * math.sqrt(12))


def _per_sample_sum(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def _as_real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def _standard_normal(like: torch.Tensor, seed: int) -> torch.Tensor:
    """N(0, 1) noise shaped like `like` (complex: independent real and imaginary parts)."""
    generator = torch.Generator(device="cpu").manual_seed(_checks.seed("seed", seed))
    shape = _as_real(like).shape
    dtype = like.real.dtype if like.is_complex() else like.dtype
    draw = torch.randn(shape, generator=generator, dtype=dtype).to(like.device)
    return torch.view_as_complex(draw) if like.is_complex() else draw


class GaussianNoise:
    """y = A x + sigma * n, n ~ N(0, I); sigma >= 0 on the [0, 1] image scale."""

    def __init__(self, sigma: float = 0.05):
        self.sigma = _checks.number("sigma", sigma, low=0, expected="a non-negative number")
        self.level = self.sigma
        self.name = "Gaussian noise"

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma:g})"

    def describe(self) -> str:
        return f"{self.name}, sigma {self.sigma:g}"

    def sample(self, clean_y: torch.Tensor, seed: int) -> torch.Tensor:
        if self.sigma == 0:
            return clean_y.clone()
        return clean_y + self.sigma * _standard_normal(clean_y, seed)

    def std(self, y: torch.Tensor) -> torch.Tensor:
        """0-d tensor: the per-element std, floored at SIGMA_FLOOR when sigma = 0."""
        dtype = y.real.dtype if y.is_complex() else y.dtype
        return torch.tensor(max(self.sigma, SIGMA_FLOOR), device=y.device, dtype=dtype)

    def negative_log_likelihood(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """||y - prediction||^2 / (2 sigma^2) per sample, [B] (sigma floored as in `std`)."""
        residual = _as_real(y - prediction)
        return _per_sample_sum(residual.square()) / (2 * max(self.sigma, SIGMA_FLOOR) ** 2)


class PoissonNoise:
    """Photon counting: y = Poisson(photon_count * max(A x, 0)) / photon_count, so y has mean
    A x and variance A x / photon_count. photon_count > 0 (more photons, less noise)."""

    #: Below this many expected photons the log-likelihood is continued by a quadratic (see
    #: negative_log_likelihood), keeping it finite and differentiable for rates <= 0.
    MIN_RATE = 0.5

    def __init__(self, photon_count: float = 100.0):
        self.photon_count = _checks.number("photon_count", photon_count, low=0, low_open=True,
                                           expected="a positive number")
        self.level = self.photon_count
        self.name = "Poisson noise"

    def __repr__(self) -> str:
        return f"PoissonNoise(photon_count={self.photon_count:g})"

    def describe(self) -> str:
        return f"{self.name}, {self.photon_count:g} photons at full intensity"

    def _reject_complex(self, t: torch.Tensor) -> None:
        if t.is_complex():
            raise ValueError("Poisson noise: photon counts are real and non-negative; a complex "
                             "measurement (k-space) needs Gaussian noise")

    def sample(self, clean_y: torch.Tensor, seed: int) -> torch.Tensor:
        self._reject_complex(clean_y)
        generator = torch.Generator(device="cpu").manual_seed(_checks.seed("seed", seed))
        rate = self.photon_count * clean_y.detach().to("cpu").clamp_min(0)
        counts = torch.poisson(rate, generator=generator)
        return (counts / self.photon_count).to(device=clean_y.device, dtype=clean_y.dtype)

    def std(self, y: torch.Tensor) -> torch.Tensor:
        """sqrt(max(y, 1/photon_count) / photon_count): the observed y stands for the mean, and
        at least one photon's worth keeps dark pixels from getting zero std."""
        self._reject_complex(y)
        return torch.sqrt(y.clamp_min(1 / self.photon_count) / self.photon_count)

    def negative_log_likelihood(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Poisson deviance / 2 per sample, [B]: sum of r - k + k log(k / r) over elements, with
        k = photon_count * y observed counts and r = photon_count * prediction expected counts
        (the Poisson NLL up to a constant, and 0 where r = k). For r < MIN_RATE the term is
        continued by its second-order Taylor expansion at MIN_RATE, with curvature at least
        1 / MIN_RATE^2, so it stays convex, finite and pushes negative predictions up."""
        self._reject_complex(y)
        self._reject_complex(prediction)
        k = self.photon_count * y.clamp_min(0)
        r = self.photon_count * prediction
        r0 = self.MIN_RATE
        klogk = torch.xlogy(k, k)  # k log k with 0 log 0 = 0
        safe = r.clamp_min(r0)
        above = safe - k - k * torch.log(safe) + klogk
        at_r0 = r0 - k - k * math.log(r0) + klogk
        slope = 1 - k / r0
        curvature = torch.clamp_min(k, 1.0) / r0 ** 2
        below = at_r0 + slope * (r - r0) + 0.5 * curvature * (r - r0).square()
        return _per_sample_sum(torch.where(r >= r0, above, below))
