"""DPS Example Image (nodes/example_image_node.py): the bundled photos load by name, at the asked size,
through the node's real execute path; bad names and sizes are refused naming the input."""

import numpy as np
import pytest
from PIL import Image

from testkit.host import load_pack

load_pack()

from comfyui_dps.nodes.example_image_node import FOLDER, PHOTOS, DPSExampleImage, example_photo  # noqa: E402


def test_every_listed_photo_ships_as_a_small_256_px_png():
    assert sorted(p.stem for p in FOLDER.glob("*.png")) == sorted(PHOTOS)
    for name in PHOTOS:
        path = FOLDER / f"{name}.png"
        assert path.stat().st_size < 200_000
        with Image.open(path) as picture:
            assert picture.size == (256, 256) and picture.mode == "RGB"


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_the_node_returns_the_photo_as_a_comfy_image(size):
    image = DPSExampleImage.execute("coffee", size).result[0]
    assert image.shape == (1, size, size, 3) and str(image.dtype) == "torch.float32"
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and float(image.std()) > 0.1
    assert np.array_equal((image[0].numpy() * 255).round().astype(np.uint8), example_photo("coffee", size))


def test_at_256_px_the_node_gives_the_stored_pixels():
    with Image.open(FOLDER / "astronaut.png") as picture:
        stored = np.asarray(picture.convert("RGB"))
    assert np.array_equal(example_photo("astronaut", 256), stored)
    assert not np.array_equal(example_photo("coffee", 256), stored)


@pytest.mark.parametrize("photo, size, named", [("moon", 128, "photo"), ("../models/demo_prior", 128, "photo"),
                                                ("astronaut", 8, "size"), ("astronaut", 4096, "size")])
def test_bad_inputs_are_refused_naming_the_input(photo, size, named):
    with pytest.raises(ValueError, match=f"^{named}:"):
        DPSExampleImage.execute(photo, size)
