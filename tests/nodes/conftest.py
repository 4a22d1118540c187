"""Fixtures shared by the node tests."""

import pytest

from testkit.host import input_directory


@pytest.fixture()
def input_dir(tmp_path):
    """A fresh folder as ComfyUI's input directory for one test (restored after)."""
    folder = tmp_path / "input"
    folder.mkdir()
    with input_directory(folder):
        yield folder
