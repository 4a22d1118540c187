"""Load Measurement's checks before a run are the engine's sandbox, not a copy of it: for every kind
of name, validate_inputs refuses exactly what load_measurement_file refuses, with the same message
(a missing file gets a hint on where to put it), and fingerprint_inputs hashes only files it accepts."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from testkit.host import load_pack

pack = load_pack()


from comfyui_dps.dps.io import load_measurement_file  # noqa: E402

Node = pack.nodes.load_measurement_node.DPSLoadMeasurement


def names_of_every_kind(input_dir) -> list[str]:
    np.save(input_dir / "good.npy", np.ones((4, 4), np.float32))
    (input_dir / "sub").mkdir()
    np.save(input_dir / "sub" / "deep.npy", np.ones((4, 4), np.float32))
    np.save(input_dir.parent / "secret.npy", np.ones((4, 4), np.float32))
    (input_dir / "folder.npy").mkdir()
    (input_dir / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    names = ["good.npy", "sub/deep.npy", "../secret.npy", str(input_dir.parent / "secret.npy"), "sub/../../secret.npy",
             "folder.npy", "photo.jpg", "missing.npy", "", "  ", "a\x00b.npy", "."]
    if hasattr(os, "symlink"):
        os.symlink(input_dir.parent / "secret.npy", input_dir / "link_out.npy")
        os.symlink(input_dir / "good.npy", input_dir / "link_in.npy")
        names += ["link_out.npy", "link_in.npy"]
    if hasattr(os, "mkfifo"):
        os.mkfifo(input_dir / "pipe.npy")
        names.append("pipe.npy")
    return names


@pytest.mark.timeout(60)
def test_validation_refuses_what_loading_refuses_with_the_same_message(input_dir):
    for name in names_of_every_kind(input_dir):
        verdict = Node.validate_inputs(file=name)
        try:
            load_measurement_file(name, input_dir)
        except ValueError as error:
            assert isinstance(verdict, str), (name, verdict)
            if name == "missing.npy":
                assert verdict == "file: 'missing.npy' was not found in the input folder; upload it or copy it there"
                assert str(error) == "file 'missing.npy' was not found in the input folder"
            else:
                assert verdict == str(error), name
        else:
            assert verdict is True, (name, verdict)


def test_fingerprint_hashes_only_accepted_files(input_dir):
    for name in names_of_every_kind(input_dir):
        fingerprint = Node.fingerprint_inputs(file=name)
        if Node.validate_inputs(file=name) is True:
            path = (input_dir / name).resolve()
            assert fingerprint == hashlib.sha256(path.read_bytes()).hexdigest(), name
        else:
            assert fingerprint == Node.validate_inputs(file=name), name
