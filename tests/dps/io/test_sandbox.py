"""The input folder as a sandbox: names resolve inside it or are refused, only regular files are
read, and the listing shows exactly the files the loader may read."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from measurement_files import load, npy_bytes, pillow_bytes, put, safetensors_bytes
from PIL import Image

from comfyui_dps.dps.io import (
    SUPPORTED_EXTENSIONS,
    MeasurementFileNotFoundError,
    find_measurement_file,
    list_measurement_files,
    load_measurement_file,
)
from comfyui_dps.dps.io import limits


def test_paths_outside_root_refused(tmp_path):
    root = tmp_path / "input"
    root.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(pillow_bytes(Image.new("L", (2, 2)), "PNG"))
    put(root, "inside.png", outside.read_bytes())
    for name in ("../secret.png", "sub/../../secret.png", str(outside), str(root / "inside.png")):
        with pytest.raises(ValueError, match=r"^file: '.*' is outside the input folder$"):
            load_measurement_file(name, root)
        with pytest.raises(ValueError, match=r"^file: '.*' is outside the input folder$"):
            find_measurement_file(name, root)
    with pytest.raises(ValueError, match=r"outside the input folder"):
        load_measurement_file("../nope.png", root)  # no probing of what exists outside


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_out_refused_and_in_allowed(tmp_path):
    root = tmp_path / "input"
    root.mkdir()
    data = pillow_bytes(Image.new("L", (2, 2), 7), "PNG")
    (tmp_path / "secret.png").write_bytes(data)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x.png").write_bytes(data)
    put(root, "real.png", data)
    try:
        os.symlink(tmp_path / "secret.png", root / "link_out.png")
        os.symlink(root / "real.png", root / "link_in.png")
        os.symlink(tmp_path / "dir", root / "dirlink")
    except OSError:
        pytest.skip("symlinks not permitted here")
    with pytest.raises(ValueError, match=r"file: 'link_out.png' is outside the input folder"):
        load_measurement_file("link_out.png", root)
    with pytest.raises(ValueError, match=r"outside the input folder"):
        load_measurement_file("dirlink/x.png", root)
    assert load_measurement_file("link_in.png", root).tensor[0, 0, 0, 0] == 7 / 255
    assert find_measurement_file("link_in.png", root) == (root / "real.png").resolve()


def test_non_ascii_names_and_subfolders(tmp_path):
    data = pillow_bytes(Image.fromarray(np.full((2, 3), 200, np.uint8)), "PNG")
    for name in ("mesure_été_測定.png", "sous-dossier_é/測定 data.PNG"):
        assert load(tmp_path, name, data).tensor.shape == (1, 2, 3, 1)
    values = np.arange(6.0).reshape(2, 3)
    assert torch.equal(load(tmp_path, "données_測定.npy", npy_bytes(values)).tensor, torch.from_numpy(values))
    assert torch.equal(load(tmp_path, "κ-space.safetensors", safetensors_bytes({"y": torch.ones(2)})).tensor, torch.ones(2))


def test_missing_empty_directory_and_bad_names(tmp_path):
    for check in (load_measurement_file, find_measurement_file):
        with pytest.raises(ValueError, match=r"^file 'nope.png' was not found in the input folder") as info:
            check("nope.png", tmp_path)
        assert isinstance(info.value, MeasurementFileNotFoundError) and isinstance(info.value, FileNotFoundError)
    for ext in SUPPORTED_EXTENSIONS:
        with pytest.raises(ValueError, match=rf"^file 'empty{ext}' is empty$"):
            load(tmp_path, f"empty{ext}", b"")
    (tmp_path / "folder.png").mkdir()
    for check in (load_measurement_file, find_measurement_file):
        with pytest.raises(ValueError, match=r"not a regular file"):
            check("folder.png", tmp_path)
    for name in ("", "   ", ".", "a\x00b.png"):
        for check in (load_measurement_file, find_measurement_file):
            with pytest.raises(ValueError, match=r"^file"):
                check(name, tmp_path)
    with pytest.raises(ValueError, match=r"^file: no file chosen"):
        find_measurement_file("", tmp_path)
    with pytest.raises(ValueError, match=r"input folder"):
        load_measurement_file("x.png", tmp_path / "missing_root")


def test_find_checks_the_extension_before_existence(tmp_path):
    with pytest.raises(ValueError, match=r"^file 'photo.jpg' has an unsupported extension"):
        find_measurement_file("photo.jpg", tmp_path)
    put(tmp_path, "a.npy", b"anything: find reads no content")
    assert find_measurement_file("a.npy", tmp_path) == (tmp_path / "a.npy").resolve()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.timeout(10)
def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.npy")
    for check in (load_measurement_file, find_measurement_file):
        with pytest.raises(ValueError, match=r"not a regular file"):
            check("pipe.npy", tmp_path)


def test_file_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match=r"too large"):
        load(tmp_path, "big.npy", npy_bytes(np.zeros(100)))


def test_list_measurement_files(tmp_path):
    root = tmp_path / "input"
    for name in (
        "b.png",
        "a.npy",
        "UPPER.TIF",
        "x.tiff",
        "k.safetensors",
        "notes.txt",
        "photo.jpg",
        ".hidden.png",
        ".cache/inside.png",
        "sub/deeper/z.png",
        "sub/測定_é.npy",
    ):
        put(root, name, b"x")
    (root / "dir.png").mkdir()
    (tmp_path / "outside.png").write_bytes(b"x")
    if hasattr(os, "symlink"):
        try:
            os.symlink(tmp_path / "outside.png", root / "link_out.png")
            os.symlink(root / "b.png", root / "link_in.png")
            os.symlink(tmp_path, root / "loop")
        except OSError:
            pass
    expected = ["UPPER.TIF", "a.npy", "b.png", "k.safetensors", "sub/deeper/z.png", "sub/測定_é.npy", "x.tiff"]
    if (root / "link_in.png").is_symlink():
        expected.append("link_in.png")
    assert list_measurement_files(root) == sorted(expected)
    assert list_measurement_files(tmp_path / "missing") == []
