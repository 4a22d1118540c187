"""`load_measurement_file`: one file of the input folder, whatever its format, as a tensor.

The name goes through the sandbox, the extension picks the format, the first bytes must agree, and
the format's reader does the rest. Every problem with a file is a ValueError whose message names it;
no other exception escapes for bad file contents.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import sandbox
from .formats import HEAD_BYTES, SUPPORTED_EXTENSIONS, check_content, format_of_name
from .images import not_image
from .npy import load_npy
from .png_files import load_png
from .safetensors_file import load_safetensors
from .tiff_files import load_tiff

_IMAGE_READERS = {"png": load_png, "tiff": load_tiff}


@dataclass(frozen=True, eq=False)
class LoadedArray:
    """What `load_measurement_file` read.

    tensor: IMAGE [1, H, W, C] float32 for images; the stored array (float or complex) else.
    kind: "image" or "array".
    """

    tensor: torch.Tensor
    kind: str


def find_measurement_file(name: str, root: str | os.PathLike) -> Path:
    """The path of `name` if it is a regular file of a supported format inside `root`; for checks
    before a run (`load_measurement_file` repeats them as it opens the file)."""
    target = sandbox.resolve_inside(name, sandbox.resolve_root(root))
    format_of_name(name)
    sandbox.check_regular(name, target)
    return target


def list_measurement_files(root: str | os.PathLike) -> list[str]:
    """Sorted names (relative to `root`, "/"-separated) of the files `load_measurement_file` may read."""
    return sandbox.list_files(root, SUPPORTED_EXTENSIONS)


def load_measurement_file(name: str, root: str | os.PathLike, key: str | None = None) -> LoadedArray:
    """Read the measurement file `name` (relative to `root`); see the package doc for the formats.

    `key` picks the tensor of a .safetensors file and is ignored for the other formats.
    Raises ValueError (naming the file) for every unreadable, unsafe or unsupported file.
    """
    target = sandbox.resolve_inside(name, sandbox.resolve_root(root))
    fmt = format_of_name(name)
    with sandbox.open_regular(name, target) as handle:
        try:
            if fmt == "safetensors":
                check_content(name, fmt, handle.read(HEAD_BYTES))
                return LoadedArray(load_safetensors(name, target, key or None), "array")
            data = sandbox.read_all(name, handle)
            check_content(name, fmt, data[:HEAD_BYTES])
            if fmt == "npy":
                return LoadedArray(load_npy(name, data), "array")
            return LoadedArray(_read_image(name, data, fmt), "image")
        except ValueError as e:
            if str(e).startswith(("file '", "file: ")):
                raise
            raise ValueError(f"file '{name}' could not be read: {e}") from e
        except Exception as e:  # anything else a reader throws on a hostile file
            raise ValueError(f"file '{name}' could not be read: {type(e).__name__}: {e}") from e


def _read_image(name: str, data: bytes, fmt: str) -> torch.Tensor:
    try:
        return _IMAGE_READERS[fmt](name, data)
    except ValueError as e:
        if str(e).startswith(f"file '{name}'"):
            raise
        raise not_image(name, f"{e} (corrupt or truncated file)") from e
    except Exception as e:  # a decoder's own exception on a hostile file
        raise not_image(name, f"{type(e).__name__}: {e} (corrupt or truncated file)") from e
