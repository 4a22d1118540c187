"""Blur: y = k * x, the same-size convolution of every channel with one kernel.

The image is first extended past its border (`boundary`, see padding.py; "reflect" by default,
the realistic choice: no dark frame as with zeros, no wrap-around as with circular), then a
"valid" convolution brings it back to the image size. Both steps have exact adjoints (fold the
border back; transposed convolution), so A* is exact for every boundary.

This is a true convolution (the kernel is flipped, as deepinv and scipy do): y[n] =
sum_m k[m] x[n - m + c] with the kernel centre c = (kh // 2, kw // 2), which for even sizes
matches deepinv's Blur padding.
Kernels up to 5x5 use direct convolution; larger ones use the FFT on the padded
grid (enlarged to a fast FFT length; any length >= the padded size works), where a circular
convolution equals the valid one once the first k - 1 rows and columns are dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import padding
from .base import Operator

#: Kernels with more taps than this use the FFT, whose cost hardly depends on the kernel size.
#: Measured (bench/operators_results.md): on CPU the FFT path is already faster at 5x5; on an
#: H200 direct 5x5 is faster (0.3 vs 0.5 ms per 1024x1024 image), and GPUs are where DPS runs.
FFT_MIN_TAPS = 5 * 5


def fast_fft_size(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3, 5 or 7 (fast FFT lengths)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _check_kernel(kernel, name: str = "kernel") -> torch.Tensor:
    if not isinstance(kernel, torch.Tensor):
        kernel = torch.as_tensor(kernel)
    if kernel.dim() != 2 or kernel.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D tensor [kh, kw], "
                         f"got shape {tuple(kernel.shape)}")
    if kernel.is_complex():
        raise ValueError(f"{name}: expected real values, got a complex tensor")
    kernel = kernel.detach().to(device="cpu", dtype=torch.float64).clone()
    if not torch.isfinite(kernel).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    total = float(kernel.sum())
    if total <= 0:
        raise ValueError(f"{name}: expected a kernel with a positive sum (it is normalised to "
                         f"sum 1), got sum {total:g}")
    return kernel / total


class Convolution(Operator):
    """Same-size blur with a 2-D `kernel` (normalised to sum 1) and a `boundary`:
    "reflect" (default), "circular" or "zeros"."""

    is_linear = True
    tensor_names = ("kernel",)

    def __init__(self, kernel: torch.Tensor, boundary: str = "reflect"):
        if boundary not in padding.BOUNDARIES:
            raise ValueError(f"boundary: expected one of "
                             f"{', '.join(map(repr, padding.BOUNDARIES))}, got {boundary!r}")
        self.kernel = _check_kernel(kernel)
        self.boundary = boundary
        kh, kw = self.kernel.shape
        # Rows/columns to add above, below, left, right so the valid convolution is same-size.
        self.pads = ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)
        self.use_fft = kh * kw > FFT_MIN_TAPS
        self.name = f"blur ({kh}x{kw} kernel, {boundary} boundary)"

    def __repr__(self) -> str:
        kh, kw = self.kernel.shape
        return f"{type(self).__name__}({kh}x{kw} kernel, boundary={self.boundary!r})"

    def _weight(self, like: torch.Tensor) -> torch.Tensor:
        # Flipped: F.conv2d correlates, a convolution needs the flip.
        return self.kernel.flip(0, 1)[None, None].to(device=like.device, dtype=like.dtype)

    @staticmethod
    def _depthwise(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Correlate every channel with one [1, 1, kh, kw] weight (valid). One group per
        channel is about twice as fast on CPU as folding the channels into the batch."""
        channels = t.shape[-3]
        weight = weight.expand(channels, 1, -1, -1)
        return F.conv2d(t.reshape(-1, channels, *t.shape[-2:]), weight, groups=channels)

    def kernel_spectrum(self, grid: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """rfft2 of the kernel zero-padded to `grid` (cached), in `like`'s precision and device: the
        filter's frequency response, which closed-form solves and preconditioners read."""
        spectrum = self._derived(("spectrum", grid, like.dtype),
                                 lambda: torch.fft.rfft2(self.kernel.to(like.dtype), s=grid))
        return spectrum.to(like.device)

    def _valid(self, xp: torch.Tensor) -> torch.Tensor:
        """Valid convolution of the padded image: same size as the image."""
        kh, kw = self.kernel.shape
        hp, wp = xp.shape[-2:]
        if not self.use_fft:
            return self._depthwise(xp, self._weight(xp)).reshape(*xp.shape[:-2], hp - kh + 1, wp - kw + 1)
        grid = (fast_fft_size(hp), fast_fft_size(wp))
        full = torch.fft.irfft2(torch.fft.rfft2(xp, s=grid) * self.kernel_spectrum(grid, xp), s=grid)
        return full[..., kh - 1:hp, kw - 1:wp]

    def _valid_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Transpose of `_valid`: from image size back to the padded size."""
        kh, kw = self.kernel.shape
        hp, wp = y.shape[-2] + kh - 1, y.shape[-1] + kw - 1
        if not self.use_fft:
            # conv_transpose2d, written as a correlation of the zero-extended y with the
            # unflipped kernel: the same maths, but cuDNN's depthwise conv_transpose2d was
            # 10x slower than its conv2d (H200, 1024x1024, batch 4).
            full = F.pad(y, (kw - 1, kw - 1, kh - 1, kh - 1))
            unflipped = self.kernel[None, None].to(device=y.device, dtype=y.dtype)
            return self._depthwise(full, unflipped).reshape(*y.shape[:-2], hp, wp)
        # Adjoint of "keep the last rows/columns of the grid": put y back there, zeros
        # elsewhere; adjoint of circular convolution: multiply by the conjugate spectrum.
        grid = (fast_fft_size(hp), fast_fft_size(wp))
        z = F.pad(y, (kw - 1, grid[1] - wp, kh - 1, grid[0] - hp))
        spectrum = self.kernel_spectrum(grid, y)
        return torch.fft.irfft2(torch.fft.rfft2(z) * spectrum.conj(), s=grid)[..., :hp, :wp]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._valid(padding.pad(x, self.pads, self.boundary))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return padding.pad_adjoint(self._valid_adjoint(y), self.pads, self.boundary)
