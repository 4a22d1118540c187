"""The one protocol every forward operator follows.

An operator maps an image batch x of shape [B, C, H, W] (values in [0, 1]) to a measurement.
Operators are differentiable, batched, and never modify their input; the result has the image's
dtype (complex for k-space). Linear operators also give their exact adjoint: <A x, y> = <x, A* y>
(real inner product; for complex measurements the real part of the Hermitian product).

An operator keeps its tensors (kernels, masks) on `device`, CPU when built; `to` gives a copy
on another device, as deepinv's physics keeps buffers. An image elsewhere still works, at the
cost of a copy of those tensors per call.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from . import _checks


def tensor_to(t: torch.Tensor, device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`t` on `device` (None: where it is), its floating values in `dtype`: complex tensors take
    the complex dtype of that precision, bool and integer tensors keep theirs."""
    if dtype is None or not (t.is_floating_point() or t.is_complex()):
        return t.to(device=device)
    if t.is_complex():
        dtype = torch.promote_types(dtype, torch.complex64)
    return t.to(device=device, dtype=dtype)


class Operator:
    """Forward model A of an inverse problem."""

    #: True when A(a x + b z) = a A(x) + b A(z); only then is `adjoint` defined.
    is_linear: bool = False
    #: Short name shown to users, e.g. "4x super-resolution (bicubic)".
    name: str = "operator"
    #: Attributes holding the operator's own tensors: `to` moves them.
    tensor_names: tuple[str, ...] = ()
    #: Where the operator's tensors are, and where it builds those it derives per image size.
    device: torch.device = torch.device("cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not linear: it has no adjoint")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x.shape)
        return self.forward(x)

    def to(self, device=None, dtype: torch.dtype | None = None) -> Operator:
        """A copy of this operator with its tensors on `device` and, when given, its floating
        tensors in `dtype`. This operator and its tensors are left as they are."""
        dtype = _checks.floating_dtype("dtype", dtype)
        moved = copy.copy(self)
        if device is not None:
            moved.device = torch.device(device)
        for name in self.tensor_names:
            setattr(moved, name, tensor_to(getattr(self, name), device, dtype))
        # The copy shares no memo with this one: it rebuilds derived tensors on its own device.
        moved.__dict__.pop("_memo", None)
        return moved

    def _derived(self, key: tuple, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """`build()` moved to `device`, built once per `key` (what, image size, dtype): masks and
        matrices that depend on the image size cost too much to rebuild at every call."""
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = build().to(self.device)
        return memo[key]

    def check_image(self, shape: torch.Size | tuple[int, ...]) -> None:
        """Raise ValueError naming the image and what was expected if A cannot take `shape`."""
        if len(shape) != 4:
            raise ValueError(f"image: expected a tensor of shape [B, C, H, W], got {tuple(shape)}")

    def image_size(self, measurement_hw: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the image that a measurement of spatial size `measurement_hw` explains."""
        return tuple(measurement_hw)

    def measurement_from_image(self, image: torch.Tensor) -> torch.Tensor:
        """Turn an observed picture [B, C, h, w] in [0, 1] into the measurement y this operator
        produces (for example one luma channel for colourisation). Default: the picture itself."""
        return image

    def measurement_to_image(self, y: torch.Tensor) -> torch.Tensor:
        """A viewable picture [B, C, h, w] in [0, 1] of a measurement, for previews."""
        return y.clamp(0, 1)
