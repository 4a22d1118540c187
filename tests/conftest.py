"""Shared test set-up: the repository root on the path (for `testkit` and `bench`) and this pack
importable as `comfyui_dps`, the one import path of every test. ComfyUI is loaded on demand by
`testkit.host.load_pack`."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):  # tests/ for the test node pack `dps_test_pack`
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from testkit.host import import_pack  # noqa: E402

import_pack()
