"""The one protocol every forward operator follows.

An operator maps an image batch x of shape [B, C, H, W] (values in [0, 1]) to a measurement.
Operators are differentiable, device- and dtype-agnostic, batched, and never modify their input.
Linear operators also give their exact adjoint: <A x, y> = <x, A* y> (real inner product; for
complex measurements the real part of the Hermitian product).
"""

from __future__ import annotations

import torch


class Operator:
    """Forward model A of an inverse problem."""

    #: True when A(a x + b z) = a A(x) + b A(z); only then is `adjoint` defined.
    is_linear: bool = False
    #: Short name shown to users, e.g. "4x super-resolution (bicubic)".
    name: str = "operator"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not linear: it has no adjoint")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_image(x.shape)
        return self.forward(x)

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

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """A cheap image-domain estimate of x from y (for previews); default: the adjoint."""
        if not self.is_linear:
            raise NotImplementedError(f"{self.name} has no simple pseudo-inverse")
        return self.adjoint(y)
