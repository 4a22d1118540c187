"""A real ComfyUI server with this pack and the test pack loaded, shared by the server tests."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]  # scripts/: the demo tests check the demo script's own helpers

from testkit.comfy_server import ComfyServer  # noqa: E402


@pytest.fixture(scope="session")
def server():
    with ComfyServer(extra_custom_nodes=[ROOT / "tests" / "dps_test_pack"]) as running:
        yield running
