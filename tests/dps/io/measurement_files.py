"""File writers and helpers shared by the tests of comfyui_dps.dps.io.

PNGs and TIFFs that Pillow cannot write (16-bit colour, every PNG filter type, Deflate + predictor
TIFF strips, deliberately corrupt files) come from the small writers below, which follow the PNG and
TIFF 6.0 specifications independently of the libraries the loader uses.
"""

from __future__ import annotations

import io
import pathlib
import struct
import zlib

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save as save_safetensors

from comfyui_dps.dps.io import LoadedArray, load_measurement_file


def chunk(kind: bytes, payload: bytes) -> bytes:
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
    idat = b"".join(chunk(b"IDAT", raw[i : i + step]) for i in range(0, len(raw), step))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + before_idat + idat + chunk(b"IEND", b"")


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
