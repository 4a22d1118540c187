"""Every PNG layout (bit depth x colour type x interlace, with and without tRNS) loads to exactly its
source values, whichever decoder the loader routes it to, and the route is the expected one: Pillow
for the layouts it keeps exact, pypng for those it would cut to 8 bits. A change in either library
that altered a value, or a route that cut bits, fails here. The files are written by pypng from
known arrays (not by Pillow, which cannot write most of these layouts)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import png
import pytest
import torch
from measurement_files import chunk, load
from PIL import Image, PngImagePlugin

from comfyui_dps.dps.io import png_files

RNG = np.random.default_rng(20240607)
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
PLANES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
LAYOUTS = [(depth, colour) for colour, depths in DEPTHS.items() for depth in depths]
# Pillow keeps only the high byte of these; everything else must take the fast route.
PYPNG_ONLY = {(16, 2), (16, 4), (16, 6)}
# Sizes that leave some Adam7 passes empty (1x1, 3x2), and odd ones that end rows mid-byte.
SIZES = [(1, 1), (3, 2), (2, 5), (13, 11), (37, 9)]


def _source(depth: int, colour: int, width: int, height: int, top: int) -> np.ndarray:
    """Random samples [H, W, planes] up to `top`, holding 0 and `top`."""
    values = RNG.integers(0, top + 1, size=(height, width, PLANES[colour]), dtype=np.int64)
    values.flat[0] = top
    values.flat[-1] = 0
    return values.astype(np.uint16 if depth == 16 else np.uint8)


def _palette(depth: int, alpha: bool) -> list[tuple[int, ...]]:
    size = 2**depth if depth < 8 else 200  # a palette may be shorter than its indices allow
    entries = RNG.integers(0, 256, size=(size, 4 if alpha else 3)).tolist()
    entries[0][:3] = [0, 0, 0]
    entries[-1][:3] = [255, 255, 255]
    return [tuple(entry) for entry in entries]


def _write(values: np.ndarray, depth: int, colour: int, interlace: bool, transparent, palette) -> bytes:
    height, width, planes = values.shape
    options = {"bitdepth": depth, "interlace": interlace}
    if colour == 3:
        options["palette"] = palette
    else:
        options.update(greyscale=colour in (0, 4), alpha=colour in (4, 6))
        if transparent is not None:
            options["transparent"] = transparent
    buffer = io.BytesIO()
    png.Writer(width, height, **options).write(buffer, values.reshape(height, width * planes).tolist())
    return buffer.getvalue()


def _expected(values: np.ndarray, depth: int, colour: int, palette) -> torch.Tensor:
    if colour == 3:
        counts, scale = np.asarray(palette, dtype=np.uint8)[values[:, :, 0]][:, :, :3], 255
    else:
        counts, scale = values[:, :, : 1 if colour in (0, 4) else 3], 2**depth - 1
    expected = counts.astype(np.float32)
    if scale != 1:
        expected /= np.float32(scale)
    return torch.from_numpy(expected).unsqueeze(0)


def _variants(depth: int, colour: int):
    """(tRNS key, palette) pairs to write: without and with transparency, where the layout allows it."""
    if colour == 3:
        return [(None, _palette(depth, False)), (None, _palette(depth, True))]
    if colour in (0, 2):
        key = tuple(int(v) for v in RNG.integers(0, 2**depth, size=PLANES[colour]))
        return [(None, None), (key, None)]
    return [(None, None)]


@pytest.fixture
def routes(monkeypatch):
    """The decoders each load used, in order."""
    used = []
    for route in ("pillow", "pypng"):
        decoder = getattr(png_files, f"_decode_with_{route}")

        def spy(*args, _decoder=decoder, _route=route):
            result = _decoder(*args)
            if result is not None:
                used.append(_route)
            return result

        monkeypatch.setattr(png_files, f"_decode_with_{route}", spy)
    return used


@pytest.mark.parametrize("interlace", [False, True], ids=["straight", "adam7"])
@pytest.mark.parametrize("depth,colour", LAYOUTS, ids=[f"{d}bit-type{c}" for d, c in LAYOUTS])
def test_every_layout_loads_its_exact_source_values(tmp_path, routes, depth, colour, interlace):
    route = "pypng" if (depth, colour) in PYPNG_ONLY else "pillow"
    for width, height in SIZES:
        for transparent, palette in _variants(depth, colour):
            top = len(palette) - 1 if colour == 3 else 2**depth - 1
            values = _source(depth, colour, width, height, top)
            data = _write(values, depth, colour, interlace, transparent, palette)
            assert data[24:27] == bytes([depth, colour, 0]) and data[28] == interlace
            # The writer wrote what we think: pypng reads the source values back.
            _, _, rows, _ = png.Reader(bytes=data).read()
            assert np.array_equal(np.array([list(row) for row in rows]), values.reshape(height, -1))
            routes.clear()
            got = load(tmp_path, "layout.png", data).tensor
            expected = _expected(values, depth, colour, palette)
            assert got.dtype == torch.float32 and got.shape == expected.shape
            assert torch.equal(got, expected), (width, height, transparent is not None, palette is not None)
            assert routes == [route], (width, height)


def test_the_exact_layouts_table_lists_only_layouts_pillow_keeps():
    assert set(png_files._PILLOW_EXACT) == set(LAYOUTS) - PYPNG_ONLY


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    return list(png.Reader(bytes=data).chunks())


def _assemble(chunks) -> bytes:
    return png.signature + b"".join(chunk(kind, payload) for kind, payload in chunks)


def _grey_file(values: np.ndarray) -> bytes:
    return _write(values[:, :, None], 8, 0, False, None, None)


def _check_grey(tmp_path, data: bytes, values: np.ndarray) -> None:
    got = load(tmp_path, "route.png", data).tensor
    assert torch.equal(got, _expected(values[:, :, None], 8, 0, None))


def test_irregular_chunk_orders_go_to_pypng(tmp_path, routes):
    values = RNG.integers(0, 256, size=(6, 5), dtype=np.uint8)
    chunks = _chunks(_grey_file(values))
    ihdr, (_, stream), iend = chunks
    split = [(b"IDAT", stream[:7]), (b"tEXt", b"note\x00between"), (b"IDAT", stream[7:])]
    _check_grey(tmp_path, _assemble([ihdr, *split, iend]), values)  # IDATs not in one run
    actl = (b"acTL", struct.pack(">II", 1, 0))
    _check_grey(tmp_path, _assemble([ihdr, actl, *chunks[1:]]), values)  # an animated PNG's default image
    assert routes == ["pypng", "pypng"]
    _check_grey(tmp_path, _assemble(chunks), values)
    assert routes[-1] == "pillow"


def test_images_over_pillows_pixel_limit_go_to_pypng_without_a_warning(tmp_path, routes, monkeypatch):
    values = RNG.integers(0, 256, size=(6, 5), dtype=np.uint8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 29)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _check_grey(tmp_path, _grey_file(values), values)
    assert not caught  # Pillow would warn of a decompression bomb
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30)
    _check_grey(tmp_path, _grey_file(values), values)
    assert routes == ["pypng", "pillow"]


def test_a_file_pillow_refuses_goes_to_pypng(tmp_path, routes, monkeypatch):
    values = RNG.integers(0, 256, size=(6, 5), dtype=np.uint8)
    ihdr, *rest = _chunks(_grey_file(values))
    data = _assemble([ihdr, (b"zTXt", b"note\x00\x00" + zlib.compress(bytes(4000))), *rest])
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_CHUNK", 1000)
    with pytest.raises(ValueError, match="Decompressed data too large"):
        Image.open(io.BytesIO(data)).load()
    _check_grey(tmp_path, data, values)
    assert routes == ["pypng"]
