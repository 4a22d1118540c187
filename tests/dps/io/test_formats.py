"""Formats: the extension chooses, the first bytes must agree, and anything else is refused with a
message that names the file."""

from __future__ import annotations

import numpy as np
import pytest
from measurement_files import load, npy_bytes, pillow_bytes, put
from PIL import Image

from comfyui_dps.dps.io import SUPPORTED_EXTENSIONS, load_measurement_file


def test_supported_extensions():
    assert SUPPORTED_EXTENSIONS == (".png", ".tif", ".tiff", ".npy", ".safetensors")


def test_unsupported_extension_lists_supported(tmp_path):
    put(tmp_path, "x.jpg", b"\xff\xd8\xff\xe0")
    with pytest.raises(ValueError, match=r"unsupported extension; supported: .png, .tif"):
        load_measurement_file("x.jpg", tmp_path)


def test_content_must_match_extension(tmp_path):
    png = pillow_bytes(Image.new("L", (2, 2)), "PNG")
    tif = pillow_bytes(Image.new("L", (2, 2)), "TIFF")
    with pytest.raises(ValueError, match=r"^file 'text.png' is not a readable image: not a PNG"):
        load(tmp_path, "text.png", b"hello, I am text\n" * 4)
    with pytest.raises(ValueError, match=r"not a PNG file \(a TIFF image\)"):
        load(tmp_path, "t.png", tif)
    with pytest.raises(ValueError, match=r"not a TIFF file \(a PNG image\)"):
        load(tmp_path, "p.tif", png)
    with pytest.raises(ValueError, match=r"not a NumPy .npy array \(a PNG image\)"):
        load(tmp_path, "p.npy", png)
    with pytest.raises(ValueError, match=r"not a safetensors file \(a NumPy"):
        load(tmp_path, "n.safetensors", npy_bytes(np.zeros(3)))
    with pytest.raises(ValueError, match=r"not a readable image: not a PNG file \(a JPEG image\)"):
        load(tmp_path, "j.png", b"\xff\xd8\xff\xe0" + bytes(20))


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".npy", ".safetensors"])
def test_random_bytes_refused(tmp_path, ext):
    noise = np.random.default_rng(7)
    for size in (1, 2, 7, 8, 9, 16, 100, 1000, 5000):
        for _ in range(5):
            data = noise.integers(0, 256, size=size, dtype=np.uint8).tobytes()
            with pytest.raises(ValueError, match=rf"^file 'noise{ext}'"):
                load(tmp_path, f"noise{ext}", data)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_valid_signature_then_junk_is_not_a_readable_image(tmp_path, ext):
    head = b"\x89PNG\r\n\x1a\n" if ext == ".png" else b"II*\x00"
    with pytest.raises(ValueError, match=rf"^file 'junk{ext}' is not a readable image"):
        load(tmp_path, f"junk{ext}", head + bytes(60))
