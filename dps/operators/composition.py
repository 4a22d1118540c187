"""Two operators in a row: x -> second(first(x)), e.g. blur then downsample."""

from __future__ import annotations

import torch

from .base import Operator


class Composition(Operator):
    """A = second o first. Linear when both are; then A* = first* o second*."""

    def __init__(self, first: Operator, second: Operator):
        for label, op in (("first", first), ("second", second)):
            if not isinstance(op, Operator):
                raise ValueError(f"{label}: expected an Operator, got {type(op).__name__}")
        self.first, self.second = first, second
        self.is_linear = first.is_linear and second.is_linear
        self.name = f"{first.name}, then {second.name}"

    def __repr__(self) -> str:
        return f"Composition({self.first!r}, {self.second!r})"

    def to(self, device=None, dtype: torch.dtype | None = None) -> Composition:
        moved = super().to(device, dtype)
        moved.first, moved.second = self.first.to(device, dtype), self.second.to(device, dtype)
        return moved

    def check_image(self, shape) -> None:
        # The second operator checks first's output when it is applied.
        self.first.check_image(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first.forward(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if not self.is_linear:
            return super().adjoint(y)
        return self.first.adjoint(self.second.adjoint(y))

    def image_size(self, measurement_hw):
        return self.first.image_size(self.second.image_size(measurement_hw))

    def measurement_from_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.second.measurement_from_image(image)

    def measurement_to_image(self, y: torch.Tensor) -> torch.Tensor:
        return self.second.measurement_to_image(y)
