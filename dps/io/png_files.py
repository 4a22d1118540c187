"""PNG images, decoded by pypng (pure Python, every PNG variant: 1-16 bits, grey, colour, palette,
alpha, interlaced), which keeps 16-bit colour that Pillow would cut to 8 bits.

pypng reads the header and the chunks before the image data on their own, so the size limits are
checked before any pixel is decoded. It checks every chunk's CRC and needs IEND, so a truncated or
corrupt file is refused whatever Pillow's LOAD_TRUNCATED_IMAGES says. It inflates each IDAT chunk
without bound, so the stream is first counted against the image's size (a decompression bomb stops
there).
"""

from __future__ import annotations

import numpy as np
import torch

from .images import image_tensor, inflates_within, missing_library, not_image
from .limits import check_expansion, check_image_size


def load_png(name: str, data: bytes) -> torch.Tensor:
    try:
        import png
    except ImportError as e:
        raise missing_library(name, "pypng", e) from e
    reader = png.Reader(bytes=data)
    try:
        reader.preamble()
        _check_before_decoding(name, data, reader)
        _, _, rows, _ = reader.read()
        samples = _collect_rows(name, rows, reader)
        if reader.colormap:
            samples = _apply_palette(name, samples, reader.palette())
    except png.Error as e:  # its message starts with the error's class name
        raise not_image(name, f"{e} (truncated or corrupt file)") from e
    colour = 1 if reader.greyscale else 3
    scale = 255 if reader.colormap else 2**reader.bitdepth - 1
    return image_tensor(name, samples[:, :, :colour], scale)  # drops alpha


def _check_before_decoding(name: str, data: bytes, reader) -> None:
    width, height = reader.width, reader.height
    check_image_size(name, width, height, 4 if reader.colormap else reader.planes)
    raw = height * (reader.row_bytes + 1)  # filtered scanlines: a filter byte per row
    check_expansion(name, raw, len(data))
    # Walking the chunks checks every CRC and that IEND is there. Adam7 adds at most about 4 bytes a
    # row to `raw` (a filter byte and a partial byte per pass), hence the bound's slack; a stream too
    # short for the image fails in the decoder.
    idat = (payload for kind, payload in type(reader)(bytes=data).chunks() if kind == b"IDAT")
    if not inflates_within(idat, height * (reader.row_bytes + 5) + 16):
        raise not_image(name, "the PNG holds more image data than its size needs (corrupt file or decompression bomb)")


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
