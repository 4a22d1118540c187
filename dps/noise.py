"""Noise models: how a clean measurement A x becomes the observed y, and the std that whitens a
residual against it.

Noise is drawn on the CPU from a torch.Generator seeded by the caller and then moved to the
measurement's device, so a seed gives the same noise on every device. Complex measurements
(k-space) are handled as real pairs: Gaussian noise of std sigma on the real AND the
imaginary part; `std` then returns a tensor broadcastable to torch.view_as_real(y).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .operators import _checks

#: Std used where sigma = 0 ("no added noise") must still divide: the quantisation noise of an
#: 8-bit picture, 1 / (255 sqrt 12) ~ 1.1e-3 on the [0, 1] scale, the least any real
#: measurement carries. Keeps the whitened residual finite.
SIGMA_FLOOR = 1 / (255 * math.sqrt(12))


def _standard_normal(like: torch.Tensor, seed: int) -> torch.Tensor:
    """N(0, 1) noise shaped like `like` (complex: independent real and imaginary parts)."""
    generator = torch.Generator(device="cpu").manual_seed(_checks.seed("seed", seed))
    shape = torch.view_as_real(like).shape if like.is_complex() else like.shape
    dtype = like.real.dtype if like.is_complex() else like.dtype
    draw = torch.randn(shape, generator=generator, dtype=dtype).to(like.device)
    return torch.view_as_complex(draw) if like.is_complex() else draw


class NoiseModel(abc.ABC):
    """The law of y given A x. Models are immutable and compute with the tensors they are given."""

    #: Shown to users, e.g. "Gaussian noise".
    name: ClassVar[str] = "noise"

    @property
    @abc.abstractmethod
    def level(self) -> float:
        """The one number a user sets (a std, a photon count)."""

    @abc.abstractmethod
    def sample(self, clean_y: torch.Tensor, seed: int) -> torch.Tensor:
        """A noisy y for the clean A x, the same for the same seed on every device."""

    @abc.abstractmethod
    def std(self, y: torch.Tensor) -> torch.Tensor:
        """The noise std per element of y, broadcastable to it (to view_as_real(y) if complex)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for users: the model and its level."""

    def to(self, device=None, dtype: torch.dtype | None = None) -> NoiseModel:
        """This model for tensors on `device`: it holds no tensors and cannot change, so itself."""
        _checks.floating_dtype("dtype", dtype)
        return self


@dataclass(frozen=True, repr=False)
class GaussianNoise(NoiseModel):
    """y = A x + sigma * n, n ~ N(0, I); sigma >= 0 on the [0, 1] image scale."""

    sigma: float = 0.05
    name: ClassVar[str] = "Gaussian noise"

    def __post_init__(self):
        object.__setattr__(self, "sigma", _checks.number("sigma", self.sigma, low=0,
                                                         expected="a non-negative number"))

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma:g})"

    @property
    def level(self) -> float:
        return self.sigma

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


@dataclass(frozen=True, repr=False)
class PoissonNoise(NoiseModel):
    """Photon counting: y = Poisson(photon_count * max(A x, 0)) / photon_count, so y has mean
    A x and variance A x / photon_count. photon_count > 0 (more photons, less noise)."""

    photon_count: float = 100.0
    name: ClassVar[str] = "Poisson noise"

    def __post_init__(self):
        object.__setattr__(self, "photon_count", _checks.number(
            "photon_count", self.photon_count, low=0, low_open=True, expected="a positive number"))

    def __repr__(self) -> str:
        return f"PoissonNoise(photon_count={self.photon_count:g})"

    @property
    def level(self) -> float:
        return self.photon_count

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
