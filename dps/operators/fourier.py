"""Undersampled Fourier measurements (single-coil MRI): y = M * FFT2(x) per channel.

The FFT is orthonormal (norm="ortho") and NOT shifted: k-space frequency 0 is at index
[0, 0], as torch.fft.fft2 returns it. (fastMRI files and deepinv's MRI store k-space centred,
i.e. fftshift(fft2(ifftshift(x))); a loader must convert.) M keeps whole columns
(phase-encode lines) fastMRI-style: the central, lowest-frequency `center_fraction` of
columns always, the others at random so about 1/acceleration of all columns are kept.

x is real and y complex, so A is linear over the reals; its adjoint for the real inner
product Re<y, z> is Re(IFFT2_ortho(M * y)).
"""

from __future__ import annotations

import torch

from . import _checks
from .base import Operator


def column_mask(width: int, acceleration: float, center_fraction: float, seed: int) -> torch.Tensor:
    """bool [width] mask in unshifted FFT order (column 0 = frequency 0)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    low = max(1, min(width, round(width * center_fraction)))
    # Probability for the other columns so that width / acceleration are kept on average.
    rest = width - low
    prob = 0.0 if rest == 0 else min(max((width / acceleration - low) / rest, 0.0), 1.0)
    centred = torch.rand(width, generator=generator, dtype=torch.float64) < prob
    start = (width - low + 1) // 2
    centred[start:start + low] = True
    # In centred order frequency 0 sits at width // 2; ifftshift moves it to index 0.
    return torch.fft.ifftshift(centred)


class FourierUndersampling(Operator):
    """y = M * FFT2_ortho(x) (complex, same shape as x) with a random column mask drawn from
    `seed` for each image width. acceleration >= 1; center_fraction in (0, 1/acceleration]."""

    is_linear = True

    def __init__(self, acceleration: float = 4.0, center_fraction: float = 0.08, seed: int = 0):
        self.acceleration = _checks.number("acceleration", acceleration, low=1,
                                           expected="a number >= 1")
        self.center_fraction = _checks.number(
            "center_fraction", center_fraction, 0, 1 / self.acceleration, low_open=True,
            expected=f"a number in (0, 1/acceleration] = (0, {1 / self.acceleration:g}]")
        self.seed = _checks.seed("seed", seed)
        self.name = (f"Fourier undersampling ({self.acceleration:g}x, "
                     f"{100 * self.center_fraction:g}% centre)")
        self._cache: dict = {}

    def __repr__(self) -> str:
        return (f"FourierUndersampling(acceleration={self.acceleration:g}, "
                f"center_fraction={self.center_fraction:g}, seed={self.seed})")

    describe = __repr__

    def mask(self, width: int) -> torch.Tensor:
        """bool [width] CPU column mask (unshifted order) used for images of this width."""
        if width not in self._cache:
            self._cache[width] = column_mask(width, self.acceleration, self.center_fraction,
                                             self.seed)
        return self._cache[width]

    def _mask(self, width: int, device, dtype) -> torch.Tensor:
        key = (width, device, dtype)
        if key not in self._cache:
            self._cache[key] = self.mask(width).to(device=device, dtype=dtype)
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.fft.fft2(x, norm="ortho")
        return k * self._mask(x.shape[-1], x.device, x.dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        real = y.real.dtype if y.is_complex() else y.dtype
        masked = y * self._mask(y.shape[-1], y.device, real)
        return torch.fft.ifft2(masked, norm="ortho").real

    def measurement_from_image(self, image: torch.Tensor) -> torch.Tensor:
        raise ValueError("Fourier undersampling: k-space cannot be read from a picture; load "
                         "it from a file (DPS Load Measurement) or simulate it from an image")

    def measurement_to_image(self, y: torch.Tensor) -> torch.Tensor:
        # Mask first: simulated noise also lands on the unsampled columns, which A ignores.
        real = y.real.dtype if y.is_complex() else y.dtype
        return log_magnitude_picture(y * self._mask(y.shape[-1], y.device, real))


def log_magnitude_picture(y: torch.Tensor) -> torch.Tensor:
    """log(1 + |y|), centred with fftshift, scaled to [0, 1] per batch item (for previews)."""
    picture = torch.fft.fftshift(torch.log1p(y.abs()), dim=(-2, -1))
    peak = picture.flatten(1).amax(dim=1).clamp_min(torch.finfo(picture.dtype).tiny)
    return picture / peak.view(-1, *([1] * (picture.dim() - 1)))

