"""Imports the real ComfyUI host in-process and this pack as the package `comfyui_dps`.

ComfyUI is found through COMFYUI_PATH, else the folder that `make host` extracted. On a machine
without CUDA ComfyUI is told to use the CPU, as `--cpu` would.
"""

import contextlib
import importlib.util
import pathlib
import sys

from .comfy_server import comfyui_path  # one rule for where ComfyUI is

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_comfy():
    """Make `comfy`, `comfy_api`, `nodes` ... importable and configure the device."""
    path = comfyui_path()
    if not (path / "comfy").is_dir():
        raise RuntimeError(f"no ComfyUI at {path}: run `make host` first")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import torch
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True
    import comfy.model_management  # noqa: F401  (reads args once)
    return path


def import_pack():
    """This repository as the package `comfyui_dps`, the one import path of tests, bench and scripts.
    Without ComfyUI on the path only the engine (`comfyui_dps.dps`) is usable."""
    if "comfyui_dps" in sys.modules:
        return sys.modules["comfyui_dps"]
    spec = importlib.util.spec_from_file_location(
        "comfyui_dps", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfyui_dps"] = module
    spec.loader.exec_module(module)
    return module


def load_pack():
    """The real ComfyUI host in-process, then this pack as `comfyui_dps` with its nodes, as ComfyUI
    loads it (also when the engine tests imported the pack before ComfyUI was on the path)."""
    load_comfy()
    pack = import_pack()
    if not hasattr(pack, "comfy_entrypoint"):
        pack.comfy_entrypoint = importlib.import_module("comfyui_dps.nodes.extension").comfy_entrypoint
    return pack


@contextlib.contextmanager
def input_directory(folder):
    """ComfyUI's input directory set to `folder` within the context (restored after)."""
    import folder_paths  # ComfyUI's: load_comfy() first

    previous = folder_paths.get_input_directory()
    folder_paths.set_input_directory(str(folder))
    try:
        yield folder
    finally:
        folder_paths.set_input_directory(previous)
