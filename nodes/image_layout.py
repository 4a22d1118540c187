"""ComfyUI IMAGE [B, H, W, C] <-> engine [B, C, H, W]: layout and channel translation only.

ComfyUI pictures come as [B, H, W, C] floats in [0, 1] with C = 3 (LoadImage), but grey
(C = 1), grey + alpha (C = 2) and RGBA (C = 4) images reach nodes too. The engine works on
[B, C, H, W] RGB images. Every function returns a new tensor: inputs are never modified or
aliased (ComfyUI caches node outputs and hands the same tensor to every consumer).
"""

from __future__ import annotations

import torch


def check_finite(image: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(image).all()):
        raise ValueError(f"{name}: contains NaN or infinite pixel values; expected finite values in [0, 1]")


def to_engine(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """A ComfyUI IMAGE [B, H, W, C] as an RGB float32 batch [B, 3, H, W] (a copy).

    RGBA drops alpha; grey (and grey + alpha) is replicated to three equal channels."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected an IMAGE tensor, got {type(image).__name__}")
    if image.dim() != 4 or 0 in image.shape:
        raise ValueError(f"{name}: expected an IMAGE of shape [batch, height, width, channels], "
                         f"got {tuple(image.shape)}")
    if image.is_complex() or not image.is_floating_point():
        raise ValueError(f"{name}: expected real floating-point pixel values in [0, 1], got {image.dtype}")
    channels = image.shape[-1]
    if channels in (1, 2):
        rgb = image[..., :1].expand(-1, -1, -1, 3)
    elif channels in (3, 4):
        rgb = image[..., :3]
    else:
        raise ValueError(f"{name}: expected 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels, "
                         f"got {channels}")
    check_finite(rgb, name)
    return rgb.permute(0, 3, 1, 2).to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)


def to_comfy(picture: torch.Tensor) -> torch.Tensor:
    """An engine picture [B, C, H, W] (values meant for [0, 1]) as a viewable ComfyUI IMAGE
    [B, H, W, 3] float32, clamped to [0, 1]. One channel is shown as grey; any channel count
    other than 1 or 3 is shown as the grey mean of its channels."""
    if picture.dim() != 4:
        raise ValueError(f"picture: expected [B, C, H, W], got {tuple(picture.shape)}")
    if picture.is_complex():
        picture = picture.abs()
    picture = picture.detach().to(dtype=torch.float32)
    channels = picture.shape[1]
    if channels != 3:
        grey = picture if channels == 1 else picture.mean(dim=1, keepdim=True)
        picture = grey.expand(-1, 3, -1, -1)
    # clamp always allocates, so the result never aliases the engine's tensor.
    return picture.permute(0, 2, 3, 1).clamp(0, 1).contiguous()
