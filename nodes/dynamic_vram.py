"""Guidance under ComfyUI's Dynamic VRAM (newer ComfyUI, on by default on NVIDIA).

A dynamic model patcher casts weights per operation into buffers it reuses, so a weight saved for
a backward pass may be overwritten before the backward runs: the gradient would be silently wrong.
ComfyUI itself runs hooked models through a non-dynamic delegate (`get_non_dynamic_delegate`: a
clone that shares the weights but keeps every weight it uses alive), and so does guidance. ComfyUI
versions without Dynamic VRAM have no `is_dynamic` and are used as they are.
"""

from __future__ import annotations


def is_dynamic(patcher) -> bool:
    query = getattr(patcher, "is_dynamic", None)
    return bool(query()) if callable(query) else False


def non_dynamic(patcher, name: str = "model"):
    """`patcher` itself, or its non-dynamic delegate when it is a dynamic one."""
    if not is_dynamic(patcher):
        return patcher
    try:
        delegate = patcher.get_non_dynamic_delegate()
    except (AttributeError, RuntimeError) as error:
        raise ValueError(
            f"{name}: it is loaded with ComfyUI's Dynamic VRAM, and ComfyUI could not give the non-dynamic copy "
            f"that gradients through it need ({error}); start ComfyUI with --disable-dynamic-vram"
        ) from error
    if is_dynamic(delegate):
        raise ValueError(f"{name}: ComfyUI's non-dynamic copy of it is still dynamic; start ComfyUI with "
                         "--disable-dynamic-vram")
    return delegate
