"""Undersampled Fourier measurements (single-coil MRI): y = M * FFT2c(x) per channel.

FFT2c is the centred orthonormal FFT of MRI, fftshift(fft2(ifftshift(x), norm="ortho")):
k-space frequency 0 sits at index [H // 2, W // 2], the layout of fastMRI's files and of
deepinv's MRI, so k-space loaded from such a file is y as it is. M keeps whole columns
(phase-encode lines) fastMRI-style: the central, lowest-frequency `center_fraction` of
columns always, the others at random so about 1/acceleration of all columns are kept.

x is real and y complex, so A is linear over the reals; its adjoint for the real inner
product Re<y, z> is Re(IFFT2c(M * y)) (the shifts are permutations, FFT2c is unitary).
"""

from __future__ import annotations

import torch

from . import _checks
from .base import Operator


def column_mask(width: int, acceleration: float, center_fraction: float, seed: int) -> torch.Tensor:
    """bool [width] mask in centred order (column width // 2 = frequency 0)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    low = max(1, min(width, round(width * center_fraction)))
    # Probability for the other columns so that width / acceleration are kept on average.
    rest = width - low
    prob = 0.0 if rest == 0 else min(max((width / acceleration - low) / rest, 0.0), 1.0)
    centred = torch.rand(width, generator=generator, dtype=torch.float64) < prob
    start = (width - low + 1) // 2
    centred[start:start + low] = True
    return centred


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

    def __repr__(self) -> str:
        return (f"FourierUndersampling(acceleration={self.acceleration:g}, "
                f"center_fraction={self.center_fraction:g}, seed={self.seed})")

    def mask(self, width: int) -> torch.Tensor:
        """bool [width] CPU column mask (centred order) used for images of this width."""
        return column_mask(width, self.acceleration, self.center_fraction, self.seed)

    def mask_like(self, like: torch.Tensor) -> torch.Tensor:
        """The column mask for `like`'s width as real numbers of its precision, on its device."""
        width, dtype = like.shape[-1], like.real.dtype if like.is_complex() else like.dtype
        mask = self._derived(("mask", width, dtype), lambda: self.mask(width).to(dtype))
        return mask.to(like.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return centred_fft2(x) * self.mask_like(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return centred_ifft2(y * self.mask_like(y)).real

    def measurement_from_image(self, image: torch.Tensor) -> torch.Tensor:
        raise ValueError("Fourier undersampling: k-space cannot be read from a picture; load "
                         "it from a file (DPS Load Measurement) or simulate it from an image")

    def measurement_to_image(self, y: torch.Tensor) -> torch.Tensor:
        # Mask first: simulated noise also lands on the unsampled columns, which A ignores.
        return log_magnitude_picture(y * self.mask_like(y), centred=True)


DIMS = (-2, -1)


def centred_fft2(x: torch.Tensor) -> torch.Tensor:
    """fftshift(fft2(ifftshift(x))), orthonormal: MRI's k-space with frequency 0 at the centre."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=DIMS), norm="ortho"), dim=DIMS)


def centred_ifft2(y: torch.Tensor) -> torch.Tensor:
    """The inverse (and adjoint) of centred_fft2."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(y, dim=DIMS), norm="ortho"), dim=DIMS)


def log_magnitude_picture(y: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """log(1 + |y|), scaled to [0, 1] per batch item (for previews); k-space not `centred` already
    is fftshifted so that frequency 0 shows in the middle."""
    picture = torch.log1p(y.abs())
    if not centred:
        picture = torch.fft.fftshift(picture, dim=DIMS)
    peak = picture.flatten(1).amax(dim=1).clamp_min(torch.finfo(picture.dtype).tiny)
    return picture / peak.view(-1, *([1] * (picture.dim() - 1)))

