"""load_measurement_file across formats: valid files of every kind load, every truncation is
refused, and hostile bytes (random, truncated, mutated, spliced) give only a ValueError naming the
file. Also: the package keeps away from ComfyUI, pickle and the other things shipped code must not use.
"""

from __future__ import annotations

import ast
import io
import pathlib
import struct
import zlib

import numpy as np
import png
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from measurement_files import load, npy_bytes, pattern16, pillow_bytes, png_bytes, safetensors_bytes, tiff_bytes
from PIL import Image

from comfyui_dps.dps import io as dio
from comfyui_dps.dps.io import LoadedArray, load_measurement_file

RNG = np.random.default_rng(1234)


def _pypng_bytes(values: np.ndarray, **options) -> bytes:
    height, width, channels = values.shape
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=channels == 1, alpha=channels in (2, 4), **options).write(
        buffer, values.reshape(height, -1)
    )
    return buffer.getvalue()


def _palette_png(indices: np.ndarray) -> bytes:
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    return pillow_bytes(image, "PNG", transparency=1)


def _valid_samples() -> dict[str, list[bytes]]:
    grey = RNG.integers(0, 256, size=(5, 6), dtype=np.uint8)
    rgba = RNG.integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    g16 = RNG.integers(0, 65536, size=(4, 5), dtype=np.uint16)
    return {
        ".png": [
            pillow_bytes(Image.fromarray(grey), "PNG"),
            pillow_bytes(Image.fromarray(rgba, "RGBA"), "PNG"),
            pillow_bytes(Image.fromarray(g16), "PNG"),
            png_bytes(pattern16(5, 6, 3), 2, 16, filters=[0, 1, 2, 3, 4]),
            png_bytes(pattern16(5, 6, 2), 4, 16, filters=[4]),
            _pypng_bytes(pattern16(6, 5, 3), bitdepth=16, interlace=True),
            _pypng_bytes(rgba, bitdepth=8, interlace=True),
            _palette_png(grey % 4),
        ],
        ".tif": [
            pillow_bytes(Image.fromarray(grey), "TIFF"),
            pillow_bytes(Image.fromarray(rgba, "RGBA"), "TIFF", compression="tiff_lzw"),
            pillow_bytes(Image.fromarray(g16), "TIFF", compression="tiff_adobe_deflate"),
            pillow_bytes(Image.fromarray(grey.astype(np.float32), "F"), "TIFF"),
            tiff_bytes(pattern16(5, 6, 3), compression=8, predictor=2, rows_per_strip=2),
            tiff_bytes(pattern16(5, 6, 4), extra=2, order=">"),
        ],
        ".npy": [
            npy_bytes(RNG.standard_normal((3, 4)).astype(np.float32)),
            npy_bytes((RNG.standard_normal(5) + 1j).astype(np.complex128)),
            npy_bytes(np.arange(6, dtype=">i2").reshape(2, 3)),
        ],
        ".safetensors": [
            safetensors_bytes({"y": torch.randn(3, 4)}),
            safetensors_bytes({"k_real": torch.randn(3), "k_imag": torch.randn(3)}),
            safetensors_bytes({"y": torch.randn(2, 2, 2)}, metadata={"complex": "true"}),
            safetensors_bytes({"y": torch.randn(4, dtype=torch.complex64), "z": torch.ones(1)}),
        ],
    }


VALID = _valid_samples()


@pytest.mark.parametrize("ext", list(VALID))
def test_valid_samples_load(tmp_path, ext):
    for i, data in enumerate(VALID[ext]):
        got = load(tmp_path, f"ok{i}{ext}", data)
        assert torch.isfinite(got.tensor).all()
        if ext in (".png", ".tif"):
            assert got.kind == "image" and got.tensor.dim() == 4 and got.tensor.shape[3] in (1, 3)
        else:
            assert got.kind == "array" and got.tensor.dim() >= 1


@pytest.mark.parametrize("ext", list(VALID))
def test_every_truncation_is_refused(tmp_path, ext):
    for data in VALID[ext]:
        # Every cut in the headers, then every fourth byte and the last few (cut 0, the empty
        # file, has its own test).
        cuts = (
            set(range(1, 48)) | set(range(48, len(data), 4)) | set(range(len(data) - 6, len(data)))
        )
        for cut in sorted(c for c in cuts if 0 < c < len(data)):
            with pytest.raises(ValueError, match=rf"^file 'cut{ext}'"):
                load(tmp_path, f"cut{ext}", data[:cut])


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC so that mutations reach past the CRC check."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, pos)
        end = pos + 12 + length
        if end > len(out):
            break
        crc = zlib.crc32(bytes(out[pos + 4 : pos + 8 + length])) & 0xFFFFFFFF
        struct.pack_into(">I", out, pos + 8 + length, crc)
        pos = end
    return bytes(out)


@st.composite
def hostile_file(draw, ext: str) -> bytes:
    base = draw(st.sampled_from(VALID[ext]))
    how = draw(st.sampled_from(["random", "prefixed", "truncated", "mutated", "spliced"]))
    if how == "random":
        return draw(st.binary(min_size=1, max_size=3000))
    if how == "prefixed":
        return base[: draw(st.integers(1, 24))] + draw(st.binary(max_size=2000))
    if how == "truncated":
        return base[: draw(st.integers(1, len(base) - 1))]
    if how == "spliced":
        i = draw(st.integers(0, len(base)))
        j = draw(st.integers(i, len(base)))
        return base[:i] + draw(st.binary(max_size=64)) + base[j:] or b"\0"
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if ext == ".png" and draw(st.booleans()):
        return _fix_png_crcs(bytes(data))
    return bytes(data)


FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ext", list(VALID))
def test_fuzz_only_value_error(tmp_path_factory, ext):
    root = tmp_path_factory.mktemp("fuzz")

    @FUZZ
    @given(data=hostile_file(ext))
    def run(data):
        (root / f"f{ext}").write_bytes(data)
        try:
            got = load_measurement_file(f"f{ext}", root)
        except ValueError as e:
            assert str(e).startswith(f"file 'f{ext}'"), str(e)
            return
        assert isinstance(got, LoadedArray) and got.kind in ("image", "array")
        assert torch.isfinite(got.tensor).all()
        if got.kind == "image":
            assert got.tensor.dim() == 4 and got.tensor.shape[0] == 1

    run()


def test_package_avoids_forbidden_things():
    folder = pathlib.Path(dio.__file__).parent
    sources = sorted(folder.glob("*.py"))
    assert {path.name for path in sources} >= {"__init__.py", "sandbox.py", "formats.py", "loader.py"}
    for path in sources:
        source = path.read_text(encoding="utf-8")
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
        forbidden = {"comfy", "comfy_api", "folder_paths", "pickle", "subprocess", "socket", "urllib", "requests"}
        assert not imported & forbidden, (path.name, imported & forbidden)
        assert "allow_pickle=True" not in source, path.name
