"""The demo's four inverse problems as engine operators, shared by the dev tools that measure the demo
prior on them (scripts/mode_photo_check.py, bench/bench_modes.py): 4x bicubic super-resolution, 80%
random inpainting, a 40x40 centred box and Gaussian blur sigma 2, as scripts/demo.py runs them."""

from __future__ import annotations

import torch

from comfyui_dps.dps.operators import GaussianBlur, Inpainting, RandomInpainting, SuperResolution

BOX = 40


def demo_operators(size: int = 128) -> dict:
    """Task name -> operator for square images of `size` pixels."""
    box = torch.zeros(size, size)
    start = size // 2 - BOX // 2
    box[start:start + BOX, start:start + BOX] = 1
    return {
        "super-resolution": SuperResolution(4, "bicubic"),
        "inpainting-random": RandomInpainting(0.8, seed=0),
        "inpainting-box": Inpainting(box),
        "deblur": GaussianBlur(13, 2.0),
    }
