"""Limits that keep a hostile file from taking the machine's memory. Each is checked on what the
file declares (its size, an image header, an array shape) before anything that large is allocated."""

from __future__ import annotations

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_SIDE = 16384
MAX_ELEMENTS = 2**28
# Deflate tops out near 1032:1 and LZW near 1400:1: an image that claims far more pixel bytes than
# that from what it stores is corrupt or a decompression bomb.
MAX_EXPANSION = 4096


def check_elements(name: str, shape) -> int:
    """The number of values of an array of `shape`, refused over MAX_ELEMENTS."""
    count = 1
    for dim in shape:
        if dim < 0:
            raise ValueError(f"file '{name}' declares a negative dimension in shape {tuple(shape)}")
        count *= int(dim)
    if count > MAX_ELEMENTS:
        raise ValueError(f"file '{name}' holds {count} values, over the limit of {MAX_ELEMENTS} (shape {tuple(shape)})")
    return count


def check_image_size(name: str, width: int, height: int, channels: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"file '{name}' is not a readable image: its size is {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"file '{name}' is {width}x{height} pixels; the limit is {MAX_SIDE} on a side")
    if width * height * channels > MAX_ELEMENTS:
        raise ValueError(
            f"file '{name}' has {width}x{height}x{channels} values, over the limit of {MAX_ELEMENTS}"
        )


def check_expansion(name: str, raw_bytes: int, stored_bytes: int) -> None:
    """Refuse an image whose pixels would take over MAX_EXPANSION times the bytes that hold them."""
    if raw_bytes > MAX_EXPANSION * stored_bytes + (1 << 16):
        raise ValueError(
            f"file '{name}' is not a readable image: it claims {raw_bytes} bytes of pixels from "
            f"{stored_bytes} stored bytes (corrupt file or decompression bomb)"
        )
