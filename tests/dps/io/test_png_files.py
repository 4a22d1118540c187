"""PNG images through load_measurement_file: exact values for every bit depth and layout, alpha
dropped, and truncated, corrupt or oversized files refused before they cost memory."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
import pytest
import torch
from measurement_files import as_counts, chunk, load, pattern16, pillow_bytes, png_bytes
from PIL import Image, ImageFile

from comfyui_dps.dps.io import MAX_SIDE

RNG = np.random.default_rng(1234)


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3)])
def test_8bit_round_trip_exact(tmp_path, mode, channels):
    values = RNG.integers(0, 256, size=(5, 7, channels), dtype=np.uint8)
    values[0, 0] = 255
    values[0, 1] = 0
    image = Image.fromarray(values[:, :, 0] if channels == 1 else values, mode)
    got = load(tmp_path, "a.png", pillow_bytes(image, "PNG"))
    assert got.kind == "image"
    assert got.tensor.dtype == torch.float32 and got.tensor.shape == (1, 5, 7, channels)
    expected = torch.from_numpy(values.astype(np.float32) / np.float32(255)).unsqueeze(0)
    assert torch.equal(got.tensor, expected)
    assert got.tensor[0, 0, 0, 0] == 1.0 and got.tensor[0, 0, 1, 0] == 0.0


@pytest.mark.parametrize("mode,channels", [("LA", 2), ("RGBA", 4)])
def test_8bit_alpha_is_dropped(tmp_path, mode, channels):
    values = RNG.integers(0, 256, size=(4, 6, channels), dtype=np.uint8)
    got = load(tmp_path, "a.png", pillow_bytes(Image.fromarray(values, mode), "PNG"))
    assert got.tensor.shape == (1, 4, 6, channels - 1)
    assert np.array_equal(as_counts(got.tensor[0], 255), values[:, :, :-1])


def test_16bit_grey_exact(tmp_path):
    values = np.array([[0, 32768, 65535], [1, 257, 65534]], dtype=np.uint16)
    got = load(tmp_path, "g16.png", pillow_bytes(Image.fromarray(values), "PNG"))
    assert got.tensor.shape == (1, 2, 3, 1)
    assert got.tensor[0, 0, 2, 0].item() == 1.0
    assert got.tensor[0, 0, 1, 0].item() == np.float32(32768) / np.float32(65535)
    assert np.array_equal(as_counts(got.tensor[0, :, :, 0], 65535), values)


@pytest.mark.parametrize("colour,channels", [(2, 3), (6, 4), (4, 2), (0, 1)])
@pytest.mark.parametrize("filters", [[0], [1], [2], [0, 1, 2], [3], [4], [0, 1, 2, 3, 4]])
def test_16bit_all_layouts_and_filters_exact(tmp_path, colour, channels, filters):
    values = pattern16(9, 11, channels)
    data = png_bytes(values, colour, 16, filters=filters, idat_parts=3)
    got = load(tmp_path, "c16.png", data)
    colour_values = values[:, :, :-1] if colour in (4, 6) else values
    assert got.tensor.shape == (1, 9, 11, colour_values.shape[2])
    assert np.array_equal(as_counts(got.tensor[0], 65535), colour_values)
    # The writer checked against Pillow's own decoder, which keeps the high bytes.
    if colour != 0:
        high = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA" if colour in (4, 6) else "RGB"))
        ours = as_counts(got.tensor[0], 65535) >> 8
        assert np.array_equal(high[:, :, : ours.shape[2]] if colour != 4 else high[:, :, :1], ours)


def test_16bit_rgb_random_with_every_filter_matches_pillow_high_bytes(tmp_path):
    values = RNG.integers(0, 65536, size=(64, 48, 3), dtype=np.uint16)
    data = png_bytes(values, 2, 16, filters=RNG.integers(0, 5, size=64).tolist())
    got = load(tmp_path, "big.png", data)
    assert np.array_equal(as_counts(got.tensor[0], 65535), values)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), (values >> 8).astype(np.uint8))


def test_interlaced_16bit_colour_exact(tmp_path):
    values = pattern16(13, 10, 3)
    buffer = io.BytesIO()
    png.Writer(10, 13, greyscale=False, bitdepth=16, interlace=True).write(buffer, values.reshape(13, -1))
    data = buffer.getvalue()
    assert data[28] == 1  # IHDR's interlace method: Adam7
    got = load(tmp_path, "i.png", data)
    assert np.array_equal(as_counts(got.tensor[0], 65535), values)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), (values >> 8).astype(np.uint8))


def test_interlaced_8bit_matches_pillow(tmp_path):
    values = RNG.integers(0, 256, size=(9, 14, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    png.Writer(14, 9, greyscale=False, bitdepth=8, interlace=True).write(buffer, values.reshape(9, -1))
    data = buffer.getvalue()
    got = load(tmp_path, "i8.png", data)
    assert np.array_equal(as_counts(got.tensor[0], 255), np.asarray(Image.open(io.BytesIO(data))))


def test_low_bit_depth_grey_and_palette(tmp_path):
    bits1 = RNG.integers(0, 2, size=(3, 13), dtype=np.uint8)
    got = load(tmp_path, "b1.png", png_bytes(bits1, 0, 1))
    assert torch.equal(got.tensor[0, :, :, 0], torch.from_numpy(bits1).float())
    bits2 = RNG.integers(0, 4, size=(3, 13), dtype=np.uint8)
    got = load(tmp_path, "b2.png", png_bytes(bits2, 0, 2))
    assert np.array_equal(as_counts(got.tensor[0, :, :, 0], 3), bits2)
    palette = Image.fromarray(RNG.integers(0, 4, size=(4, 5), dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    got = load(tmp_path, "p.png", pillow_bytes(palette, "PNG"))
    assert got.tensor.shape == (1, 4, 5, 3)
    assert np.array_equal(as_counts(got.tensor[0], 255), np.asarray(palette.convert("RGB")))
    got = load(tmp_path, "pt.png", pillow_bytes(palette, "PNG", transparency=1))
    assert got.tensor.shape == (1, 4, 5, 3)
    assert np.array_equal(as_counts(got.tensor[0], 255), np.asarray(palette.convert("RGB")))


def test_truncated_zlib_refused_even_with_load_truncated_images(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    values = RNG.integers(0, 256, size=(8, 8), dtype=np.uint8)
    first_row = bytes([0]) + values[0].tobytes()  # only the first of 8 rows, chunks well formed
    with pytest.raises(ValueError, match=r"is not a readable image: .*truncated or corrupt"):
        load(tmp_path, "short.png", png_bytes(values, 0, 8, raw_override=first_row))
    with pytest.raises(ValueError, match=r"is not a readable image: .*truncated or corrupt"):
        load(tmp_path, "short16.png", png_bytes(pattern16(8, 8, 3), 2, 16, raw_override=first_row))
    good = pillow_bytes(Image.fromarray(values), "PNG")
    for cut in (20, 12, 1):  # inside the last IDAT, just before IEND, inside IEND
        with pytest.raises(ValueError, match=r"^file 'cut.png' is not a readable image"):
            load(tmp_path, "cut.png", good[:-cut])


def test_bad_crc_and_bad_filter_refused(tmp_path):
    data = bytearray(pillow_bytes(Image.fromarray(np.zeros((4, 4), np.uint8)), "PNG"))
    data[20] ^= 0xFF  # inside IHDR
    with pytest.raises(ValueError, match=r"is not a readable image: .*[Cc]hecksum error in IHDR"):
        load(tmp_path, "crc.png", bytes(data))
    rows = b"".join(bytes([7]) + bytes(24) for _ in range(4))
    with pytest.raises(ValueError, match=r"is not a readable image: .*[Ff]ilter"):
        load(tmp_path, "f.png", png_bytes(pattern16(4, 4, 3), 2, 16, raw_override=rows))


def _header_only(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_size_caps_checked_before_decoding(tmp_path):
    with pytest.raises(ValueError, match=r"limit is 16384 on a side"):
        load(tmp_path, "wide.png", _header_only(MAX_SIDE + 1, 1, 8, 0, zlib.compress(b"")))
    with pytest.raises(ValueError, match=r"over the limit"):  # 2**30 values
        load(tmp_path, "big.png", _header_only(16384, 16384, 8, 6, zlib.compress(b"")))
    with pytest.raises(ValueError, match=r"decompression bomb"):  # 4 GiB of pixels from a few bytes
        load(tmp_path, "sparse.png", _header_only(16384, 16384, 16, 0, zlib.compress(bytes(1000))))


def test_more_image_data_than_the_size_needs_is_refused(tmp_path):
    # A 4x4 grey image whose stream inflates to 32 MiB: counted and refused, never decoded.
    bomb = zlib.compress(bytes(32 << 20), 9)
    with pytest.raises(ValueError, match=r"more image data than its size needs"):
        load(tmp_path, "bomb.png", _header_only(4, 4, 8, 0, bomb))
    rows = b"".join(bytes([0]) + bytes(4) for _ in range(5))  # one row too many
    with pytest.raises(ValueError, match=r"is not a readable image"):
        load(tmp_path, "rows.png", _header_only(4, 4, 8, 0, zlib.compress(rows)))


def _pypng_file(values: np.ndarray, interlace: bool = False, **options) -> bytes:
    height, width = values.shape[:2]
    planes = values.shape[2] if values.ndim == 3 else 1
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), interlace=interlace, **options).write(
        buffer, values.reshape(height, -1).tolist()
    )
    return buffer.getvalue()


def _image_data(data: bytes) -> bytes:
    return zlib.decompress(b"".join(payload for kind, payload in png.Reader(bytes=data).chunks() if kind == b"IDAT"))


def _with_image_data(data: bytes, stream: bytes) -> bytes:
    """`data` with its IDAT chunks replaced by one holding `stream` (already compressed)."""
    out = data[:8]
    for kind, payload in png.Reader(bytes=data).chunks():
        if kind == b"IDAT":
            out += chunk(b"IDAT", stream) if stream is not None else b""
            stream = None
        else:
            out += chunk(kind, payload)
    return out


# Pillow decodes the layouts below; with LOAD_TRUNCATED_IMAGES it would zero-fill what follows a
# broken scanline or a short stream instead of failing, so the loader checks the stream first.
@pytest.mark.parametrize("interlace", [False, True], ids=["straight", "adam7"])
def test_pillow_route_refuses_a_bad_filter_type_even_with_load_truncated_images(tmp_path, monkeypatch, interlace):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _pypng_file(RNG.integers(0, 256, size=(8, 8, 3), dtype=np.uint8), interlace)
    raw = bytearray(_image_data(data))
    raw[-(1 + 8 * 3)] = 5  # the last scanline's filter byte (Adam7's last pass: 4 rows of 8 pixels)
    with pytest.raises(ValueError, match=r"^file 'f.png' is not a readable image: invalid PNG filter type 5"):
        load(tmp_path, "f.png", _with_image_data(data, zlib.compress(bytes(raw))))


@pytest.mark.parametrize("interlace", [False, True], ids=["straight", "adam7"])
def test_pillow_route_needs_exactly_the_declared_image_data(tmp_path, monkeypatch, interlace):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _pypng_file(RNG.integers(0, 256, size=(7, 9), dtype=np.uint8), interlace)
    raw = _image_data(data)
    with pytest.raises(ValueError, match=rf"image data holds {len(raw) - 1} of {len(raw)} bytes \(truncated"):
        load(tmp_path, "short.png", _with_image_data(data, zlib.compress(raw[:-1])))
    with pytest.raises(ValueError, match=r"more image data than its size needs"):
        load(tmp_path, "long.png", _with_image_data(data, zlib.compress(raw + bytes(1))))
    with pytest.raises(ValueError, match=r"image data stream does not end \(truncated or corrupt file\)"):
        load(tmp_path, "open.png", _with_image_data(data, zlib.compress(raw)[:-4]))  # no Adler-32
    broken = bytearray(zlib.compress(raw))
    broken[-2] ^= 0xFF  # the Adler-32 checksum
    with pytest.raises(ValueError, match=r"corrupt PNG image data"):
        load(tmp_path, "adler.png", _with_image_data(data, bytes(broken)))
    with pytest.raises(ValueError, match=r"is not a readable image"):
        load(tmp_path, "none.png", _with_image_data(data, None))  # no IDAT at all


def test_palette_index_past_the_palette_and_a_missing_palette_are_refused(tmp_path):
    indices = np.array([[0, 1, 2], [2, 5, 0]], dtype=np.uint8)
    plte = chunk(b"PLTE", bytes(range(9)))  # three entries
    with pytest.raises(ValueError, match=r"palette index 5 is past the palette's 3 entries"):
        load(tmp_path, "p.png", png_bytes(indices, 3, 8, before_idat=plte))
    with pytest.raises(ValueError, match=r"is not a readable image: .*PLTE"):
        load(tmp_path, "nop.png", png_bytes(indices, 3, 8))
