"""PNG images: Pillow decodes every layout it keeps exact, pypng (pure Python, MIT) the others.

Pillow cuts 16-bit colour and 16-bit grey+alpha to their high bytes, so those go to pypng, which
decodes every PNG variant exactly but about 10 times slower. Pillow decodes the rest: 1, 2, 4, 8 and
16-bit grey; 8-bit RGB, grey+alpha and RGBA; 1, 2, 4 and 8-bit palette indices (the palette is
applied here, from pypng's reading of PLTE and tRNS); interlaced or not. tests/dps/io/
test_png_layouts.py checks every layout's values against its source and which decoder ran.

Before either decodes a pixel, the same checks run on every file. pypng reads the header and the
chunks before the image data, so the size limits hold before anything large is allocated; then the
chunks are walked (every CRC checked, IEND required) while the image data is inflated once, in
bounded pieces, keeping nothing: it must inflate to exactly the bytes the header declares (a
decompression bomb stops at the first byte over), end with a valid zlib checksum, and give every
scanline a valid filter type. A file that passes cannot reach the error paths that Pillow's
LOAD_TRUNCATED_IMAGES would turn into zero-filled pixels; one that Pillow still fails on, or opens
in an unexpected mode, goes to pypng, as do animated PNGs and files with an irregular chunk order.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import torch

from .images import image_tensor, missing_library, not_image
from .limits import check_expansion, check_image_size

# (bit depth, colour type) -> (the modes Pillow opens it in, the full scale of Pillow's values),
# for the layouts whose values Pillow keeps exactly. Pillow widens 2- and 4-bit grey to 0..255
# (x85, x17), which divides to the same float32 values as the stored counts over 3 or 15.
_PILLOW_EXACT = {
    (1, 0): (("1",), 1),
    (2, 0): (("L",), 255),
    (4, 0): (("L",), 255),
    (8, 0): (("L",), 255),
    (16, 0): (("I;16", "I;16B", "I"), 65535),  # "I": older Pillow
    (8, 2): (("RGB",), 255),
    (8, 4): (("LA",), 255),
    (8, 6): (("RGBA",), 255),
    (1, 3): (("P",), None),  # palette indices
    (2, 3): (("P",), None),
    (4, 3): (("P",), None),
    (8, 3): (("P",), None),
}
# Adam7's passes: first column, first row, column step, row step.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_APNG_CHUNKS = frozenset((b"acTL", b"fcTL", b"fdAT"))
_PIECE = 1 << 20  # the most inflated bytes held at once while checking the image data


def load_png(name: str, data: bytes) -> torch.Tensor:
    try:
        import png
    except ImportError as e:
        raise missing_library(name, "pypng", e) from e
    reader = png.Reader(bytes=data)
    try:
        reader.preamble()
        plain = _check_before_decoding(name, data, reader)
        decoded = _decode_with_pillow(data, reader) if plain else None
        if decoded is None:
            decoded = _decode_with_pypng(name, reader)
        samples, scale = decoded
        if reader.colormap:
            samples, scale = _apply_palette(name, samples, reader.palette()), 255
    except png.Error as e:  # its message starts with the error's class name
        raise not_image(name, f"{e} (truncated or corrupt file)") from e
    colour = 1 if reader.greyscale else 3
    return image_tensor(name, samples[:, :, :colour], scale)  # drops alpha


def _check_before_decoding(name: str, data: bytes, reader) -> bool:
    """The limits and the structural checks every file passes before a decoder runs. Returns whether
    the chunks are in the plain order Pillow and pypng agree on: one IHDR, first; the IDATs in one
    run; no animation."""
    check_image_size(name, reader.width, reader.height, 4 if reader.colormap else reader.planes)
    starts, expected = _scanlines(reader)
    check_expansion(name, expected, len(data))
    order = {"IHDR": 0, "runs": 0, "apng": False, "first": None, "last": None}

    def image_data():  # walking the chunks checks every CRC and that IEND is there
        for kind, payload in type(reader)(bytes=data).chunks():
            order["first"] = order["first"] or kind
            order["IHDR"] += kind == b"IHDR"
            order["apng"] = order["apng"] or kind in _APNG_CHUNKS
            if kind == b"IDAT":
                order["runs"] += order["last"] != b"IDAT"
                yield payload
            order["last"] = kind

    _check_image_data(name, image_data(), starts, expected)
    return order["first"] == b"IHDR" and order["IHDR"] == 1 and order["runs"] == 1 and not order["apng"]


def _scanlines(reader) -> tuple[np.ndarray, int]:
    """Where each scanline's filter byte sits in the inflated image data, and that data's exact
    size. An interlaced image has a scanline per row of each non-empty Adam7 pass."""
    bits = reader.bitdepth * reader.planes
    passes = _ADAM7 if reader.interlace else ((0, 0, 1, 1),)
    starts, size = [], 0
    for column, row, column_step, row_step in passes:
        columns = -(-(reader.width - column) // column_step)
        rows = -(-(reader.height - row) // row_step)
        if columns > 0 and rows > 0:
            stride = 1 + (columns * bits + 7) // 8
            starts.append(size + stride * np.arange(rows, dtype=np.int64))
            size += stride * rows
    return np.concatenate(starts), size


def _check_image_data(name: str, parts, starts: np.ndarray, expected: int) -> None:
    """Inflate the zlib stream split over `parts` in pieces of at most _PIECE bytes, keeping none,
    and refuse it unless it holds exactly `expected` bytes, ends, and every byte at `starts` (the
    scanlines' filter types) is 0-4. Every part is taken, so the chunk walk behind it completes."""
    inflater = zlib.decompressobj()
    total = 0
    for part in parts:
        pending = part
        while pending and not inflater.eof:
            try:
                piece = inflater.decompress(pending, min(expected + 1 - total, _PIECE))
            except zlib.error as e:
                raise not_image(name, f"corrupt PNG image data ({e})") from e
            if total + len(piece) > expected:
                raise not_image(
                    name, "the PNG holds more image data than its size needs (corrupt file or decompression bomb)"
                )
            first, end = np.searchsorted(starts, (total, total + len(piece)))
            if end > first:
                kind = int(np.frombuffer(piece, np.uint8)[starts[first:end] - total].max())
                if kind > 4:
                    raise not_image(name, f"invalid PNG filter type {kind} (corrupt file)")
            total += len(piece)
            if not piece and len(inflater.unconsumed_tail) == len(pending):
                break  # no progress; the checks below refuse the stream
            pending = inflater.unconsumed_tail
    if total != expected:
        raise not_image(name, f"the PNG image data holds {total} of {expected} bytes (truncated or corrupt file)")
    if not inflater.eof:
        raise not_image(name, "the PNG image data stream does not end (truncated or corrupt file)")


def _decode_with_pillow(data: bytes, reader) -> tuple[np.ndarray, int | None] | None:
    """[H, W, C] samples and their full scale from Pillow, or None where its values would not be the
    file's exactly (see _PILLOW_EXACT) or Pillow cannot decode the file."""
    layout = _PILLOW_EXACT.get((reader.bitdepth, reader.color_type))
    if layout is None:
        return None
    try:
        from PIL import Image
    except ImportError:
        return None
    limit = Image.MAX_IMAGE_PIXELS  # Pillow warns over it, refuses over twice it; ours hold already
    if limit is not None and reader.width * reader.height > limit:
        return None
    modes, scale = layout
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.mode not in modes or image.size != (reader.width, reader.height):
                return None
            image.load()
            samples = np.asarray(image)
    except Exception:  # e.g. a text chunk over Pillow's limits, which pypng skips: pypng decides
        return None
    return (samples[:, :, None] if samples.ndim == 2 else samples), scale


def _decode_with_pypng(name: str, reader) -> tuple[np.ndarray, int]:
    _, _, rows, _ = reader.read()
    return _collect_rows(name, rows, reader), 2**reader.bitdepth - 1


def _collect_rows(name: str, rows, reader) -> np.ndarray:
    height, width, planes = reader.height, reader.width, reader.planes
    samples = np.empty((height, width * planes), np.uint16 if reader.bitdepth > 8 else np.uint8)
    count = 0
    for row in rows:
        if count == height:
            raise not_image(name, "the PNG holds more rows than its height")
        samples[count] = row
        count += 1
    if count != height:
        raise not_image(name, f"the PNG image data holds {count} of {height} rows (truncated or corrupt file)")
    return samples.reshape(height, width, planes)


def _apply_palette(name: str, indices: np.ndarray, palette) -> np.ndarray:
    table = np.asarray(palette, dtype=np.uint8)  # RGB, or RGBA when the file has transparency
    if int(indices.max()) >= len(table):
        raise not_image(name, f"palette index {int(indices.max())} is past the palette's {len(table)} entries")
    return table[indices[:, :, 0]]
