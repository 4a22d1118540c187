"""ComfyUI-DPS: Diffusion Posterior Sampling for ComfyUI.

The nodes are registered only when ComfyUI loads this folder as a custom node pack, so the
engine (`dps/`) imports and tests anywhere without ComfyUI.
"""

try:
    from comfy_api.latest import ComfyExtension  # present only inside ComfyUI
except ImportError:
    ComfyExtension = None

# __package__ is empty when this file is imported as a plain module, not as the pack's package:
# pytest does that with the repository root when a clone's folder name is no valid identifier
# ("ComfyUI-DPS"), and then there is no package to register nodes from.
if ComfyExtension is not None and __package__:
    from .nodes.extension import comfy_entrypoint  # noqa: F401

    __all__ = ["comfy_entrypoint"]
