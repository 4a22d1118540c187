"""DPS Keep Measured Pixels: paste the measured pixels of an inpainting measurement back into a
restored image, blended over a few pixels at each hole's edge.

With a latent model the VAE's round trip alters every pixel, the measured ones too (the samples
explain y only to the noise level, through an imperfect decoder); users of inpainting expect the
pixels they gave to come back unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from comfy_api.latest import io

from ..dps.operators.inpainting import Masking
from . import types
from .image_layout import to_comfy, to_engine


def paste_weight(keep: torch.Tensor, feather: int) -> torch.Tensor:
    """Weight of the measured value per pixel [b, 1, H, W]: the keep weight, ramped from 1 / feather
    next to a hole to 1 at `feather` pixels from it (the mean over k = 0..feather-1 of "more than k
    pixels from a hole"). feather = 0 pastes every kept pixel as it is."""
    if feather == 0:
        return keep
    hole = 1 - keep
    distant = [1 - F.max_pool2d(hole, 2 * k + 1, stride=1, padding=k) for k in range(feather)]
    return keep * torch.stack(distant).mean(dim=0)


def psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> float:
    """PSNR of a against b over the pixels where weight > 0 (weighted), in dB (inf if equal)."""
    error = ((a - b).square() * weight).sum() / (weight.sum() * a.shape[1]).clamp(min=1e-12)
    return math.inf if error.item() == 0 else -10 * math.log10(error.item())


class DPSKeepMeasuredPixels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSKeepMeasuredPixels",
            display_name="DPS Keep Measured Pixels (inpainting)",
            category="DPS/analysis",
            description="Put the pixels you measured back into the restored image (a latent model's VAE "
                        "alters them slightly), blended over a few pixels at each hole's edge. Inpainting "
                        "measurements only.",
            inputs=[
                io.Image.Input("image", tooltip="The restored image(s), e.g. from VAE Decode."),
                types.Measurement.Input("measurement", tooltip="The inpainting measurement they restore."),
                io.Int.Input("feather", default=4, min=0, max=64,
                             tooltip="4 blends the seam at a hole's edge over 4 pixels (for latent models). 0 "
                                     "pastes the measured pixels exactly; use 0 for scattered (random) masks, "
                                     "where almost every pixel is next to a hole."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The image with the measured pixels kept."),
                io.String.Output(display_name="report",
                                 tooltip="PSNR of the kept region against the measurement, before and after."),
            ],
        )

    @classmethod
    def execute(cls, image, measurement, feather=4) -> io.NodeOutput:
        if not isinstance(measurement.operator, Masking):
            raise ValueError(f"measurement: expected an inpainting measurement (a mask operator), got "
                             f"{measurement.operator.name}; measured pixels can only be kept where pixels "
                             "were measured")
        if not (isinstance(feather, int) and 0 <= feather <= 64):
            raise ValueError(f"feather: expected a whole number of pixels from 0 to 64, got {feather!r}")
        picture = to_engine(image, "image")
        measured_on = measurement.to(device=picture.device, dtype=picture.dtype)
        measured_on.check_image(picture)
        keep = measured_on.operator.keep_weights(picture)
        # y = keep * x + noise: the measured value of a (partly) kept pixel is y / keep.
        values = torch.where(keep > 0, measured_on.y / keep.clamp(min=1e-12), torch.zeros_like(measured_on.y))
        weight = paste_weight(keep, feather)
        kept = picture * (1 - weight) + values * weight
        region = (keep > 0.5).to(picture.dtype).expand(picture.shape[0], 1, *picture.shape[-2:])
        before, after = psnr(picture, values, region), psnr(kept, values, region)
        text = (f"Kept region ({region[0].mean().item():.0%} of the pixels): PSNR against the measurement "
                f"{before:.2f} dB before, {after:.2f} dB after (feather {feather} px; inf = identical).")
        return io.NodeOutput(to_comfy(kept), text)


NODES = [DPSKeepMeasuredPixels]
