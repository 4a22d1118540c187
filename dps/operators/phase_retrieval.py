"""Fourier phase retrieval: the measurement is the magnitude of the oversampled Fourier
transform, y = |FFT2_ortho(zero-pad(x))|, the image padded with zeros (centred) to
`oversampling` times its height and width. Non-linear, so there is no adjoint."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _checks
from .base import Operator
from .fourier import log_magnitude_picture

#: Added to |z|^2 inside the square root so the gradient stays finite where z = 0
#: (d sqrt(u + eps)/du <= 1 / (2 sqrt(eps))); it shifts |z| by at most sqrt(eps) = 1e-6.
EPS = 1e-12


class PhaseRetrieval(Operator):
    """y = sqrt(|FFT2_ortho(pad(x))|^2 + EPS) with pad to ceil(oversampling * size) per axis;
    oversampling >= 1 (2.0 is the usual choice: the autocorrelation then fits)."""

    is_linear = False

    def __init__(self, oversampling: float = 2.0):
        self.oversampling = _checks.number("oversampling", oversampling, low=1,
                                           expected="a number >= 1")
        self.name = f"phase retrieval ({self.oversampling:g}x oversampling)"

    def __repr__(self) -> str:
        return f"PhaseRetrieval(oversampling={self.oversampling:g})"

    def padded_size(self, size: int) -> int:
        # The 1e-9 keeps 2.0 * 3 from rounding up through float error.
        return int(math.ceil(self.oversampling * size - 1e-9))

    def image_size(self, measurement_hw):
        sizes = []
        for axis, padded in zip(("height", "width"), tuple(measurement_hw), strict=True):
            guess = int(padded / self.oversampling)
            found = [n for n in range(max(guess - 2, 1), guess + 3)
                     if self.padded_size(n) == padded]
            if not found:
                raise ValueError(f"measurement: {axis} {padded} is not an oversampled image "
                                 f"size for oversampling {self.oversampling:g}")
            sizes.append(found[-1])
        return tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = self.padded_size(h) - h, self.padded_size(w) - w
        padded = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        z = torch.fft.fft2(padded, norm="ortho")
        return torch.sqrt(z.real ** 2 + z.imag ** 2 + EPS)

    def measurement_from_image(self, image: torch.Tensor) -> torch.Tensor:
        raise ValueError("phase retrieval: Fourier magnitudes cannot be read from a picture; "
                         "load them from a file (DPS Load Measurement) or simulate them from "
                         "an image")

    def measurement_to_image(self, y: torch.Tensor) -> torch.Tensor:
        return log_magnitude_picture(y)
