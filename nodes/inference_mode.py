"""The way out of torch.inference_mode() for guidance.

ComfyUI runs every node under inference mode, so weights made by loader nodes, latents and tensors
made inside nodes are inference tensors, which autograd refuses to save for backward.
"""

from __future__ import annotations

import copy

import torch


def made_in_inference_mode(tensor: torch.Tensor) -> bool:
    """True for inference tensors, and for tensors created as such whose .data was later
    replaced (Module.to() does that): those report is_inference() False yet still have no
    version counter, so autograd cannot save them either."""
    if tensor.is_inference():
        return True
    try:
        tensor._version  # noqa: B018
    except RuntimeError:
        return True
    return False


def ordinary_alias(tensor: torch.Tensor) -> torch.Tensor:
    """An ordinary tensor with `tensor`'s values. For plain strided tensors it shares their memory
    (no copy): a fresh tensor set to the same storage, offset, sizes and strides has a version
    counter of its own, which is all autograd needs to save it. Anything else is copied."""
    data = tensor.data
    if type(data) is not torch.Tensor or data.layout != torch.strided or data.device.type == "meta":
        return data.clone()
    alias = torch.empty(0, dtype=data.dtype, device=data.device)
    return alias.set_(data.untyped_storage(), data.storage_offset(), data.size(), data.stride())


def _ordinary_parameter(param: torch.nn.Parameter) -> torch.nn.Parameter:
    """A frozen Parameter aliasing `param`, keeping every attribute the loader set on it (newer
    ComfyUI reads some, such as `_model_dtype`, when it casts weights)."""
    replacement = torch.nn.Parameter(ordinary_alias(param), requires_grad=False)
    for key, value in vars(param).items():
        setattr(replacement, key, value)
    return replacement


def autograd_ready(module: torch.nn.Module) -> int:
    """Replace every inference-mode parameter/buffer of `module` by an ordinary tensor with the
    same values, in place, so that autograd may save it for backward.

    Each replacement shares the memory of the tensor it replaces, so the first call neither copies
    nor allocates, and later calls find nothing to do; ComfyUI re-creates weights when it re-patches
    a model (LoRA), so this is checked on every call. Returns how many were replaced.
    """
    replaced = 0
    with torch.inference_mode(False), torch.no_grad():
        for submodule in module.modules():
            for name, param in list(submodule._parameters.items()):
                if param is not None and made_in_inference_mode(param):
                    submodule._parameters[name] = _ordinary_parameter(param)
                    replaced += 1
                elif param is not None and param.requires_grad:
                    param.requires_grad_(False)  # input gradients only: never weight gradients
            for name, buffer in list(submodule._buffers.items()):
                if buffer is not None and made_in_inference_mode(buffer):
                    submodule._buffers[name] = ordinary_alias(buffer)
                    replaced += 1
    return replaced


def ordinary_copy(obj):
    """A deep copy of `obj` (a measurement: y, operator, noise) whose tensors are ordinary tensors.

    Tensors made inside nodes are inference tensors, and an operator's masks or kernels are saved
    for backward. The input object itself is never touched (ComfyUI caches node outputs)."""
    with torch.inference_mode(False):
        return copy.deepcopy(obj)
