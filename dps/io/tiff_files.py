"""TIFF images. tifffile reads the structure of every TIFF without decoding pixels, so the limits and
the checks against truncation apply first; Pillow then decodes every layout that it keeps exactly
(any compression libtiff has), and tifffile the ones above 8 bits per sample with several samples
(16-bit colour, grey with alpha), which Pillow would cut to 8 bits.

tifffile needs the imagecodecs package for LZW, JPEG and more, and inflates Deflate without bound, so
it decodes only uncompressed and Deflate data here, each Deflate strip or tile counted against its
size first. Both libraries skip, with only a warning, a tag whose value lies past the end of the
file (a lost BitsPerSample means 1 bit), so a file whose directory lost any tag is refused.
"""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import torch

from .images import image_tensor, inflates_within, missing_library, not_image
from .limits import check_expansion, check_image_size

_UNCOMPRESSED, _DEFLATE = (1,), (8, 32946)


def load_tiff(name: str, data: bytes) -> torch.Tensor:
    try:
        import tifffile
    except ImportError as e:
        raise missing_library(name, "tifffile", e) from e
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            try:
                page = tif.pages.first
            except IndexError as e:
                raise not_image(name, "the TIFF holds no image (corrupt or truncated file)") from e
            _check_structure(name, tif, page, len(data))
            if page.bitspersample > 8 and page.samplesperpixel > 1:
                return _decode_with_tifffile(name, page, data)
    except tifffile.TiffFileError as e:
        raise not_image(name, f"corrupt TIFF ({e})") from e
    return _decode_with_pillow(name, data, page.bitspersample, page.sampleformat)


def _check_structure(name: str, tif, page, size: int) -> None:
    """Every tag read, the image within the limits, its strips or tiles inside the file and
    plausible for its size: all from what tifffile parsed, before anything is decoded."""
    form = tif.tiff  # classic or BigTIFF: the sizes of the directory's fields, to read its entry count
    tif.filehandle.seek(page.offset)
    (declared,) = struct.unpack(form.tagnoformat, tif.filehandle.read(form.tagnosize))
    if page.offset + form.tagnosize + declared * form.tagsize + form.offsetsize > size:
        raise not_image(name, "the TIFF directory runs past the end of the file (truncated file)")
    if len(page.tags) != declared:
        raise not_image(name, "a TIFF tag's value lies past the end of the file (truncated or corrupt file)")
    width, height, samples, bits = page.imagewidth, page.imagelength, page.samplesperpixel, page.bitspersample
    check_image_size(name, width, height, samples)
    if not 1 <= bits <= 64:
        raise not_image(name, f"invalid TIFF bits per sample {bits}")
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or len(counts) != len(offsets):
        raise not_image(name, "corrupt TIFF: missing strip or tile offsets or byte counts")
    for offset, count in zip(offsets, counts, strict=True):
        if offset <= 0 or count <= 0 or offset + count > size:
            raise not_image(name, "the TIFF image data runs past the end of the file (truncated file)")
    stored = sum(counts)
    raw = (width * samples * bits + 7) // 8 * height
    if page.compression in _UNCOMPRESSED and not page.is_tiled and stored < raw:
        raise not_image(
            name, f"the TIFF holds {stored} bytes of uncompressed image data, its size needs {raw} (truncated or corrupt file)"
        )
    check_expansion(name, raw, stored)


def _decode_with_tifffile(name: str, page, data: bytes) -> torch.Tensor:
    bits = page.bitspersample
    problem = None
    if page.compression not in _UNCOMPRESSED + _DEFLATE:
        problem = f"compression {int(page.compression)} (only none and Deflate)"
    elif page.photometric not in (1, 2) or page.samplesperpixel < (3 if page.photometric == 2 else 2):
        problem = f"photometric {int(page.photometric)} with {page.samplesperpixel} samples per pixel"
    elif page.sampleformat not in (1, 3):
        problem = f"sample format {int(page.sampleformat)} (need unsigned integer or float)"
    if problem:
        raise not_image(
            name,
            f"this {bits}-bit TIFF layout is not supported ({problem}); Pillow would lose precision, so save it "
            "as an uncompressed or Deflate TIFF, a 16-bit PNG or an .npy",
        )
    if page.compression in _DEFLATE:
        segment = _segment_bytes(page)
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            if not inflates_within([memoryview(data)[offset : offset + count]], segment):
                raise not_image(name, "a Deflate strip or tile inflates past its size (corrupt file or decompression bomb)")
    samples = page.asarray()
    if page.axes.startswith("S"):  # planar: one plane per sample
        samples = np.moveaxis(samples, 0, -1)
    colour = samples[:, :, : 3 if page.photometric == 2 else 1]  # the rest are alpha or extra samples
    return image_tensor(name, colour, None if page.sampleformat == 3 else 2**bits - 1)


def _segment_bytes(page) -> int:
    """The decoded size of one strip or tile."""
    per_segment = 1 if page.planarconfig == 2 else page.samplesperpixel
    if page.is_tiled:
        rows, width = page.tilelength, page.tilewidth
    else:
        rows, width = min(page.rowsperstrip, page.imagelength), page.imagewidth
    return rows * math.ceil(width * per_segment * page.bitspersample / 8)


def _decode_with_pillow(name: str, data: bytes, bits: int, sample_format: int) -> torch.Tensor:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow ships with ComfyUI
        raise missing_library(name, "Pillow", e) from e
    try:
        image = Image.open(io.BytesIO(data), formats=["TIFF"])
    except Image.UnidentifiedImageError as e:
        raise not_image(name, "Pillow cannot decode this TIFF variant (layout, compression or sample format)") from e
    with image:
        check_image_size(name, *image.size, len(image.getbands()))
        image.load()
        return _pillow_tensor(name, image, bits, sample_format)


def _pillow_tensor(name: str, image, bits: int, sample_format: int) -> torch.Tensor:
    conversions = {"P": "RGBA" if "transparency" in image.info else "RGB", "PA": "RGBA", "RGBa": "RGBA", "La": "LA", "YCbCr": "RGB"}
    if image.mode in conversions:
        image = image.convert(conversions[image.mode])
    mode, values = image.mode, np.asarray(image)
    if mode == "1":
        return image_tensor(name, values, 1)
    if mode in ("L", "RGB", "LA", "RGBA", "RGBX"):
        return image_tensor(name, values if mode in ("L", "RGB") else values[:, :, : 1 if mode == "LA" else 3], 255)
    if mode.startswith("I;16"):
        return image_tensor(name, values, 65535)
    if mode == "I" and bits == 16 and sample_format == 1 and values.min() >= 0 and values.max() <= 65535:
        return image_tensor(name, values, 65535)
    if mode == "I":
        raise not_image(name, "signed or 32-bit integer images are not supported; save it as 8/16-bit unsigned or 32-bit float")
    if mode == "F":
        return image_tensor(name, values, None)
    raise not_image(name, f"image mode {mode!r} is not supported")

