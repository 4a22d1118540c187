"""The two blurs of the DPS paper, both thin wrappers of Convolution (see convolution.py for
the boundary handling and the exact adjoint)."""

from __future__ import annotations

import torch

from . import _checks
from .camera_shake import camera_shake_kernel
from .convolution import Convolution


def gaussian_kernel(kernel_size: int, sigma: float) -> torch.Tensor:
    """float64 [k, k] isotropic Gaussian sampled at integer offsets from the centre, sum 1.
    sigma = 0 gives the unit impulse (no blur)."""
    offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    if sigma == 0:
        line = (offsets == 0).to(torch.float64)
    else:
        line = torch.exp(-0.5 * (offsets / sigma) ** 2)
    line = line / line.sum()
    return torch.outer(line, line)


class GaussianBlur(Convolution):
    """Blur with a `kernel_size` x `kernel_size` Gaussian of standard deviation `sigma` pixels
    (the DPS paper: 61 and 3.0). kernel_size must be odd so the blur does not shift the image;
    sigma = 0 is allowed and means no blur (identity), which keeps sliders continuous."""

    def __init__(self, kernel_size: int = 61, sigma: float = 3.0, boundary: str = "reflect"):
        self.kernel_size = _checks.integer("kernel_size", kernel_size, minimum=1, odd=True)
        self.sigma = _checks.number("sigma", sigma, low=0, expected="a non-negative number")
        super().__init__(gaussian_kernel(self.kernel_size, self.sigma), boundary)
        self.name = f"Gaussian blur (sigma {self.sigma:g}, {self.kernel_size}x{self.kernel_size})"

    def __repr__(self) -> str:
        return (f"GaussianBlur(kernel_size={self.kernel_size}, sigma={self.sigma:g}, "
                f"boundary={self.boundary!r})")


class MotionBlur(Convolution):
    """Blur with a user-given or generated motion kernel (2-D, normalised to sum 1).
    MotionBlur.camera_shake(...) builds one from `camera_shake_kernel`."""

    def __init__(self, kernel: torch.Tensor, boundary: str = "reflect"):
        super().__init__(kernel, boundary)
        kh, kw = self.kernel.shape
        self.name = f"motion blur ({kh}x{kw} kernel)"

    @classmethod
    def camera_shake(cls, size: int = 61, intensity: float = 0.5, seed: int = 0,
                     boundary: str = "reflect") -> "MotionBlur":
        blur = cls(camera_shake_kernel(size, intensity, seed), boundary)
        blur.name = f"motion blur (camera shake, {size}x{size}, intensity {intensity:g}, " \
                    f"seed {seed})"
        return blur
