"""TIFF images through load_measurement_file: exact values at 8 and 16 bits, grey and colour, every
compression Pillow keeps exact, 16-bit colour at full precision, and truncated, corrupt or oversized
files refused before they cost memory."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
import tifffile
import torch
from measurement_files import as_counts, load, pattern16, pillow_bytes, tiff_bytes
from PIL import Image, ImageFile

RNG = np.random.default_rng(1234)


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate", "packbits"])
@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3), ("RGBA", 4)])
def test_8bit_round_trip_exact(tmp_path, compression, mode, channels):
    values = RNG.integers(0, 256, size=(6, 5, channels), dtype=np.uint8)
    image = Image.fromarray(values[:, :, 0] if channels == 1 else values, mode)
    got = load(tmp_path, "a.tif", pillow_bytes(image, "TIFF", compression=compression))
    keep = 3 if channels == 4 else channels
    assert got.kind == "image" and got.tensor.shape == (1, 6, 5, keep)
    assert np.array_equal(as_counts(got.tensor[0], 255), values[:, :, :keep])


def test_16bit_grey_exact(tmp_path):
    values = np.array([[0, 32768, 65535, 12345]], dtype=np.uint16)
    for data in (pillow_bytes(Image.fromarray(values), "TIFF"), tiff_bytes(values), tiff_bytes(values, order=">")):
        got = load(tmp_path, "g16.tiff", data)
        assert got.tensor.shape == (1, 1, 4, 1)
        assert got.tensor[0, 0, 2, 0].item() == 1.0
        assert got.tensor[0, 0, 1, 0].item() == np.float32(32768) / np.float32(65535)
        assert np.array_equal(as_counts(got.tensor[0, :, :, 0], 65535), values)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"order": ">"},
        {"compression": 8},
        {"compression": 8, "predictor": 2},
        {"compression": 8, "predictor": 2, "rows_per_strip": 3, "order": ">"},
        {"rows_per_strip": 4},
    ],
)
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_and_grey_alpha_exact(tmp_path, options, channels):
    values = pattern16(10, 7, channels)
    data = tiff_bytes(values, extra=2 if channels in (2, 4) else None, **options)
    got = load(tmp_path, "c16.tif", data)
    keep = 1 if channels == 2 else 3
    assert got.tensor.shape == (1, 10, 7, keep)
    assert np.array_equal(as_counts(got.tensor[0], 65535), values[:, :, :keep])


@pytest.mark.parametrize("options", [{"tile": (16, 16)}, {"planarconfig": "separate"}, {"compression": "zlib", "tile": (16, 16)}])
def test_16bit_colour_tiled_and_planar_exact(tmp_path, options):
    values = pattern16(20, 35, 3)
    buffer = io.BytesIO()
    planar = options.get("planarconfig") == "separate"  # then tifffile takes the samples first
    tifffile.imwrite(buffer, np.moveaxis(values, -1, 0) if planar else values, photometric="rgb", **options)
    got = load(tmp_path, "t16.tif", buffer.getvalue())
    assert np.array_equal(as_counts(got.tensor[0], 65535), values)


def test_16bit_colour_unsupported_layout_is_refused_not_truncated(tmp_path):
    data = tiff_bytes(pattern16(4, 4, 3), compression=5)  # says LZW: Pillow would give 8 bits
    with pytest.raises(
        ValueError, match=r"not a readable image: this 16-bit TIFF layout is not supported \(compression 5"
    ):
        load(tmp_path, "lzw.tif", data)


def test_16bit_colour_deflate_bomb_refused(tmp_path):
    data = tiff_bytes(pattern16(4, 4, 3), compression=8)
    bomb = zlib.compress(bytes(16 << 20), 9)  # a strip of 96 bytes that inflates to 16 MiB
    strip = data.rindex(zlib.compress(pattern16(4, 4, 3).astype("<u2").tobytes()))
    patched = tiff_bytes(pattern16(4, 4, 3), compression=8)[:strip] + bomb
    patched = patched.replace(
        len(data[strip:]).to_bytes(4, "little"), len(bomb).to_bytes(4, "little"), 1
    )
    with pytest.raises(ValueError, match=r"inflates past its size"):
        load(tmp_path, "bomb.tif", patched)


def test_float_as_is(tmp_path):
    values = np.array([[0.0, 0.25, 1.0], [-3.5, 7.125, 1e-8]], dtype=np.float32)
    for data in (pillow_bytes(Image.fromarray(values, "F"), "TIFF"), tiff_bytes(values, 32, 1, 3)):
        got = load(tmp_path, "f.tif", data)
        assert got.tensor.dtype == torch.float32
        assert torch.equal(got.tensor, torch.from_numpy(values)[None, :, :, None])
    values[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"file 'nan.tif' contains 1 non-finite"):
        load(tmp_path, "nan.tif", tiff_bytes(values, 32, 1, 3))


def test_signed_and_32bit_integer_refused(tmp_path):
    with pytest.raises(ValueError, match=r"not a readable image: signed or 32-bit"):
        load(tmp_path, "i32.tif", tiff_bytes(np.array([[1, 2]], np.uint32), 32))
    with pytest.raises(ValueError, match=r"not a readable image"):
        load(tmp_path, "s16.tif", tiff_bytes(np.array([[-1, 2]], np.int16), 16, 1, 2))


def test_truncated_refused_even_with_load_truncated_images(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    values = RNG.integers(0, 256, size=(8, 8), dtype=np.uint8)
    for data in (tiff_bytes(values, 8), pillow_bytes(Image.fromarray(values), "TIFF")):
        with pytest.raises(ValueError, match=r"truncated"):
            load(tmp_path, "cut.tif", data[: len(data) - 5])


def test_a_tag_lost_past_the_end_is_refused(tmp_path):
    # libtiff writes the directory after the pixels and out-of-line tag values after the directory:
    # a cut there loses BitsPerSample (8, 8, 8) while every pixel byte is still present.
    data = pillow_bytes(Image.fromarray(RNG.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)), "TIFF", compression="tiff_lzw")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        bits = tif.pages.first.tags["BitsPerSample"].valueoffset
        assert bits > tif.pages.first.dataoffsets[0]
    with pytest.raises(ValueError, match=r"tag's value lies past the end of the file"):
        load(tmp_path, "lost.tif", data[: bits + 2])


def test_size_cap_and_bomb_ratio(tmp_path):
    with pytest.raises(ValueError, match=r"limit is 16384 on a side"):
        load(tmp_path, "w.tif", tiff_bytes(np.zeros((1, 1), np.uint8), 8, declared_size=(20000, 1)))
    data = tiff_bytes(np.zeros((1, 1), np.uint8), 8, compression=8, declared_size=(16000, 16000))
    with pytest.raises(ValueError, match=r"decompression bomb"):
        load(tmp_path, "bomb.tif", data)
    data = tiff_bytes(np.zeros((1, 1), np.uint8), 8, declared_size=(100, 100))
    with pytest.raises(ValueError, match=r"uncompressed image data"):
        load(tmp_path, "short.tif", data)
