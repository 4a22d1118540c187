"""Draws the residual curve of a guided run as an IMAGE (PIL only: no plotting dependency)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
#: Text size in pixels: the plot is read in a Preview Image node, often shown smaller than its pixels.
FONT_PX = 18


def residual_plot(residuals: list[list[float]], final: list[float], width: int = 640, height: int = 400) -> torch.Tensor:
    """Plot log10 of each sample's normalised residual against the denoiser call index.

    A dashed line marks 1.0, the noise level: a sample that explains its measurement ends there.
    Returns a ComfyUI IMAGE [1, height, width, 3] in [0, 1]."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=FONT_PX)  # Pillow's bundled scalable font (bitmap if no FreeType)
    left, right, top, bottom = 4 * FONT_PX, width - 16, 2 * FONT_PX, height - 2 * FONT_PX
    series = [list(column) for column in zip(*residuals, strict=True)] if residuals else []
    values = [v for s in series for v in s if v > 0 and math.isfinite(v)] + [v for v in final if v > 0] + [1.0]
    low, high = math.log10(min(values)), math.log10(max(values))
    low, high = math.floor(low), max(math.ceil(high), math.floor(low) + 1)

    def to_xy(index: int, count: int, value: float) -> tuple[float, float]:
        x = left + (right - left) * (index / max(count - 1, 1))
        v = math.log10(min(max(value, 10.0**low), 10.0**high))
        return x, bottom - (bottom - top) * (v - low) / (high - low)

    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    for decade in range(low, high + 1):
        _, y = to_xy(0, 2, 10.0**decade)
        draw.line([left - 6, y, left, y], fill=(0, 0, 0), width=2)
        draw.text((left - 8, y), f"1e{decade}", fill=(0, 0, 0), font=font, anchor="rm")
    _, noise_y = to_xy(0, 2, 1.0)
    for x in range(left, right, 8):
        draw.line([x, noise_y, x + 4, noise_y], fill=(120, 120, 120), width=2)
    for i, values_i in enumerate(series):
        points = [to_xy(k, len(values_i), v) for k, v in enumerate(values_i)]
        colour = COLOURS[i % len(COLOURS)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        if i < len(final):
            y = to_xy(0, 2, final[i])[1]
            draw.ellipse([right - 6, y - 5, right + 4, y + 5], outline=colour, width=2)
    draw.text((left, top // 2), "residual / noise level (dashed: 1, o: final)", fill=(0, 0, 0), font=font, anchor="lm")
    draw.text(((left + right) // 2, bottom + FONT_PX), "sampling step (high noise -> low noise)", fill=(0, 0, 0),
              font=font, anchor="mm")
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None]
