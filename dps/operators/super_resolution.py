"""Super-resolution: the measurement is the image shrunk by an integer factor s.

Both kernels are separable, so the operator is y = Dh x Dw^T with one small weight matrix per
axis (h x H and w x W); its exact adjoint is Dh^T y Dw. Dense matrices are used because
matrix products are fast everywhere and the adjoint is then exact by construction.

"bicubic" reproduces antialiased bicubic shrinking (PIL, and torch's
F.interpolate(mode="bicubic", antialias=True)): the Keys cubic (a = -0.5) stretched by s,
truncated at the image border and renormalised so each output pixel's weights sum to 1.
"average" is s x s box averaging (F.avg_pool2d).
"""

from __future__ import annotations

import torch

from . import _checks
from .base import Operator

FACTORS = (2, 3, 4, 8)
KERNELS = ("bicubic", "average")


def _keys_cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def bicubic_weights(size: int, factor: int) -> torch.Tensor:
    """float64 [size // factor, size] matrix of antialiased bicubic shrinking along one axis."""
    out = size // factor
    support = 2.0 * factor  # the cubic's support (2) stretched by the factor
    weights = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):
        center = factor * (i + 0.5)
        # Same window as PIL/torch: truncation toward zero, then clipped to the image.
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), size)
        taps = torch.arange(lo, hi, dtype=torch.float64)
        w = _keys_cubic((taps - center + 0.5) / factor)
        weights[i, lo:hi] = w / w.sum()
    return weights


def average_weights(size: int, factor: int) -> torch.Tensor:
    """float64 [size // factor, size] matrix of box averaging along one axis."""
    eye = torch.eye(size // factor, dtype=torch.float64)
    return eye.repeat_interleave(factor, dim=1) / factor


class SuperResolution(Operator):
    """y = shrink(x) by `scale_factor` (2, 3, 4 or 8) with the `kernel` "bicubic" or "average".
    Image height and width must be divisible by the factor."""

    is_linear = True

    def __init__(self, scale_factor: int = 4, kernel: str = "bicubic"):
        factor = _checks.integer("scale_factor", scale_factor, minimum=1)
        if factor not in FACTORS:
            raise ValueError(f"scale_factor: expected one of {', '.join(map(str, FACTORS))}, "
                             f"got {scale_factor!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {', '.join(map(repr, KERNELS))}, "
                             f"got {kernel!r}")
        self.scale_factor = factor
        self.kernel = kernel
        self.name = f"{factor}x super-resolution ({kernel})"

    def __repr__(self) -> str:
        return f"SuperResolution(scale_factor={self.scale_factor}, kernel={self.kernel!r})"

    def check_image(self, shape) -> None:
        super().check_image(shape)
        for axis, size in (("height", shape[-2]), ("width", shape[-1])):
            if size % self.scale_factor or size == 0:
                raise ValueError(f"image: {axis} {size} is not divisible by the "
                                 f"super-resolution factor {self.scale_factor}")

    def image_size(self, measurement_hw):
        h, w = measurement_hw
        return (h * self.scale_factor, w * self.scale_factor)

    def axis_matrix(self, size: int, like: torch.Tensor) -> torch.Tensor:
        """The [size // factor, size] shrinking matrix of one axis, in `like`'s dtype and device."""
        build = bicubic_weights if self.kernel == "bicubic" else average_weights
        weights = self._derived(("weights", size, like.dtype), lambda: build(size, self.scale_factor).to(like.dtype))
        return weights.to(like.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dh, dw = (self.axis_matrix(size, x) for size in x.shape[-2:])
        return dh @ x @ dw.mT

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        dh, dw = (self.axis_matrix(size, y) for size in self.image_size(y.shape[-2:]))
        return dh.mT @ y @ dw
