"""DPS Example Image: a photograph bundled with the pack, so the demo workflows run right after install.

The photos (nodes/example_images/, 256 x 256 PNG crops) come from scikit-image's data: `astronaut`
(Eileen Collins, NASA, public domain) and `coffee` (Rachel Michetti, CC0). The demo prior never saw
either in training.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
from comfy_api.latest import io
from PIL import Image

FOLDER = pathlib.Path(__file__).resolve().parent / "example_images"
PHOTOS = ("astronaut", "coffee")
CREDITS = {
    "astronaut": "Eileen Collins, NASA (public domain), from scikit-image",
    "coffee": "Rachel Michetti (CC0), from scikit-image",
}


def example_photo(name: str, size: int) -> np.ndarray:
    """The bundled photo `name` resized (Lanczos, antialiased) to size x size: uint8 [size, size, 3]."""
    if name not in PHOTOS:
        raise ValueError(f"photo: expected one of {', '.join(PHOTOS)}, got {name!r}")
    if not (isinstance(size, int) and 16 <= size <= 1024):
        raise ValueError(f"size: expected a whole number of pixels from 16 to 1024, got {size!r}")
    with Image.open(FOLDER / f"{name}.png") as picture:
        picture = picture.convert("RGB")
        if picture.size != (size, size):
            picture = picture.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(picture, dtype=np.uint8)


class DPSExampleImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSExampleImage",
            display_name="DPS Example Image",
            category="DPS/examples",
            description="A photograph that ships with ComfyUI-DPS (nothing to download or upload): the "
                        "ground truth of the demo workflows. astronaut: " + CREDITS["astronaut"] + "; coffee: "
                        + CREDITS["coffee"] + ". For your own picture use Load Image instead.",
            inputs=[
                io.Combo.Input("photo", options=list(PHOTOS), default="astronaut",
                               tooltip="Which bundled photo. astronaut: a face and a helmet (fine detail); "
                                       "coffee: a cup on a wooden table (smooth shapes, wood texture)."),
                io.Int.Input("size", default=128, min=16, max=1024, step=16,
                             tooltip="Side of the square picture in pixels. 128 suits the demo prior (64 to "
                                     "256, a multiple of 16); the photos are stored at 256, so larger sizes "
                                     "are upscaled and look soft."),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The photo as an RGB IMAGE [1, size, size, 3].")],
        )

    @classmethod
    def execute(cls, photo, size) -> io.NodeOutput:
        array = example_photo(photo, size)
        return io.NodeOutput(torch.from_numpy(array.astype(np.float32) / 255.0)[None])


NODES = [DPSExampleImage]
