"""Safe loading of measurements from files in ComfyUI's input folder.

`load_measurement_file(name, root)` reads one file whose name is relative to `root`;
`list_measurement_files(root)` lists the files it can read. Every problem with a file (path
outside `root`, missing, empty, too large, truncated, corrupt, wrong format, pickled, non-finite
values) is reported as a `ValueError` whose message names the file; no other exception type
escapes for bad file contents.

Formats (chosen by extension, then checked against the file's magic bytes; a mismatch is an
error, so a `.png` that is really text or really a TIFF is refused with a clear message):

* ``.png``, ``.tif``, ``.tiff`` -> ``kind="image"``: a float32 tensor in ComfyUI's IMAGE layout
  ``[1, H, W, C]``, scaled to [0, 1] by the file's bit depth (8-bit / 255, 16-bit / 65535,
  1-bit as 0/1). Grey stays grey (``C = 1``), colour is ``C = 3``; nothing is replicated. An
  alpha channel is not part of the tensor: it is dropped from it and returned separately as
  ``alpha`` ([1, H, W], same scaling, *not* inverted as ComfyUI's MASK is) with
  ``has_alpha=True``. Palette images become RGB (RGBA when the palette has transparency).
  32-bit float TIFFs (Pillow mode ``F``) are returned as stored (``C = 1``, not clipped, no
  scaling) but must be finite. 16-bit colour PNGs and TIFFs, which Pillow would silently reduce
  to 8 bits, are decoded here at full precision (PNG: any non-interlaced file; TIFF: striped,
  uncompressed or Deflate, with or without the horizontal predictor); other 16-bit colour
  layouts are refused rather than truncated. Orientation tags, ICC profiles and gamma are
  ignored: the pixel grid and values are returned as stored. Multi-page TIFFs give page 1.
* ``.npy`` -> ``kind="array"``: read with ``allow_pickle=False`` semantics (the header is
  parsed and the dtype checked before any data is read; object arrays are refused as pickled).
* ``.safetensors`` -> ``kind="array"``: read with ``safetensors.safe_open``. The tensor is the
  one named by ``key``, else the only tensor, else the one named ``"measurement"`` or ``"y"``.
  Complex data may be stored (a) in a native complex dtype (C64) where the installed
  safetensors supports it, (b) as a pair of real tensors ``"<key>_real"`` and ``"<key>_imag"``
  of equal shape, which act as one tensor called ``<key>``, or (c) as a real tensor whose last
  dimension has size 2 (real, imaginary) when the file's metadata holds ``{"complex": "true"}``.

Array dtypes: floating (float32 / float64) and complex (complex64 / complex128) data keep their
dtype; narrower floats (float16, bfloat16, float8) become float32, complex32 becomes complex64;
bool and integers of at most 16 bits become float32 (exact) and wider integers float64 (exact up
to 2**53). Every value must be finite.

Limits against memory bombs: files over 512 MiB, images over 16384 pixels on a side and any
tensor over 2**28 elements are refused before being decoded.

No pickle, eval, subprocess, network access or environment variables are used.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy", ".safetensors")

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_SIDE = 16384
MAX_ELEMENTS = 2**28

_FORMAT_OF_EXTENSION = {
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".npy": "npy",
    ".safetensors": "safetensors",
}
_FORMAT_NAMES = {
    "png": "a PNG image",
    "tiff": "a TIFF image",
    "npy": "a NumPy .npy array",
    "safetensors": "a safetensors file",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"
_MAX_PNG_CHUNKS = 1_000_000
_TRUE_WORDS = ("true", "1", "yes")


@dataclass(frozen=True, eq=False)
class LoadedArray:
    """What `load_measurement_file` read.

    tensor: IMAGE [1, H, W, C] float32 for images; the stored array (float or complex) else.
    kind: "image" or "array".
    source_format: "png", "tiff", "npy" or "safetensors".
    bit_depth: bits per sample of the image file (1, 2, 4, 8, 16, 32 or 64); None for arrays.
    key: the safetensors tensor used (for a real/imag pair, the shared name); None otherwise.
    has_alpha: the image had an alpha channel (left out of `tensor`).
    alpha: that channel as [1, H, W] float32 in [0, 1] (1 = opaque), or None.
    """

    tensor: torch.Tensor
    kind: str
    source_format: str
    bit_depth: int | None = None
    key: str | None = None
    has_alpha: bool = False
    alpha: torch.Tensor | None = None


class MeasurementFileNotFoundError(FileNotFoundError, ValueError):
    """The named file does not exist (a ValueError, and a FileNotFoundError for convenience)."""


# ----------------------------------------------------------------------------------- paths


def _outside(name: object) -> ValueError:
    return ValueError(f"file: '{name}' is outside the input folder")


def _resolve_root(root: str | os.PathLike) -> Path:
    try:
        resolved = Path(root).resolve(strict=True)
    except (OSError, RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"input folder '{root}' does not exist or cannot be read ({e})") from e
    if not resolved.is_dir():
        raise ValueError(f"input folder '{root}' is not a folder")
    return resolved


def _is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _resolve_inside(name: str, root: Path) -> Path:
    """The real path of `name` under `root`, following symlinks; refuses anything outside."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("file: no file name given")
    if "\x00" in name:
        raise ValueError(f"file: {name!r} contains a NUL character")
    relative = Path(name)
    if relative.is_absolute() or relative.drive or relative.root:
        raise _outside(name)
    try:
        target = (root / relative).resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as e:  # symlink loops and the like
        raise ValueError(f"file '{name}' cannot be resolved: {e}") from e
    if not _is_within(target, root):
        raise _outside(name)
    if target == root:
        raise ValueError(f"file '{name}' is not a regular file")
    return target


def _extension_format(name: str) -> tuple[str, str]:
    lower = name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext):
            return ext, _FORMAT_OF_EXTENSION[ext]
    raise ValueError(
        f"file '{name}' has an unsupported extension; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
    )


def _open_regular(name: str, target: Path):
    """Open `target` for binary reading, refusing non-regular files without blocking on FIFOs."""
    flags = os.O_RDONLY
    for flag in ("O_BINARY", "O_NOFOLLOW", "O_NONBLOCK"):
        flags |= getattr(os, flag, 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError as e:
        raise MeasurementFileNotFoundError(
            f"file '{name}' was not found in the input folder"
        ) from e
    except OSError as e:
        raise ValueError(f"file '{name}' cannot be opened: {e.strerror or e}") from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"file '{name}' is not a regular file")
        if hasattr(os, "set_blocking"):
            try:
                os.set_blocking(fd, True)
            except OSError:
                pass
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    if info.st_size == 0:
        handle.close()
        raise ValueError(f"file '{name}' is empty")
    if info.st_size > MAX_FILE_BYTES:
        handle.close()
        raise ValueError(
            f"file '{name}' is too large ({info.st_size} bytes; the limit is {MAX_FILE_BYTES})"
        )
    return handle


def _read_all(name: str, handle) -> bytes:
    # Read what fstat promised plus one byte, so a file that grew since is noticed without
    # asking for a MAX_FILE_BYTES buffer up front.
    expected = os.fstat(handle.fileno()).st_size
    data = handle.read(min(expected, MAX_FILE_BYTES) + 1)
    if len(data) > expected and len(data) <= MAX_FILE_BYTES:
        data += handle.read(MAX_FILE_BYTES + 1 - len(data))
    if not data:
        raise ValueError(f"file '{name}' is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file '{name}' is too large (the limit is {MAX_FILE_BYTES} bytes)")
    return data


# --------------------------------------------------------------------------------- sniffing


def _sniff(head: bytes) -> str | None:
    """The format the first bytes show, or None."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head[:4] in _TIFF_SIGNATURES:
        return "tiff"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return None


def _describe_other(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (an .npz?)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (refused)"
    return "not a recognised format"


def _check_content(name: str, expected: str, head: bytes) -> None:
    found = _sniff(head)
    if found == expected:
        return
    what = _FORMAT_NAMES[found] if found else _describe_other(head)
    if expected in ("png", "tiff"):
        kind = "PNG" if expected == "png" else "TIFF"
        raise ValueError(f"file '{name}' is not a readable image: not a {kind} file ({what})")
    raise ValueError(f"file '{name}' is not {_FORMAT_NAMES[expected]} ({what})")


# ----------------------------------------------------------------------------- public API


def load_measurement_file(
    name: str, root: str | os.PathLike, key: str | None = None
) -> LoadedArray:
    """Read the measurement file `name` (relative to `root`). See the module doc for formats.

    `key` picks the tensor of a .safetensors file and is ignored for the other formats.
    Raises ValueError (naming the file) for every unreadable, unsafe or unsupported file.
    """
    root_path = _resolve_root(root)
    target = _resolve_inside(name, root_path)
    _, fmt = _extension_format(name)
    with _open_regular(name, target) as handle:
        try:
            if fmt == "safetensors":
                head = handle.read(16)
                _check_content(name, fmt, head)
                return _load_safetensors(name, target, key or None)
            data = _read_all(name, handle)
            _check_content(name, fmt, data[:16])
            if fmt == "npy":
                return _load_npy(name, data)
            return _load_image(name, data, fmt)
        except ValueError as e:
            if str(e).startswith(("file '", "file: ")):
                raise
            raise ValueError(f"file '{name}' could not be read: {e}") from e
        except Exception as e:  # anything else a decoder throws on a hostile file
            raise ValueError(f"file '{name}' could not be read: {type(e).__name__}: {e}") from e


def list_measurement_files(root: str | os.PathLike) -> list[str]:
    """Sorted names (relative to `root`, "/"-separated) of the files `load_measurement_file`
    may read: supported extensions, in `root` and its subfolders. Hidden files and folders
    (a name starting with "."), symlinked folders and anything resolving outside `root` are
    skipped. A missing `root` gives an empty list."""
    try:
        root_path = _resolve_root(root)
    except ValueError:
        return []
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(root_path, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        here = Path(folder)
        for filename in filenames:
            if filename.startswith("."):
                continue
            if not filename.lower().endswith(SUPPORTED_EXTENSIONS):
                continue
            path = here / filename
            try:
                real = path.resolve(strict=True)
                if not _is_within(real, root_path) or not real.is_file():
                    continue
            except (OSError, RuntimeError, ValueError):
                continue
            found.append(path.relative_to(root_path).as_posix())
    return sorted(found)


# ----------------------------------------------------------------------------- helpers


def _check_elements(name: str, shape) -> int:
    count = 1
    for dim in shape:
        if dim < 0:
            raise ValueError(f"file '{name}' declares a negative dimension in shape {tuple(shape)}")
        count *= int(dim)
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"file '{name}' holds {count} values, over the limit of {MAX_ELEMENTS} "
            f"(shape {tuple(shape)})"
        )
    return count


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ValueError(
                f"file '{name}' contains {bad} non-finite value(s) (NaN or infinity); "
                "measurements must be finite"
            )


def _canonical_tensor(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Apply the array dtype policy (module doc) and the finiteness check."""
    dtype = tensor.dtype
    if dtype.is_complex:
        if dtype not in (torch.complex64, torch.complex128):
            tensor = tensor.to(torch.complex64)
    elif dtype.is_floating_point:
        if dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float32)
    elif dtype == torch.bool or tensor.element_size() <= 2:
        tensor = tensor.to(torch.float32)
    else:
        tensor = tensor.to(torch.float64)
    _check_finite(name, tensor)
    return tensor.contiguous()


# --------------------------------------------------------------------------------- .npy


def _load_npy(name: str, data: bytes) -> LoadedArray:
    fmt = np.lib.format
    stream = io.BytesIO(data)
    try:
        version = fmt.read_magic(stream)
    except Exception as e:
        raise ValueError(f"file '{name}' is not a valid .npy file: {e}") from e
    try:
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream, max_header_size=10000)
        else:
            raise ValueError(f".npy format version {version} is not supported")
    except Exception as e:
        text = str(e)
        if "allow_pickle" in text or "pickle" in text.lower():
            raise ValueError(f"file '{name}': pickled .npy files are refused ({text})") from e
        raise ValueError(f"file '{name}' has a corrupt .npy header: {text}") from e
    if dtype.hasobject:
        raise ValueError(
            f"file '{name}': pickled .npy files are refused (object dtype; "
            "save a plain numeric array instead)"
        )
    if dtype.names is not None or dtype.subdtype is not None:
        raise ValueError(f"file '{name}': structured .npy arrays are not supported ({dtype})")
    if dtype.kind not in "biufc":
        raise ValueError(f"file '{name}': .npy dtype {dtype} is not a number type")
    count = _check_elements(name, shape)
    if count == 0:
        raise ValueError(f"file '{name}' holds an empty array (shape {tuple(shape)})")
    offset = stream.tell()
    needed = count * dtype.itemsize
    have = len(data) - offset
    if have < needed:
        raise ValueError(
            f"file '{name}' is truncated: its header promises {needed} data bytes, it holds {have}"
        )
    if have > needed:
        raise ValueError(f"file '{name}' has {have - needed} unexpected bytes after the array")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    array = array.reshape(shape, order="F" if fortran else "C")
    if dtype.kind == "c":
        target = np.complex64 if dtype.itemsize <= 8 else np.complex128
    elif dtype.kind == "f":
        target = np.float64 if dtype.itemsize >= 8 else np.float32
    elif dtype.itemsize <= 2:
        target = np.float32
    else:
        target = np.float64
    array = np.array(array, dtype=target, order="C", copy=True)
    tensor = torch.from_numpy(array)
    _check_finite(name, tensor)
    return LoadedArray(tensor=tensor, kind="array", source_format="npy")


# ------------------------------------------------------------------------- .safetensors


def _load_safetensors(name: str, path: Path, key: str | None) -> LoadedArray:
    try:
        from safetensors import safe_open
    except ImportError as e:  # pragma: no cover - safetensors is a requirement
        raise ValueError(f"file '{name}': the safetensors package is not installed") from e
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as e:
        raise ValueError(f"file '{name}' is not a valid safetensors file: {e}") from e
    with handle as f:
        names = list(f.keys())
        metadata = f.metadata() or {}
        if not names:
            raise ValueError(f"file '{name}' holds no tensors")
        chosen, parts = _choose_tensor(name, names, key)

        def get(part: str) -> torch.Tensor:
            _check_elements(name, f.get_slice(part).get_shape())
            return f.get_tensor(part)

        if len(parts) == 2:
            real, imag = (get(p) for p in parts)
            if real.shape != imag.shape:
                raise ValueError(
                    f"file '{name}': '{parts[0]}' {tuple(real.shape)} and '{parts[1]}' "
                    f"{tuple(imag.shape)} must have the same shape"
                )
            if real.is_complex() or imag.is_complex():
                raise ValueError(f"file '{name}': '{parts[0]}' and '{parts[1]}' must be real")
            real, imag = _canonical_tensor(name, real), _canonical_tensor(name, imag)
            both = torch.promote_types(real.dtype, imag.dtype)
            tensor = torch.complex(real.to(both), imag.to(both))
        else:
            tensor = _canonical_tensor(name, get(parts[0]))
            if str(metadata.get("complex", "")).strip().lower() in _TRUE_WORDS:
                if tensor.is_complex():
                    pass
                elif tensor.dim() == 0 or tensor.shape[-1] != 2:
                    raise ValueError(
                        f"file '{name}': metadata says complex, so tensor '{chosen}' needs a "
                        f"last dimension of size 2 (real, imaginary); it has shape "
                        f"{tuple(tensor.shape)}"
                    )
                else:
                    tensor = torch.view_as_complex(tensor.contiguous()).clone()
    if tensor.numel() == 0:
        raise ValueError(f"file '{name}': tensor '{chosen}' is empty (shape {tuple(tensor.shape)})")
    return LoadedArray(tensor=tensor, kind="array", source_format="safetensors", key=chosen)


def _choose_tensor(name: str, names: list[str], key: str | None) -> tuple[str, tuple[str, ...]]:
    """(logical name, stored tensor names) of the tensor to load."""
    present = set(names)
    if key is not None:
        if key in present:
            return key, (key,)
        if f"{key}_real" in present and f"{key}_imag" in present:
            return key, (f"{key}_real", f"{key}_imag")
        raise ValueError(
            f"file '{name}' has no tensor '{key}' (nor '{key}_real'/'{key}_imag'); "
            f"it holds: {_list_names(names)}"
        )
    logical: dict[str, tuple[str, ...]] = {}
    paired: set[str] = set()
    for n in names:
        if n.endswith("_real"):
            base = n[: -len("_real")]
            if base and f"{base}_imag" in present and base not in present:
                logical[base] = (n, f"{base}_imag")
                paired.update(logical[base])
    for n in names:
        if n not in paired:
            logical[n] = (n,)
    if len(logical) == 1:
        return next(iter(logical.items()))
    for preferred in ("measurement", "y"):
        if preferred in logical:
            return preferred, logical[preferred]
    raise ValueError(
        f"file '{name}' holds several tensors ({_list_names(sorted(logical))}); "
        "name the one to use with the key input, or call it 'measurement' or 'y'"
    )


def _list_names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# ------------------------------------------------------------------------------- images


def _not_image(name: str, why: str) -> ValueError:
    return ValueError(f"file '{name}' is not a readable image: {why}")


def _check_image_size(name: str, width: int, height: int, channels: int) -> None:
    if width < 1 or height < 1:
        raise _not_image(name, f"its size is {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(
            f"file '{name}' is {width}x{height} pixels; the limit is {MAX_SIDE} on a side"
        )
    if width * height * channels > MAX_ELEMENTS:
        raise ValueError(
            f"file '{name}' has {width}x{height}x{channels} values, over the limit of "
            f"{MAX_ELEMENTS}"
        )


def _load_image(name: str, data: bytes, fmt: str) -> LoadedArray:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow ships with ComfyUI
        raise ValueError(f"file '{name}': Pillow is needed to read images") from e
    png_info = None
    if fmt == "png":
        png_info = _png_structure(name, data)
        width, height, depth, colour, interlace = png_info[:5]
        _check_image_size(name, width, height, {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}[colour])
        if depth == 16 and colour in (2, 4, 6):
            if interlace:
                raise _not_image(
                    name,
                    "interlaced 16-bit colour PNGs are not supported; save it without interlacing",
                )
            samples = _decode_png16_colour(name, png_info)
            return _image_result(samples, fmt, 16, name)
        _inflate_idat(name, png_info[5], _png_raw_size(*png_info[:5]), keep=False)
    else:
        _tiff_directory_check(name, data)
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"] if fmt == "png" else ["TIFF"])
    except Image.UnidentifiedImageError as e:
        raise _not_image(
            name,
            f"Pillow cannot decode this {fmt.upper()} variant (layout, compression or "
            "sample format)",
        ) from e
    except Exception as e:
        raise _not_image(name, f"{type(e).__name__}: {e}") from e
    with image:
        width, height = image.size
        _check_image_size(name, width, height, len(image.getbands()))
        tiff_bits = None
        if fmt == "tiff":
            tiff_bits = _tiff_layout_checks(name, image, len(data))
            if image.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "LA", "L", "P") and (
                max(tiff_bits) > 8
            ):
                samples = _read_tiff16_colour(name, image, data)
                return _image_result(samples, fmt, 16, name)
        try:
            image.load()
        except Exception as e:
            raise _not_image(name, f"{type(e).__name__}: {e}") from e
        return _pillow_result(name, image, fmt, png_info, tiff_bits)


def _image_result(
    samples: tuple[np.ndarray, np.ndarray | None], fmt: str, bit_depth: int, name: str
) -> LoadedArray:
    """Build the LoadedArray from colour/grey samples [H, W, C] and optional alpha [H, W],
    both already float32 (scaled)."""
    colour, alpha = samples
    tensor = torch.from_numpy(np.ascontiguousarray(colour, dtype=np.float32)).unsqueeze(0)
    _check_finite(name, tensor)
    alpha_tensor = None
    if alpha is not None:
        alpha_tensor = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32)).unsqueeze(0)
    return LoadedArray(
        tensor=tensor,
        kind="image",
        source_format=fmt,
        bit_depth=bit_depth,
        has_alpha=alpha is not None,
        alpha=alpha_tensor,
    )


def _split_alpha(
    values: np.ndarray, scale: float, has_alpha: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    values = values.astype(np.float32)
    if scale != 1.0:
        values /= np.float32(scale)
    if values.ndim == 2:
        values = values[:, :, None]
    if has_alpha:
        return values[:, :, :-1], values[:, :, -1]
    return values, None


def _pillow_result(name, image, fmt, png_info, tiff_bits) -> LoadedArray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    elif mode in ("PA", "RGBa"):
        image, mode = image.convert("RGBA"), "RGBA"
    elif mode == "La":
        image, mode = image.convert("LA"), "LA"
    elif mode == "YCbCr":
        image, mode = image.convert("RGB"), "RGB"
    values = np.asarray(image)
    if mode == "1":
        return _image_result(_split_alpha(values, 1.0, False), fmt, 1, name)
    depth = 8
    if png_info and png_info[3] in (0, 4) and png_info[2] < 8:
        depth = png_info[2]  # Pillow widens 2- and 4-bit grey to 0..255 exactly
    if mode in ("L", "RGB"):
        return _image_result(_split_alpha(values, 255.0, False), fmt, depth, name)
    if mode in ("LA", "RGBA"):
        return _image_result(_split_alpha(values, 255.0, True), fmt, depth, name)
    if mode == "RGBX":
        return _image_result(_split_alpha(values[:, :, :3], 255.0, False), fmt, 8, name)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _image_result(_split_alpha(values, 65535.0, False), fmt, 16, name)
    if mode == "I":
        declared = png_info[2] if png_info else (max(tiff_bits) if tiff_bits else None)
        signed = fmt == "tiff" and 2 in _tag_tuple(image, 339, (1,))
        if declared == 16 and not signed and values.min() >= 0 and values.max() <= 65535:
            return _image_result(_split_alpha(values, 65535.0, False), fmt, 16, name)
        raise _not_image(
            name,
            "signed or 32-bit integer images are not supported; save it as 8/16-bit "
            "unsigned or 32-bit float",
        )
    if mode == "F":
        depth = max(tiff_bits) if tiff_bits else 32
        return _image_result(_split_alpha(values, 1.0, False), fmt, depth, name)
    raise _not_image(name, f"image mode {mode!r} is not supported")


# ---------------------------------------------------------------------------------- PNG


def _png_structure(name: str, data: bytes):
    """Walk the chunks (lengths, CRCs, IHDR first, IEND present): a truncated or corrupt PNG
    is refused here whatever Pillow's LOAD_TRUNCATED_IMAGES says.
    Returns (width, height, depth, colour type, interlace, [IDAT payloads])."""
    view = memoryview(data)
    size = len(data)
    pos = len(_PNG_SIGNATURE)
    ihdr = None
    idat: list[memoryview] = []
    for index in range(_MAX_PNG_CHUNKS):
        if pos + 12 > size:
            raise _not_image(name, "the PNG ends before its IEND chunk (truncated file)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise _not_image(name, f"corrupt PNG chunk header at byte {pos}")
        end = pos + 12 + length
        if end > size:
            raise _not_image(name, "the PNG ends inside a chunk (truncated file)")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(view[pos + 4 : pos + 8 + length]) != crc:
            raise _not_image(name, f"CRC mismatch in PNG chunk {kind.decode('latin-1')!r}")
        payload = view[pos + 8 : pos + 8 + length]
        if index == 0 and kind != b"IHDR":
            raise _not_image(name, "the PNG does not start with an IHDR chunk")
        if kind == b"IHDR":
            if index != 0 or length != 13:
                raise _not_image(name, "bad PNG IHDR chunk")
            ihdr = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            break
        pos = end
    else:
        raise _not_image(name, f"the PNG has more than {_MAX_PNG_CHUNKS} chunks")
    width, height, depth, colour, compression, filtering, interlace = ihdr
    allowed = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
    if depth not in allowed.get(colour, ()):
        raise _not_image(name, f"invalid PNG colour type {colour} with bit depth {depth}")
    if compression or filtering or interlace not in (0, 1):
        raise _not_image(name, "invalid PNG compression, filter or interlace method")
    if not idat:
        raise _not_image(name, "the PNG has no image data (IDAT)")
    return width, height, depth, colour, interlace, idat


def _png_raw_size(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of filtered scanlines the IDAT stream must inflate to."""
    bits = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] * depth

    def size(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0

    if not interlace:
        return size(width, height)
    adam7 = (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    )
    total = 0
    for x0, y0, dx, dy in adam7:
        total += size((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
    return total


def _inflate_idat(name: str, idat, expected: int, keep: bool) -> bytes:
    """Inflate the IDAT stream, insisting on exactly `expected` bytes (a short stream means a
    truncated image, which Pillow may zero-fill when LOAD_TRUNCATED_IMAGES is set). With
    keep=False the output is only counted, in bounded pieces."""
    inflater = zlib.decompressobj()
    kept = bytearray()
    got = 0
    try:
        for part in idat:
            pending = part
            while pending:
                room = expected + 1 - got
                piece = inflater.decompress(pending, room if keep else min(room, 1 << 20))
                got += len(piece)
                if keep:
                    kept += piece
                if got > expected:
                    raise _not_image(name, "the PNG holds more image data than its size needs")
                pending = inflater.unconsumed_tail
                if not piece and pending:
                    break
    except zlib.error as e:
        raise _not_image(name, f"corrupt PNG image data: {e}") from e
    if got != expected:
        raise _not_image(
            name,
            f"the PNG image data inflates to {got} bytes, expected {expected} "
            "(truncated or corrupt file)",
        )
    return bytes(kept)


def _decode_png16_colour(name: str, png_info) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a non-interlaced 16-bit RGB / grey+alpha / RGBA PNG exactly (Pillow would keep
    only the high byte of each sample)."""
    width, height, _, colour, _, idat = png_info
    channels = {2: 3, 4: 2, 6: 4}[colour]
    bpp = 2 * channels
    stride = width * bpp
    expected = height * (stride + 1)
    raw = _inflate_idat(name, idat, expected, keep=True)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    filters = rows[:, 0]
    if int(filters.max()) > 4:
        raise _not_image(name, f"invalid PNG filter type {int(filters.max())}")
    filtered = rows[:, 1:].reshape(height, width, bpp)
    recon = _png_unfilter(filtered, filters)
    samples = recon.reshape(height, width * bpp).view(">u2").reshape(height, width, channels)
    return _split_alpha(samples, 65535.0, colour in (4, 6))


def _png_unfilter(filtered: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Undo PNG row filters on [H, W, bytes-per-pixel] uint8 data."""
    height, width, bpp = filtered.shape
    out = np.zeros((height + 1, width + 1, bpp), dtype=np.uint8)  # zero row 0 and column 0
    if int(filters.max()) <= 2:
        # None / Sub / Up only: row by row, each row vectorised.
        for r in range(height):
            kind = filters[r]
            if kind == 0:
                out[r + 1, 1:] = filtered[r]
            elif kind == 1:
                out[r + 1, 1:] = np.cumsum(filtered[r], axis=0, dtype=np.uint8)
            else:
                out[r + 1, 1:] = filtered[r] + out[r, 1:]
        return out[1:, 1:]
    # Average and Paeth depend on the left, upper and upper-left bytes: sweep anti-diagonals
    # (all pixels with row + column = k at once); the padding supplies PNG's zero borders.
    kinds = filters.astype(np.int16)
    for k in range(height + width - 1):
        r = np.arange(max(0, k - width + 1), min(height - 1, k) + 1)
        c = k - r
        a = out[r + 1, c].astype(np.int16)
        b = out[r, c + 1].astype(np.int16)
        ul = out[r, c].astype(np.int16)
        t = kinds[r][:, None]
        pa = np.abs(b - ul)
        pb = np.abs(a - ul)
        pc = np.abs(a + b - 2 * ul)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, ul))
        pred = np.where(
            t == 1,
            a,
            np.where(t == 2, b, np.where(t == 3, (a + b) >> 1, np.where(t == 4, paeth, 0))),
        )
        out[r + 1, c + 1] = ((filtered[r, c].astype(np.int16) + pred) & 255).astype(np.uint8)
    return out[1:, 1:]


# --------------------------------------------------------------------------------- TIFF


_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


def _tiff_directory_check(name: str, data: bytes) -> None:
    """The first image directory and every value it points to must lie inside the file. Pillow
    only warns about (and then skips) tags it cannot read, which could silently change how a
    truncated file is decoded (a lost BitsPerSample defaults to 1)."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    size = len(data)
    try:
        if big:
            (ifd,) = struct.unpack_from(order + "Q", data, 8)
            (count,) = struct.unpack_from(order + "Q", data, ifd)
            head, entry, inline, tail = 8, 20, 8, 8
        else:
            (ifd,) = struct.unpack_from(order + "I", data, 4)
            (count,) = struct.unpack_from(order + "H", data, ifd)
            head, entry, inline, tail = 2, 12, 4, 4
    except struct.error as e:
        raise _not_image(name, "the TIFF header or directory is cut short (truncated file)") from e
    if ifd < 8 or ifd + head + count * entry + tail > size:
        raise _not_image(name, "the TIFF directory runs past the end of the file (truncated file)")
    for i in range(count):
        at = ifd + head + i * entry
        if big:
            _, kind, number, where = struct.unpack_from(order + "HHQQ", data, at)
        else:
            _, kind, number, where = struct.unpack_from(order + "HHII", data, at)
        length = _TIFF_TYPE_SIZES.get(kind, 0) * number
        if length > inline and where + length > size:
            raise _not_image(
                name, "a TIFF tag's value lies past the end of the file (truncated file)"
            )


def _tag_tuple(image, tag: int, default):
    value = image.tag_v2.get(tag, default)
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,)


def _tiff_layout_checks(name: str, image, size: int) -> tuple[int, ...]:
    """Bits per sample, after checking the strips or tiles: none may point past the end of
    the file (a truncated file is refused whatever Pillow's LOAD_TRUNCATED_IMAGES says),
    uncompressed data must be complete, and compressed data may not claim an implausible
    ratio (a decompression bomb: Deflate tops out near 1032:1, LZW near 1400:1)."""
    bits = tuple(int(b) for b in _tag_tuple(image, 258, (1,)))
    if not bits or min(bits) < 1 or max(bits) > 64:
        raise _not_image(name, f"invalid TIFF bits per sample {bits}")
    total = 0
    found = False
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        if offsets_tag not in image.tag_v2:
            continue
        found = True
        offsets = _tag_tuple(image, offsets_tag, ())
        counts = _tag_tuple(image, counts_tag, ())
        if len(counts) < len(offsets):
            raise _not_image(name, "corrupt TIFF: missing strip or tile byte counts")
        for offset, count in zip(offsets, counts, strict=False):
            offset, count = int(offset), int(count)
            if offset < 0 or count < 0 or offset + count > size:
                raise _not_image(
                    name, "the TIFF image data runs past the end of the file (truncated file)"
                )
            total += count
    if not found:
        raise _not_image(name, "corrupt TIFF: no strip or tile offsets")
    width, height = image.size
    spp = int(_tag_tuple(image, 277, (len(bits),))[0])
    per_pixel = sum(bits) if len(bits) == spp else bits[0] * spp
    raw = (width * per_pixel + 7) // 8 * height
    compression = int(_tag_tuple(image, 259, (1,))[0])
    if compression == 1 and 322 not in image.tag_v2 and total < raw:
        raise _not_image(
            name,
            f"the TIFF holds {total} bytes of uncompressed image data, its size needs "
            f"{raw} (truncated or corrupt file)",
        )
    if raw > 4096 * total + (1 << 16):
        raise _not_image(
            name,
            f"the TIFF claims {raw} bytes of image data from {total} compressed bytes "
            "(corrupt file or decompression bomb)",
        )
    return bits


def _read_tiff16_colour(name: str, image, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a striped, chunky, uncompressed or Deflate 16-bit RGB(A) TIFF exactly."""
    width, height = image.size

    def tag(number: int, default: tuple) -> tuple:
        return _tag_tuple(image, number, default)

    bits = tag(258, (1,))
    spp = int(tag(277, (1,))[0])
    photometric = int(tag(262, (-1,))[0])
    compression = int(tag(259, (1,))[0])
    predictor = int(tag(317, (1,))[0])
    planar = int(tag(284, (1,))[0])
    formats = tag(339, (1,))
    unsupported = None
    if photometric != 2 or spp not in (3, 4):
        unsupported = (
            f"photometric {photometric} with {spp} samples per pixel; above 8 bits, colour "
            "must be RGB or RGBA"
        )
    elif any(int(b) != 16 for b in bits) or any(int(f) != 1 for f in formats):
        unsupported = f"bits per sample {bits} / sample format {formats} (need unsigned 16-bit)"
    elif planar != 1:
        unsupported = "planar (separate-plane) layout"
    elif 322 in image.tag_v2 or 273 not in image.tag_v2:
        unsupported = "tiled layout"
    elif compression not in (1, 8, 32946):
        unsupported = f"compression {compression} (only none and Deflate)"
    elif predictor not in (1, 2):
        unsupported = f"predictor {predictor}"
    if unsupported:
        raise _not_image(
            name,
            f"this {max(int(b) for b in bits)}-bit TIFF layout is not supported ({unsupported}); "
            "Pillow would lose precision, so save it as an uncompressed or Deflate TIFF, a "
            "16-bit PNG or an .npy",
        )
    rows_per_strip = max(1, min(int(tag(278, (height,))[0]), height))
    offsets = tag(273, ())
    counts = tag(279, ())
    strips = math.ceil(height / rows_per_strip)
    if len(offsets) < strips or len(counts) < strips:
        raise _not_image(name, "corrupt TIFF: too few strips for the image height")
    row_bytes = width * spp * 2
    raw = bytearray()
    view = memoryview(data)
    for i in range(strips):
        need = min(rows_per_strip, height - i * rows_per_strip) * row_bytes
        chunk = view[int(offsets[i]) : int(offsets[i]) + int(counts[i])]
        if compression == 1:
            piece = bytes(chunk[:need])
        else:
            try:
                piece = zlib.decompressobj().decompress(chunk, need)
            except zlib.error as e:
                raise _not_image(name, f"corrupt Deflate data in TIFF strip {i}: {e}") from e
        if len(piece) < need:
            raise _not_image(name, f"TIFF strip {i} is short (truncated or corrupt file)")
        raw += piece
    order = "<" if data[:2] == b"II" else ">"
    samples = np.frombuffer(bytes(raw), dtype=order + "u2").reshape(height, width, spp)
    if predictor == 2:
        samples = np.cumsum(samples, axis=1, dtype=np.uint16)
    extra = tag(338, (0,))
    has_alpha = spp == 4 and int(extra[0]) in (1, 2)
    if spp == 4 and not has_alpha:
        samples = samples[:, :, :3]
    return _split_alpha(samples, 65535.0, has_alpha)


__all__ = [
    "MAX_ELEMENTS",
    "MAX_FILE_BYTES",
    "MAX_SIDE",
    "SUPPORTED_EXTENSIONS",
    "LoadedArray",
    "MeasurementFileNotFoundError",
    "list_measurement_files",
    "load_measurement_file",
]
