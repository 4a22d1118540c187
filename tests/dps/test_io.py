"""Tests for dps.io: safe loading of measurement files (images, .npy, .safetensors).

Every fixture file is generated in tmp_path. PNGs and TIFFs that Pillow cannot write (16-bit
colour, every PNG filter type, Deflate + predictor TIFF strips) come from the small writers
below, which follow the PNG and TIFF 6.0 specifications independently of the code under test.
"""

from __future__ import annotations

import ast
import io
import os
import pathlib
import pickle
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile
from safetensors.torch import save as save_safetensors

from comfyui_dps.dps import io as dio
from comfyui_dps.dps.io import (
    SUPPORTED_EXTENSIONS,
    LoadedArray,
    MeasurementFileNotFoundError,
    list_measurement_files,
    load_measurement_file,
)

# ------------------------------------------------------------------------- file writers


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_filter_row(row: np.ndarray, prev: np.ndarray, kind: int, bpp: int) -> np.ndarray:
    """Apply PNG filter `kind` to one scanline of bytes (the encoder's side)."""
    x = row.astype(np.int16)
    b = prev.astype(np.int16)
    a = np.concatenate([np.zeros(bpp, np.int16), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int16), b[:-bpp]])
    if kind == 0:
        pred = np.zeros_like(x)
    elif kind == 1:
        pred = a
    elif kind == 2:
        pred = b
    elif kind == 3:
        pred = (a + b) // 2
    else:
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return ((x - pred) % 256).astype(np.uint8)


def png_bytes(
    samples: np.ndarray,
    colour: int,
    depth: int,
    filters=None,
    interlace: int = 0,
    before_idat: bytes = b"",
    idat_parts: int = 1,
    raw_override: bytes | None = None,
) -> bytes:
    """A PNG of `samples` ([H, W] or [H, W, C] unsigned ints) with the given IHDR colour type
    and bit depth; `filters` gives each row's filter type (cycled)."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples[:, :, None]
    height, width, channels = samples.shape
    if depth == 16:
        rows = samples.astype(">u2").reshape(height, -1).view(np.uint8).reshape(height, -1)
    elif depth == 8:
        rows = samples.astype(np.uint8).reshape(height, -1)
    else:  # 1, 2 or 4 bits, one channel: pack MSB first
        per_byte = 8 // depth
        padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
        padded[:, :width] = samples[:, :, 0]
        groups = padded.reshape(height, -1, per_byte).astype(np.uint16)
        shifts = np.arange(per_byte - 1, -1, -1) * depth
        rows = (groups << shifts).sum(axis=2).astype(np.uint8)
    bpp = max(1, channels * depth // 8)
    filters = list(filters) if filters is not None else [0]
    out = bytearray()
    prev = np.zeros(rows.shape[1], np.uint8)
    for r in range(height):
        kind = filters[r % len(filters)]
        out.append(kind)
        out += _png_filter_row(rows[r], prev, kind, bpp).tobytes()
        prev = rows[r]
    raw = zlib.compress(bytes(out) if raw_override is None else raw_override)
    step = -(-len(raw) // idat_parts)
    idat = b"".join(_chunk(b"IDAT", raw[i : i + step]) for i in range(0, len(raw), step))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + before_idat + idat + _chunk(b"IEND", b"")


def tiff_bytes(
    samples: np.ndarray,
    bits: int = 16,
    photometric: int | None = None,
    sample_format: int = 1,
    extra: int | None = None,
    order: str = "<",
    compression: int = 1,
    predictor: int = 1,
    rows_per_strip: int | None = None,
    declared_size: tuple[int, int] | None = None,
) -> bytes:
    """A baseline, chunky, striped TIFF of `samples` ([H, W] or [H, W, C]). compression 1 stores
    the strips raw, 8 Deflates them; predictor 2 applies horizontal differencing first."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples[:, :, None]
    height, width, spp = samples.shape
    kind = {1: "u", 2: "i", 3: "f"}[sample_format]
    data = samples.astype(f"{order}{kind}{bits // 8}")
    if predictor == 2:
        data = np.concatenate([data[:, :1], np.diff(data, axis=1)], axis=1).astype(data.dtype)
    rows_per_strip = rows_per_strip or height
    strips = []
    for top in range(0, height, rows_per_strip):
        raw = np.ascontiguousarray(data[top : top + rows_per_strip]).tobytes()
        strips.append(zlib.compress(raw) if compression == 8 else raw)
    if photometric is None:
        photometric = 1 if spp <= 2 else 2
    width_d, height_d = declared_size or (width, height)
    tags = {
        256: (4, [width_d]),
        257: (4, [height_d]),
        258: (3, [bits] * spp),
        259: (3, [compression]),
        262: (3, [photometric]),
        273: (4, [0] * len(strips)),  # patched below
        277: (3, [spp]),
        278: (4, [rows_per_strip]),
        279: (4, [len(s) for s in strips]),
        339: (3, [sample_format] * spp),
    }
    if extra is not None:
        tags[338] = (3, [extra])
    if predictor != 1:
        tags[317] = (3, [predictor])
    ifd_size = 2 + 12 * len(tags) + 4
    spill_at = 8 + ifd_size

    def pack(typ: int, values) -> bytes:
        return b"".join(struct.pack(order + ("H" if typ == 3 else "I"), v) for v in values)

    spill_size = sum(len(pack(t, v)) for t, v in tags.values() if len(pack(t, v)) > 4)
    pixel_at = spill_at + spill_size
    offsets, pos = [], pixel_at
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    tags[273] = (4, offsets)
    ifd = struct.pack(order + "H", len(tags))
    spill = b""
    for tag in sorted(tags):
        typ, values = tags[tag]
        payload = pack(typ, values)
        if len(payload) > 4:
            ifd += struct.pack(order + "HHII", tag, typ, len(values), spill_at + len(spill))
            spill += payload
        else:
            ifd += struct.pack(order + "HHI", tag, typ, len(values)) + payload.ljust(4, b"\0")
    ifd += struct.pack(order + "I", 0)
    header = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    return header + ifd + spill + b"".join(strips)


def pillow_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    return save_safetensors(tensors, metadata=metadata)


def put(root: pathlib.Path, name: str, data: bytes) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def load(root: pathlib.Path, name: str, data: bytes, **kw) -> LoadedArray:
    return load_measurement_file(put(root, name, data), root, **kw)


def as_counts(tensor: torch.Tensor, scale: int) -> np.ndarray:
    return np.round(tensor.numpy().astype(np.float64) * scale).astype(np.int64)


def pattern16(height: int, width: int, channels: int) -> np.ndarray:
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
    values = (x * 4099 + y * 65521 + c * 12345 + x * y * 7) % 65536
    values[0, 0, :] = [0, 32768, 65535, 1][:channels]
    return values.astype(np.uint16)


RNG = np.random.default_rng(1234)

# ---------------------------------------------------------------------------------- PNG


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3)])
def test_png_8bit_round_trip_exact(tmp_path, mode, channels):
    values = RNG.integers(0, 256, size=(5, 7, channels), dtype=np.uint8)
    values[0, 0] = 255
    values[0, 1] = 0
    image = Image.fromarray(values[:, :, 0] if channels == 1 else values, mode)
    got = load(tmp_path, "a.png", pillow_bytes(image, "PNG"))
    assert got.kind == "image" and got.source_format == "png" and got.bit_depth == 8
    assert got.tensor.dtype == torch.float32 and got.tensor.shape == (1, 5, 7, channels)
    expected = torch.from_numpy(values.astype(np.float32) / np.float32(255)).unsqueeze(0)
    assert torch.equal(got.tensor, expected)
    assert got.tensor[0, 0, 0, 0] == 1.0 and got.tensor[0, 0, 1, 0] == 0.0
    assert not got.has_alpha and got.alpha is None and got.key is None


@pytest.mark.parametrize("mode,channels", [("LA", 2), ("RGBA", 4)])
def test_png_8bit_alpha_is_split_off(tmp_path, mode, channels):
    values = RNG.integers(0, 256, size=(4, 6, channels), dtype=np.uint8)
    got = load(tmp_path, "a.png", pillow_bytes(Image.fromarray(values, mode), "PNG"))
    assert got.tensor.shape == (1, 4, 6, channels - 1)
    assert got.has_alpha and got.alpha.shape == (1, 4, 6)
    assert np.array_equal(as_counts(got.tensor[0], 255), values[:, :, :-1])
    assert np.array_equal(as_counts(got.alpha[0], 255), values[:, :, -1])


def test_png_16bit_grey_exact(tmp_path):
    values = np.array([[0, 32768, 65535], [1, 257, 65534]], dtype=np.uint16)
    got = load(tmp_path, "g16.png", pillow_bytes(Image.fromarray(values), "PNG"))
    assert got.bit_depth == 16 and got.tensor.shape == (1, 2, 3, 1)
    assert got.tensor[0, 0, 2, 0].item() == 1.0
    assert got.tensor[0, 0, 1, 0].item() == np.float32(32768) / np.float32(65535)
    assert np.array_equal(as_counts(got.tensor[0, :, :, 0], 65535), values)


@pytest.mark.parametrize("colour,channels", [(2, 3), (6, 4), (4, 2), (0, 1)])
@pytest.mark.parametrize("filters", [[0], [1], [2], [0, 1, 2], [3], [4], [0, 1, 2, 3, 4]])
def test_png_16bit_all_layouts_and_filters_exact(tmp_path, colour, channels, filters):
    values = pattern16(9, 11, channels)
    data = png_bytes(values, colour, 16, filters=filters, idat_parts=3)
    got = load(tmp_path, "c16.png", data)
    alpha = colour in (4, 6)
    assert got.bit_depth == 16 and got.has_alpha == alpha
    colour_values = values[:, :, :-1] if alpha else values
    assert got.tensor.shape == (1, 9, 11, colour_values.shape[2])
    assert np.array_equal(as_counts(got.tensor[0], 65535), colour_values)
    if alpha:
        assert np.array_equal(as_counts(got.alpha[0], 65535), values[:, :, -1])
    # Cross-check the unfiltering against Pillow's own decoder, which keeps the high bytes.
    if colour != 0:
        high = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA" if alpha else "RGB"))
        ours = as_counts(got.tensor[0], 65535) >> 8
        assert np.array_equal(high[:, :, : ours.shape[2]] if colour != 4 else high[:, :, :1], ours)


def test_png_16bit_rgb_random_large_with_paeth_matches_pillow_high_bytes(tmp_path):
    values = RNG.integers(0, 65536, size=(64, 48, 3), dtype=np.uint16)
    data = png_bytes(values, 2, 16, filters=RNG.integers(0, 5, size=64).tolist())
    got = load(tmp_path, "big.png", data)
    assert np.array_equal(as_counts(got.tensor[0], 65535), values)
    pillow_high = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(pillow_high, (values >> 8).astype(np.uint8))


def test_png_low_bit_depth_grey_and_palette(tmp_path):
    bits1 = RNG.integers(0, 2, size=(3, 13), dtype=np.uint8)
    got = load(tmp_path, "b1.png", png_bytes(bits1, 0, 1))
    assert got.bit_depth == 1 and torch.equal(
        got.tensor[0, :, :, 0], torch.from_numpy(bits1).float()
    )
    bits2 = RNG.integers(0, 4, size=(3, 13), dtype=np.uint8)
    got = load(tmp_path, "b2.png", png_bytes(bits2, 0, 2))
    assert got.bit_depth == 2 and np.array_equal(as_counts(got.tensor[0, :, :, 0], 3), bits2)
    palette = Image.fromarray(RNG.integers(0, 4, size=(4, 5), dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    got = load(tmp_path, "p.png", pillow_bytes(palette, "PNG"))
    assert got.tensor.shape == (1, 4, 5, 3) and not got.has_alpha
    assert np.array_equal(as_counts(got.tensor[0], 255), np.asarray(palette.convert("RGB")))
    got = load(tmp_path, "pt.png", pillow_bytes(palette, "PNG", transparency=1))
    assert got.has_alpha and got.tensor.shape == (1, 4, 5, 3)


def test_png_interlaced_16bit_colour_refused_clearly(tmp_path):
    data = png_bytes(pattern16(4, 4, 3), 2, 16, interlace=1)
    with pytest.raises(ValueError, match=r"interlaced 16-bit colour"):
        load(tmp_path, "i.png", data)


def test_png_truncated_zlib_refused_even_with_load_truncated_images(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    values = RNG.integers(0, 256, size=(8, 8), dtype=np.uint8)
    full = bytes([0]) + values[0].tobytes()  # only the first of 8 rows, chunks well formed
    data = png_bytes(values, 0, 8, raw_override=full)
    with pytest.raises(ValueError, match=r"is not a readable image: .*truncated or corrupt"):
        load(tmp_path, "short.png", data)
    data = png_bytes(pattern16(8, 8, 3), 2, 16, raw_override=full)
    with pytest.raises(ValueError, match=r"truncated or corrupt"):
        load(tmp_path, "short16.png", data)
    good = pillow_bytes(Image.fromarray(values), "PNG")
    with pytest.raises(ValueError, match=r"truncated"):
        load(tmp_path, "cut.png", good[:-20])


def test_png_bad_crc_and_bad_filter_refused(tmp_path):
    data = bytearray(pillow_bytes(Image.fromarray(np.zeros((4, 4), np.uint8)), "PNG"))
    data[20] ^= 0xFF  # inside IHDR
    with pytest.raises(ValueError, match=r"CRC mismatch"):
        load(tmp_path, "crc.png", bytes(data))
    rows = b"".join(bytes([7]) + bytes(24) for _ in range(4))
    with pytest.raises(ValueError, match=r"invalid PNG filter type 7"):
        load(tmp_path, "f.png", png_bytes(pattern16(4, 4, 3), 2, 16, raw_override=rows))


def test_png_size_caps_checked_before_decoding(tmp_path):
    ihdr = struct.pack(">IIBBBBB", dio.MAX_SIDE + 1, 1, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
    data += _chunk(b"IEND", b"")
    with pytest.raises(ValueError, match=r"limit is 16384 on a side"):
        load(tmp_path, "wide.png", data)
    ihdr = struct.pack(">IIBBBBB", 16384, 16384, 8, 6, 0, 0, 0)  # 2**30 values
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
    data += _chunk(b"IEND", b"")
    with pytest.raises(ValueError, match=r"over the limit"):
        load(tmp_path, "bomb.png", data)


# --------------------------------------------------------------------------------- TIFF


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate", "packbits"])
@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3), ("RGBA", 4)])
def test_tiff_8bit_round_trip_exact(tmp_path, compression, mode, channels):
    values = RNG.integers(0, 256, size=(6, 5, channels), dtype=np.uint8)
    image = Image.fromarray(values[:, :, 0] if channels == 1 else values, mode)
    got = load(tmp_path, "a.tif", pillow_bytes(image, "TIFF", compression=compression))
    assert got.source_format == "tiff" and got.bit_depth == 8
    keep = 3 if channels == 4 else channels
    assert got.tensor.shape == (1, 6, 5, keep) and got.has_alpha == (channels == 4)
    assert np.array_equal(as_counts(got.tensor[0], 255), values[:, :, :keep])


def test_tiff_16bit_grey_exact(tmp_path):
    values = np.array([[0, 32768, 65535, 12345]], dtype=np.uint16)
    for data in (
        pillow_bytes(Image.fromarray(values), "TIFF"),
        tiff_bytes(values),
        tiff_bytes(values, order=">"),
    ):
        got = load(tmp_path, "g16.tiff", data)
        assert got.bit_depth == 16 and got.tensor.shape == (1, 1, 4, 1)
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
@pytest.mark.parametrize("channels", [3, 4])
def test_tiff_16bit_colour_exact(tmp_path, options, channels):
    values = pattern16(10, 7, channels)
    data = tiff_bytes(values, extra=2 if channels == 4 else None, **options)
    got = load(tmp_path, "c16.tif", data)
    assert got.bit_depth == 16 and got.tensor.shape == (1, 10, 7, 3)
    assert np.array_equal(as_counts(got.tensor[0], 65535), values[:, :, :3])
    assert got.has_alpha == (channels == 4)
    if channels == 4:
        assert np.array_equal(as_counts(got.alpha[0], 65535), values[:, :, 3])


def test_tiff_16bit_colour_unsupported_layout_is_refused_not_truncated(tmp_path):
    data = tiff_bytes(pattern16(4, 4, 3), compression=5)  # says LZW: Pillow would give 8 bits
    with pytest.raises(
        ValueError,
        match=r"not a readable image: this 16-bit TIFF layout is not supported \(compression 5",
    ):
        load(tmp_path, "lzw.tif", data)


def test_tiff_float_as_is(tmp_path):
    values = np.array([[0.0, 0.25, 1.0], [-3.5, 7.125, 1e-8]], dtype=np.float32)
    for data in (pillow_bytes(Image.fromarray(values, "F"), "TIFF"), tiff_bytes(values, 32, 1, 3)):
        got = load(tmp_path, "f.tif", data)
        assert got.bit_depth == 32 and got.tensor.dtype == torch.float32
        assert torch.equal(got.tensor, torch.from_numpy(values)[None, :, :, None])
    values[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"file 'nan.tif' contains 1 non-finite"):
        load(tmp_path, "nan.tif", tiff_bytes(values, 32, 1, 3))


def test_tiff_signed_and_32bit_integer_refused(tmp_path):
    with pytest.raises(ValueError, match=r"not a readable image: signed or 32-bit"):
        load(tmp_path, "i32.tif", tiff_bytes(np.array([[1, 2]], np.uint32), 32))
    with pytest.raises(ValueError, match=r"not a readable image"):
        load(tmp_path, "s16.tif", tiff_bytes(np.array([[-1, 2]], np.int16), 16, 1, 2))


def test_tiff_truncated_refused_even_with_load_truncated_images(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    values = RNG.integers(0, 256, size=(8, 8), dtype=np.uint8)
    for data in (tiff_bytes(values, 8), pillow_bytes(Image.fromarray(values), "TIFF")):
        with pytest.raises(ValueError, match=r"truncated"):
            load(tmp_path, "cut.tif", data[: len(data) - 5])


def test_tiff_size_cap_and_bomb_ratio(tmp_path):
    with pytest.raises(ValueError, match=r"limit is 16384 on a side"):
        load(tmp_path, "w.tif", tiff_bytes(np.zeros((1, 1), np.uint8), 8, declared_size=(20000, 1)))
    data = tiff_bytes(np.zeros((1, 1), np.uint8), 8, compression=8, declared_size=(16000, 16000))
    with pytest.raises(ValueError, match=r"decompression bomb"):
        load(tmp_path, "bomb.tif", data)
    data = tiff_bytes(np.zeros((1, 1), np.uint8), 8, declared_size=(100, 100))
    with pytest.raises(ValueError, match=r"uncompressed image data"):
        load(tmp_path, "short.tif", data)


# ---------------------------------------------------------------------------------- .npy


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_npy_float_and_complex_exact(tmp_path, dtype):
    values = RNG.standard_normal((3, 4, 5))
    if np.dtype(dtype).kind == "c":
        values = values + 1j * RNG.standard_normal((3, 4, 5))
    values = values.astype(dtype)
    got = load(tmp_path, "y.npy", npy_bytes(values))
    assert got.kind == "array" and got.source_format == "npy" and got.bit_depth is None
    assert got.tensor.dtype == torch.from_numpy(values).dtype
    assert torch.equal(got.tensor, torch.from_numpy(values))
    assert got.tensor.is_complex() == (np.dtype(dtype).kind == "c")


@pytest.mark.parametrize(
    "dtype,expected",
    [
        (np.uint8, torch.float32),
        (np.int16, torch.float32),
        (np.uint16, torch.float32),
        (np.bool_, torch.float32),
        (np.int32, torch.float64),
        (np.int64, torch.float64),
        (np.float16, torch.float32),
        (">f8", torch.float64),
        (">c8", torch.complex64),
    ],
)
def test_npy_dtype_policy(tmp_path, dtype, expected):
    values = np.arange(12).reshape(3, 4).astype(dtype)
    got = load(tmp_path, "y.npy", npy_bytes(values))
    assert got.tensor.dtype == expected
    assert np.array_equal(got.tensor.numpy(), values.astype(got.tensor.numpy().dtype))


def test_npy_fortran_order_and_scalar(tmp_path):
    values = np.asfortranarray(RNG.standard_normal((4, 3)))
    got = load(tmp_path, "f.npy", npy_bytes(values))
    assert got.tensor.is_contiguous() and torch.equal(got.tensor, torch.from_numpy(values.copy()))
    got = load(tmp_path, "s.npy", npy_bytes(np.float64(2.5)))
    assert got.tensor.shape == () and got.tensor.item() == 2.5


def test_npy_pickled_object_array_refused(tmp_path):
    evil = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(ValueError, match=r"file 'evil.npy': pickled .npy files are refused"):
        load(tmp_path, "evil.npy", npy_bytes(evil, allow_pickle=True))


def test_npy_raw_pickle_refused(tmp_path):
    with pytest.raises(ValueError, match=r"pickle"):
        load(tmp_path, "p.npy", pickle.dumps(np.zeros(3)))


def test_npy_structured_string_empty_nonfinite_refused(tmp_path):
    structured = np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])
    with pytest.raises(ValueError, match=r"structured"):
        load(tmp_path, "s.npy", npy_bytes(structured))
    with pytest.raises(ValueError, match=r"not a number type"):
        load(tmp_path, "u.npy", npy_bytes(np.array(["x", "y"])))
    with pytest.raises(ValueError, match=r"empty array"):
        load(tmp_path, "e.npy", npy_bytes(np.zeros((0, 3))))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"file 'n.npy' contains 1 non-finite"):
            load(tmp_path, "n.npy", npy_bytes(np.array([1.0, bad, 2.0])))
    with pytest.raises(ValueError, match=r"non-finite"):
        load(tmp_path, "nc.npy", npy_bytes(np.array([1 + 1j, complex(0, np.nan)])))


def test_npy_truncated_trailing_and_huge_header(tmp_path):
    data = npy_bytes(np.arange(10, dtype=np.float64))
    with pytest.raises(ValueError, match=r"is truncated"):
        load(tmp_path, "t.npy", data[:-1])
    with pytest.raises(ValueError, match=r"unexpected bytes"):
        load(tmp_path, "x.npy", data + b"\0")
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1073741824,), }"
    header = header.ljust(118) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(8)
    with pytest.raises(ValueError, match=r"over the limit"):
        load(tmp_path, "big.npy", data)


# ---------------------------------------------------------------------------- safetensors


def test_safetensors_single_real_tensor(tmp_path):
    values = torch.randn(2, 3, 4, dtype=torch.float64)
    got = load(tmp_path, "a.safetensors", safetensors_bytes({"whatever": values}))
    assert got.kind == "array" and got.source_format == "safetensors" and got.key == "whatever"
    assert torch.equal(got.tensor, values)


def test_safetensors_native_complex(tmp_path):
    values = torch.randn(3, 5, dtype=torch.complex64)
    got = load(tmp_path, "c.safetensors", safetensors_bytes({"y": values}))
    assert got.tensor.dtype == torch.complex64 and torch.equal(got.tensor, values)


@pytest.mark.parametrize(
    "real_dtype,imag_dtype,expected",
    [
        (torch.float32, torch.float32, torch.complex64),
        (torch.float64, torch.float64, torch.complex128),
        (torch.float32, torch.float64, torch.complex128),
    ],
)
def test_safetensors_real_imag_pair(tmp_path, real_dtype, imag_dtype, expected):
    real = torch.randn(4, 6, dtype=real_dtype)
    imag = torch.randn(4, 6, dtype=imag_dtype)
    data = safetensors_bytes({"kspace_real": real, "kspace_imag": imag})
    got = load(tmp_path, "k.safetensors", data)
    assert got.key == "kspace" and got.tensor.dtype == expected
    assert torch.equal(got.tensor.real, real.to(got.tensor.real.dtype))
    assert torch.equal(got.tensor.imag, imag.to(got.tensor.real.dtype))
    again = load(tmp_path, "k.safetensors", data, key="kspace")
    assert torch.equal(again.tensor, got.tensor)
    part = load(tmp_path, "k.safetensors", data, key="kspace_imag")
    assert part.key == "kspace_imag" and torch.equal(part.tensor, imag)


def test_safetensors_trailing_pair_with_complex_metadata(tmp_path):
    pairs = torch.randn(3, 4, 2)
    got = load(
        tmp_path, "t.safetensors", safetensors_bytes({"y": pairs}, metadata={"complex": "true"})
    )
    assert got.tensor.dtype == torch.complex64 and got.tensor.shape == (3, 4)
    assert torch.equal(torch.view_as_real(got.tensor), pairs)
    plain = load(tmp_path, "p.safetensors", safetensors_bytes({"y": pairs}))
    assert plain.tensor.dtype == torch.float32 and plain.tensor.shape == (3, 4, 2)
    with pytest.raises(ValueError, match=r"last dimension of size 2"):
        load(
            tmp_path,
            "bad.safetensors",
            safetensors_bytes({"y": torch.randn(3, 3)}, metadata={"complex": "true"}),
        )


def test_safetensors_key_selection(tmp_path):
    a, b, m = torch.randn(2), torch.randn(3), torch.randn(4)
    data = safetensors_bytes({"a": a, "b": b, "measurement": m, "y": torch.randn(5)})
    assert load(tmp_path, "s.safetensors", data).key == "measurement"
    assert torch.equal(load(tmp_path, "s.safetensors", data, key="b").tensor, b)
    assert load(tmp_path, "s.safetensors", data, key="").key == "measurement"
    data = safetensors_bytes({"a": a, "y": torch.randn(5)})
    assert load(tmp_path, "y.safetensors", data).key == "y"
    with pytest.raises(ValueError, match=r"holds several tensors \('a', 'b'\).*key"):
        load(tmp_path, "amb.safetensors", safetensors_bytes({"a": a, "b": b}))
    with pytest.raises(ValueError, match=r"has no tensor 'zz'.*'a', 'b'"):
        load(tmp_path, "amb.safetensors", safetensors_bytes({"a": a, "b": b}), key="zz")


def test_safetensors_dtype_policy_and_nonfinite(tmp_path):
    data = safetensors_bytes(
        {"y": torch.tensor([1.5, 2.0], dtype=torch.bfloat16), "i": torch.tensor([1, 2])}
    )
    assert load(tmp_path, "d.safetensors", data).tensor.dtype == torch.float32
    assert load(tmp_path, "d.safetensors", data, key="i").tensor.dtype == torch.float64
    with pytest.raises(ValueError, match=r"non-finite"):
        load(tmp_path, "n.safetensors", safetensors_bytes({"y": torch.tensor([1.0, float("inf")])}))


def test_safetensors_corrupt_headers(tmp_path):
    good = safetensors_bytes({"y": torch.randn(4)})
    (n,) = struct.unpack("<Q", good[:8])
    cases = {
        "garbage_json.safetensors": struct.pack("<Q", 10) + b"{not json!" + bytes(16),
        "too_long.safetensors": struct.pack("<Q", 1 << 40) + b"{}",
        "bad_offsets.safetensors": good[:8]
        + good[8 : 8 + n].replace(b"[0,16]", b"[0,99]")
        + good[8 + n :],
        "truncated.safetensors": good[:-3],
        "nested.safetensors": struct.pack("<Q", 20000) + b"{" + b"[" * 19999,
    }
    for name, data in cases.items():
        with pytest.raises(ValueError, match=rf"file '{name}'"):
            load(tmp_path, name, data)


def test_safetensors_element_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(dio, "MAX_ELEMENTS", 10)
    with pytest.raises(ValueError, match=r"over the limit of 10"):
        load(tmp_path, "big.safetensors", safetensors_bytes({"y": torch.zeros(11)}))


# ------------------------------------------------------------------------- path safety


def test_paths_outside_root_refused(tmp_path):
    root = tmp_path / "input"
    root.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(pillow_bytes(Image.new("L", (2, 2)), "PNG"))
    put(root, "inside.png", outside.read_bytes())
    for name in ("../secret.png", "sub/../../secret.png", str(outside), str(root / "inside.png")):
        with pytest.raises(ValueError, match=r"^file: '.*' is outside the input folder$"):
            load_measurement_file(name, root)
    with pytest.raises(ValueError, match=r"outside the input folder"):
        load_measurement_file("../nope.png", root)  # no probing of what exists outside


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_out_refused_and_in_allowed(tmp_path):
    root = tmp_path / "input"
    root.mkdir()
    data = pillow_bytes(Image.new("L", (2, 2), 7), "PNG")
    (tmp_path / "secret.png").write_bytes(data)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x.png").write_bytes(data)
    put(root, "real.png", data)
    try:
        os.symlink(tmp_path / "secret.png", root / "link_out.png")
        os.symlink(root / "real.png", root / "link_in.png")
        os.symlink(tmp_path / "dir", root / "dirlink")
    except OSError:
        pytest.skip("symlinks not permitted here")
    with pytest.raises(ValueError, match=r"file: 'link_out.png' is outside the input folder"):
        load_measurement_file("link_out.png", root)
    with pytest.raises(ValueError, match=r"outside the input folder"):
        load_measurement_file("dirlink/x.png", root)
    assert load_measurement_file("link_in.png", root).tensor[0, 0, 0, 0] == 7 / 255


def test_non_ascii_names_and_subfolders(tmp_path):
    data = pillow_bytes(Image.fromarray(np.full((2, 3), 200, np.uint8)), "PNG")
    for name in ("mesure_été_測定.png", "sous-dossier_é/測定 data.PNG"):
        got = load(tmp_path, name, data)
        assert got.tensor.shape == (1, 2, 3, 1)
    values = np.arange(6.0).reshape(2, 3)
    assert torch.equal(
        load(tmp_path, "données_測定.npy", npy_bytes(values)).tensor, torch.from_numpy(values)
    )
    assert load(tmp_path, "κ-space.safetensors", safetensors_bytes({"y": torch.ones(2)})).key == "y"


def test_missing_empty_directory_and_bad_names(tmp_path):
    with pytest.raises(ValueError, match=r"file 'nope.png' was not found") as info:
        load_measurement_file("nope.png", tmp_path)
    assert isinstance(info.value, MeasurementFileNotFoundError)
    assert isinstance(info.value, FileNotFoundError)
    for ext in SUPPORTED_EXTENSIONS:
        with pytest.raises(ValueError, match=rf"^file 'empty{ext}' is empty$"):
            load(tmp_path, f"empty{ext}", b"")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match=r"not a regular file"):
        load_measurement_file("folder.png", tmp_path)
    for name in ("", "   ", ".", "a\x00b.png"):
        with pytest.raises(ValueError):
            load_measurement_file(name, tmp_path)
    with pytest.raises(ValueError, match=r"input folder"):
        load_measurement_file("x.png", tmp_path / "missing_root")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.timeout(10)
def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.npy")
    with pytest.raises(ValueError, match=r"not a regular file"):
        load_measurement_file("pipe.npy", tmp_path)


def test_unsupported_extension_lists_supported(tmp_path):
    put(tmp_path, "x.jpg", b"\xff\xd8\xff\xe0")
    with pytest.raises(ValueError, match=r"unsupported extension; supported: .png, .tif"):
        load_measurement_file("x.jpg", tmp_path)


def test_file_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(dio, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match=r"too large"):
        load(tmp_path, "big.npy", npy_bytes(np.zeros(100)))


# ------------------------------------------------------------------------- sniffing


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


# ------------------------------------------------------------------ truncation and noise


def _valid_samples() -> dict[str, list[bytes]]:
    grey = RNG.integers(0, 256, size=(5, 6), dtype=np.uint8)
    rgba = RNG.integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    g16 = RNG.integers(0, 65536, size=(4, 5), dtype=np.uint16)
    return {
        ".png": [
            pillow_bytes(Image.fromarray(grey), "PNG"),
            pillow_bytes(Image.fromarray(rgba, "RGBA"), "PNG"),
            pillow_bytes(Image.fromarray(g16), "PNG"),
            png_bytes(pattern16(5, 6, 3), 2, 16, filters=[0, 1, 2, 3, 4]),
            png_bytes(pattern16(5, 6, 2), 4, 16, filters=[4]),
        ],
        ".tif": [
            pillow_bytes(Image.fromarray(grey), "TIFF"),
            pillow_bytes(Image.fromarray(rgba, "RGBA"), "TIFF", compression="tiff_lzw"),
            pillow_bytes(Image.fromarray(g16), "TIFF", compression="tiff_adobe_deflate"),
            pillow_bytes(Image.fromarray(grey.astype(np.float32), "F"), "TIFF"),
            tiff_bytes(pattern16(5, 6, 3), compression=8, predictor=2, rows_per_strip=2),
            tiff_bytes(pattern16(5, 6, 4), extra=2, order=">"),
        ],
        ".npy": [
            npy_bytes(RNG.standard_normal((3, 4)).astype(np.float32)),
            npy_bytes((RNG.standard_normal(5) + 1j).astype(np.complex128)),
            npy_bytes(np.arange(6, dtype=">i2").reshape(2, 3)),
        ],
        ".safetensors": [
            safetensors_bytes({"y": torch.randn(3, 4)}),
            safetensors_bytes({"k_real": torch.randn(3), "k_imag": torch.randn(3)}),
            safetensors_bytes({"y": torch.randn(2, 2, 2)}, metadata={"complex": "true"}),
            safetensors_bytes({"y": torch.randn(4, dtype=torch.complex64), "z": torch.ones(1)}),
        ],
    }


VALID = _valid_samples()


@pytest.mark.parametrize("ext", list(VALID))
def test_valid_samples_load(tmp_path, ext):
    for i, data in enumerate(VALID[ext]):
        got = load(tmp_path, f"ok{i}{ext}", data)
        assert torch.isfinite(got.tensor).all()


@pytest.mark.parametrize("ext", list(VALID))
def test_every_truncation_is_refused(tmp_path, ext):
    for data in VALID[ext]:
        # Every cut in the headers, then every fourth byte and the last few (cut 0, the empty
        # file, has its own test).
        cuts = (
            set(range(1, 48)) | set(range(48, len(data), 4)) | set(range(len(data) - 6, len(data)))
        )
        for cut in sorted(c for c in cuts if 0 < c < len(data)):
            with pytest.raises(ValueError, match=rf"^file 'cut{ext}'"):
                load(tmp_path, f"cut{ext}", data[:cut])


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".npy", ".safetensors"])
def test_random_bytes_refused(tmp_path, ext):
    noise = np.random.default_rng(7)
    for size in (1, 2, 7, 8, 9, 16, 100, 1000, 5000):
        for _ in range(5):
            data = noise.integers(0, 256, size=size, dtype=np.uint8).tobytes()
            with pytest.raises(ValueError, match=rf"^file 'noise{ext}'"):
                load(tmp_path, f"noise{ext}", data)


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC so that mutations reach past the CRC check."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, pos)
        end = pos + 12 + length
        if end > len(out):
            break
        crc = zlib.crc32(bytes(out[pos + 4 : pos + 8 + length])) & 0xFFFFFFFF
        struct.pack_into(">I", out, pos + 8 + length, crc)
        pos = end
    return bytes(out)


@st.composite
def hostile_file(draw, ext: str) -> bytes:
    base = draw(st.sampled_from(VALID[ext]))
    how = draw(st.sampled_from(["random", "prefixed", "truncated", "mutated", "spliced"]))
    if how == "random":
        return draw(st.binary(min_size=1, max_size=3000))
    if how == "prefixed":
        return base[: draw(st.integers(1, 24))] + draw(st.binary(max_size=2000))
    if how == "truncated":
        return base[: draw(st.integers(1, len(base) - 1))]
    if how == "spliced":
        i = draw(st.integers(0, len(base)))
        j = draw(st.integers(i, len(base)))
        return base[:i] + draw(st.binary(max_size=64)) + base[j:] or b"\0"
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if ext == ".png" and draw(st.booleans()):
        return _fix_png_crcs(bytes(data))
    return bytes(data)


FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ext", list(VALID))
def test_fuzz_only_value_error(tmp_path_factory, ext):
    root = tmp_path_factory.mktemp("fuzz")

    @FUZZ
    @given(data=hostile_file(ext))
    def run(data):
        (root / f"f{ext}").write_bytes(data)
        try:
            got = load_measurement_file(f"f{ext}", root)
        except ValueError as e:
            assert str(e).startswith(f"file 'f{ext}'"), str(e)
            return
        assert isinstance(got, LoadedArray)
        assert torch.isfinite(got.tensor).all()
        if got.kind == "image":
            assert got.tensor.dim() == 4 and got.tensor.shape[0] == 1

    run()


# ---------------------------------------------------------------------------- listing


def test_list_measurement_files(tmp_path):
    root = tmp_path / "input"
    for name in (
        "b.png",
        "a.npy",
        "UPPER.TIF",
        "x.tiff",
        "k.safetensors",
        "notes.txt",
        "photo.jpg",
        ".hidden.png",
        ".cache/inside.png",
        "sub/deeper/z.png",
        "sub/測定_é.npy",
    ):
        put(root, name, b"x")
    (root / "dir.png").mkdir()
    (tmp_path / "outside.png").write_bytes(b"x")
    if hasattr(os, "symlink"):
        try:
            os.symlink(tmp_path / "outside.png", root / "link_out.png")
            os.symlink(root / "b.png", root / "link_in.png")
            os.symlink(tmp_path, root / "loop")
        except OSError:
            pass
    names = list_measurement_files(root)
    expected = [
        "UPPER.TIF",
        "a.npy",
        "b.png",
        "k.safetensors",
        "sub/deeper/z.png",
        "sub/測定_é.npy",
        "x.tiff",
    ]
    if (root / "link_in.png").is_symlink():
        expected.append("link_in.png")
    assert names == sorted(expected)
    assert list_measurement_files(tmp_path / "missing") == []


def test_supported_extensions():
    assert SUPPORTED_EXTENSIONS == (".png", ".tif", ".tiff", ".npy", ".safetensors")


# ----------------------------------------------------------------------------- hygiene


def test_module_avoids_forbidden_things():
    source = pathlib.Path(dio.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("eval", "exec", "compile", "__import__")
        elif isinstance(node, ast.Attribute):
            assert node.attr not in ("environ", "getenv", "system", "popen")
    forbidden = {"comfy", "comfy_api", "pickle", "subprocess", "socket", "urllib", "requests"}
    assert not imported & forbidden, imported & forbidden
    assert "allow_pickle=True" not in source
