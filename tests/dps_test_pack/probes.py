"""Test-only probe nodes for the reliability tests (never shipped).

- DPSTestProbe passes any value through unchanged (the same object) together with a digest of
  its content taken when it passed; DPSTestCheckUnchanged, placed after the node under test,
  digests the same object again and reports both. ComfyUI hands one cached output object to
  every consumer, so a node that modified its input in place shows up as a changed digest.
- DPSTestJoin returns its first input once its second exists: a barrier that orders the checks
  after every node under test.
- DPSTestPassthrough passes a value on unchanged; its `salt` only changes the cache key, so a
  downstream node runs again on identical values.
- DPSTestPoison and DPSTestChannels make bad or unusual IMAGEs (NaN/Inf pixels; 1, 2 or 4 channels).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


class AnyType(str):
    """ComfyUI's usual wildcard socket type: equal to every other type."""

    def __ne__(self, other):
        return False

    def __hash__(self):
        return str.__hash__(self)


ANY = AnyType("*")


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


def _model_patcher_state(patcher) -> dict:
    """What a node could change on a ModelPatcher: weights, patches, wrappers, callbacks, options."""
    wrappers = {str(kind): {str(key): len(fns) for key, fns in by_key.items()}
                for kind, by_key in getattr(patcher, "wrappers", {}).items()}
    callbacks = {str(kind): {str(key): len(fns) for key, fns in by_key.items()}
                 for kind, by_key in getattr(patcher, "callbacks", {}).items()}
    options = getattr(patcher, "model_options", {})
    transformer = options.get("transformer_options", {})
    return {
        "weights": patcher.model.state_dict(),
        "patches": {key: len(value) for key, value in getattr(patcher, "patches", {}).items()},
        "object_patches": sorted(map(str, getattr(patcher, "object_patches", {}))),
        "wrappers": wrappers,
        "callbacks": callbacks,
        "additional_models": sorted(map(str, getattr(patcher, "additional_models", {}))),
        "model_options": sorted(map(str, options)),
        "transformer_options": sorted(map(str, transformer)),
        "transformer_wrappers": {str(kind): {str(key): len(fns) for key, fns in by_key.items()}
                                 for kind, by_key in transformer.get("wrappers", {}).items()},
    }


def _walk(value, digest, seen: dict) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"tensor {value.dtype} {tuple(value.shape)}|".encode())
        digest.update(_tensor_bytes(value))
        return
    if isinstance(value, np.ndarray):
        digest.update(f"array {value.dtype} {value.shape}|".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        return
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        digest.update(f"{type(value).__name__} {value!r}|".encode())
        return
    if id(value) in seen:
        digest.update(b"<seen>|")
        return
    # Keep the object alive until the walk ends: the dicts built below are temporaries, and a
    # freed one's id can be handed to the next, which would then be skipped as "<seen>" (a
    # digest that depended on the allocator and on other threads: a flaky reliability test).
    seen[id(value)] = value
    if isinstance(value, dict):
        digest.update(f"dict {len(value)}|".encode())
        for key in sorted(value, key=str):
            digest.update(f"key {key!s}|".encode())
            _walk(value[key], digest, seen)
        return
    if isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}|".encode())
        for item in value:
            _walk(item, digest, seen)
        return
    name = type(value).__name__
    digest.update(f"object {type(value).__module__}.{name}|".encode())
    if hasattr(value, "model") and hasattr(value, "model_options") and hasattr(value, "patches"):
        _walk(_model_patcher_state(value), digest, seen)  # comfy.model_patcher.ModelPatcher
    elif hasattr(value, "first_stage_model") and hasattr(value, "patcher"):
        _walk(value.first_stage_model.state_dict(), digest, seen)  # comfy.sd.VAE
    elif isinstance(value, torch.nn.Module):
        _walk(value.state_dict(), digest, seen)
    elif hasattr(value, "__dict__") and not callable(value):
        # Public state only: "_cache"-style memos of derived values are not inputs' content.
        _walk({key: item for key, item in vars(value).items() if not key.startswith("_")}, digest, seen)
    elif hasattr(value, "__dict__"):
        _walk({key: item for key, item in vars(value).items() if not key.startswith("_")}, digest, seen)


def object_digest(value) -> str:
    """sha256 over the content of a node value: tensors bit for bit, containers, engine objects,
    ModelPatcher weights and patches, VAE weights."""
    digest = hashlib.sha256()
    _walk(value, digest, {})
    return digest.hexdigest()


class Probe:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,)}}

    RETURN_TYPES = (ANY, "STRING")
    RETURN_NAMES = ("value", "digest")
    FUNCTION = "probe"
    CATEGORY = "DPS tests"

    def probe(self, value):
        return (value, object_digest(value))


class CheckUnchanged:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "value": (ANY,),
            "recorded": ("STRING", {"forceInput": True}),
            "after": (ANY,),
            "label": ("STRING", {"default": ""}),
        }}

    RETURN_TYPES = ()
    FUNCTION = "check"
    OUTPUT_NODE = True
    CATEGORY = "DPS tests"

    def check(self, value, recorded, after, label):
        now = object_digest(value)
        return {"ui": {"unchanged": [{"label": label, "recorded": recorded, "now": now, "equal": now == recorded}]}}


class Passthrough:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,), "salt": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = (ANY,)
    FUNCTION = "passthrough"
    CATEGORY = "DPS tests"

    def passthrough(self, value, salt):
        return (value,)


class Join:
    """Returns `first`; runs only after `second` exists (a barrier: it orders checks after other nodes)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": (ANY,), "second": (ANY,)}}

    RETURN_TYPES = (ANY,)
    FUNCTION = "join"
    CATEGORY = "DPS tests"

    def join(self, first, second):
        return (first,)


POISONS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


class Poison:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "value": (list(POISONS),)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "poison"
    CATEGORY = "DPS tests"

    def poison(self, image, value):
        out = image.clone()
        out[0, out.shape[1] // 2, out.shape[2] // 2, 0] = POISONS[value]
        return (out,)


class Channels:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "channels": ("INT", {"default": 1, "min": 1, "max": 4})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "convert"
    CATEGORY = "DPS tests"

    def convert(self, image, channels):
        grey = image[..., :3].mean(dim=-1, keepdim=True)
        alpha = torch.ones_like(grey)
        parts = {1: [grey], 2: [grey, alpha], 3: [image[..., :3]], 4: [image[..., :3], alpha]}[channels]
        return (torch.cat(parts, dim=-1).contiguous(),)


NODE_CLASS_MAPPINGS = {
    "DPSTestProbe": Probe,
    "DPSTestCheckUnchanged": CheckUnchanged,
    "DPSTestPassthrough": Passthrough,
    "DPSTestJoin": Join,
    "DPSTestPoison": Poison,
    "DPSTestChannels": Channels,
}
