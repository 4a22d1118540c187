"""The input folder as a sandbox: a file name is resolved inside it, never outside.

A name must be relative; `..`, absolute paths and symlinks that lead out of the folder are refused,
and only regular files are opened (O_NOFOLLOW where the system has it, without blocking on a FIFO).
The checks here are the only ones: the node's validation and the loader both call them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import limits


class MeasurementFileNotFoundError(FileNotFoundError, ValueError):
    """The named file does not exist (a ValueError, and a FileNotFoundError for convenience)."""


def _outside(name: object) -> ValueError:
    return ValueError(f"file: '{name}' is outside the input folder")


def _not_found(name: str) -> MeasurementFileNotFoundError:
    return MeasurementFileNotFoundError(f"file '{name}' was not found in the input folder")


def resolve_root(root: str | os.PathLike) -> Path:
    try:
        resolved = Path(root).resolve(strict=True)
    except (OSError, RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"input folder '{root}' does not exist or cannot be read ({e})") from e
    if not resolved.is_dir():
        raise ValueError(f"input folder '{root}' is not a folder")
    return resolved


def _is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_inside(name: str, root: Path) -> Path:
    """The real path of `name` under the resolved `root`, following symlinks; refuses anything outside."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("file: no file chosen; choose a file in the input folder")
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


def check_regular(name: str, target: Path) -> None:
    """Without opening it: `target` exists and is a regular file (for validation before a run)."""
    try:
        info = target.stat()
    except FileNotFoundError as e:
        raise _not_found(name) from e
    except OSError as e:
        raise ValueError(f"file '{name}' cannot be read: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"file '{name}' is not a regular file")


def open_regular(name: str, target: Path):
    """Open `target` for binary reading, refusing non-regular, empty and oversized files."""
    flags = os.O_RDONLY
    for flag in ("O_BINARY", "O_NOFOLLOW", "O_NONBLOCK"):
        flags |= getattr(os, flag, 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError as e:
        raise _not_found(name) from e
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
    if info.st_size > limits.MAX_FILE_BYTES:
        handle.close()
        raise ValueError(f"file '{name}' is too large ({info.st_size} bytes; the limit is {limits.MAX_FILE_BYTES})")
    return handle


def read_all(name: str, handle) -> bytes:
    # Read what fstat promised plus one byte, so a file that grew since is noticed without asking
    # for a MAX_FILE_BYTES buffer up front.
    cap = limits.MAX_FILE_BYTES
    expected = os.fstat(handle.fileno()).st_size
    data = handle.read(min(expected, cap) + 1)
    if len(data) > expected and len(data) <= cap:
        data += handle.read(cap + 1 - len(data))
    if not data:
        raise ValueError(f"file '{name}' is empty")
    if len(data) > cap:
        raise ValueError(f"file '{name}' is too large (the limit is {cap} bytes)")
    return data


def list_files(root: str | os.PathLike, extensions: tuple[str, ...]) -> list[str]:
    """Sorted names (relative to `root`, "/"-separated) of the regular files with one of `extensions`
    (any case) in `root` and its subfolders. Hidden files and folders (a name starting with "."),
    symlinked folders and anything resolving outside `root` are skipped; a missing `root` gives []."""
    try:
        root_path = resolve_root(root)
    except ValueError:
        return []
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(root_path, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        here = Path(folder)
        for filename in filenames:
            if filename.startswith(".") or not filename.lower().endswith(extensions):
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
