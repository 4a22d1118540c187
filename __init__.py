"""ComfyUI-DPS: Diffusion Posterior Sampling for ComfyUI.

The nodes are registered only when ComfyUI loads this folder as a custom node pack, so the
engine (`dps/`) imports and tests anywhere without ComfyUI.
"""

try:
    from comfy_api.latest import ComfyExtension  # present only inside ComfyUI
except ImportError:
    ComfyExtension = None

if ComfyExtension is not None:
    from .nodes.extension import comfy_entrypoint  # noqa: F401

    __all__ = ["comfy_entrypoint"]
