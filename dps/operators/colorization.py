"""Colourisation: the measurement is the grey (luma) version of an RGB image,
y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), shape [B, 1, H, W]."""

from __future__ import annotations

import torch

from .base import Operator

LUMA = (0.299, 0.587, 0.114)


class Colorization(Operator):
    """RGB image -> its luma. Linear; the adjoint spreads y over the channels with the luma
    weights."""

    is_linear = True
    name = "colorization"
    tensor_names = ("weights",)

    def __init__(self):
        self.weights = torch.tensor(LUMA, dtype=torch.float64).view(1, 3, 1, 1)

    def __repr__(self) -> str:
        return "Colorization()"

    def _weights(self, like: torch.Tensor) -> torch.Tensor:
        return self.weights.to(device=like.device, dtype=like.dtype)

    def check_image(self, shape) -> None:
        super().check_image(shape)
        if shape[1] != 3:
            raise ValueError(f"image: expected 3 colour channels (RGB), got {shape[1]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self._weights(x)).sum(dim=1, keepdim=True)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._weights(y)

    def measurement_from_image(self, image: torch.Tensor) -> torch.Tensor:
        """A grey picture given as 1 channel is the luma itself; as 3 channels, its luma."""
        if image.dim() != 4 or image.shape[1] not in (1, 3):
            raise ValueError(f"image: expected a picture [B, 1 or 3, H, W], "
                             f"got {tuple(image.shape)}")
        return image if image.shape[1] == 1 else self.forward(image)

    def measurement_to_image(self, y: torch.Tensor) -> torch.Tensor:
        return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
