"""Fixtures shared by the node tests."""

import pytest


@pytest.fixture()
def input_dir(tmp_path):
    """A fresh folder as ComfyUI's input directory for one test (restored after)."""
    import folder_paths  # ComfyUI's: the node tests load the host before they run

    folder = tmp_path / "input"
    folder.mkdir()
    previous = folder_paths.get_input_directory()
    folder_paths.set_input_directory(str(folder))
    try:
        yield folder
    finally:
        folder_paths.set_input_directory(previous)
