"""Which format a file is: chosen by its extension, then confirmed by its first bytes.

A mismatch is an error, so a `.png` that is really text or really a TIFF is refused with a message
that says what the file looks like instead.
"""

from __future__ import annotations

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".npy", ".safetensors")

_FORMAT_OF_EXTENSION = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".safetensors": "safetensors"}
_FORMAT_NAMES = {
    "png": "a PNG image",
    "tiff": "a TIFF image",
    "npy": "a NumPy .npy array",
    "safetensors": "a safetensors file",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"
HEAD_BYTES = 16  # enough for every check below


def format_of_name(name: str) -> str:
    """"png", "tiff", "npy" or "safetensors", from the extension (any case)."""
    lower = name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext):
            return _FORMAT_OF_EXTENSION[ext]
    raise ValueError(f"file '{name}' has an unsupported extension; supported: {', '.join(SUPPORTED_EXTENSIONS)}")


def sniff(head: bytes) -> str | None:
    """The format the first bytes show, or None."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head[:4] in _TIFF_SIGNATURES:
        return "tiff"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if len(head) >= 9 and head[8:9] == b"{":  # a little-endian header length, then JSON
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


def check_content(name: str, expected: str, head: bytes) -> None:
    """Refuse a file whose first bytes are not those of the `expected` format."""
    found = sniff(head)
    if found == expected:
        return
    what = _FORMAT_NAMES[found] if found else _describe_other(head)
    if expected in ("png", "tiff"):
        raise ValueError(f"file '{name}' is not a readable image: not a {expected.upper()} file ({what})")
    raise ValueError(f"file '{name}' is not {_FORMAT_NAMES[expected]} ({what})")
