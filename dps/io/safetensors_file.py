"""Tensors from .safetensors files, read with `safetensors.safe_open` (no code, no pickle).

The tensor is the one named by `key`, else the only tensor, else the one named "measurement" or "y".
Complex data may be stored (a) in a native complex dtype (C64) where the installed safetensors
supports it, (b) as a pair of real tensors "<key>_real" and "<key>_imag" of equal shape, which act as
one tensor called <key>, or (c) as a real tensor whose last dimension has size 2 (real, imaginary)
when the file's metadata holds {"complex": "true"}.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .arrays import canonical_tensor
from .limits import check_elements

_TRUE_WORDS = ("true", "1", "yes")


def load_safetensors(name: str, path: Path, key: str | None) -> torch.Tensor:
    try:
        from safetensors import safe_open
    except ImportError as e:  # pragma: no cover - safetensors is a requirement
        raise ValueError(f"file '{name}': the safetensors package is not installed") from e
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as e:
        raise ValueError(f"file '{name}' is not a valid safetensors file: {e}") from e
    with handle as f:
        names = list(f.keys())
        if not names:
            raise ValueError(f"file '{name}' holds no tensors")
        chosen, parts = choose_tensor(name, names, key)

        def get(part: str) -> torch.Tensor:
            check_elements(name, f.get_slice(part).get_shape())  # before the data is read
            return f.get_tensor(part)

        if len(parts) == 2:
            tensor = _complex_from_pair(name, parts, get(parts[0]), get(parts[1]))
        else:
            tensor = canonical_tensor(name, get(parts[0]))
            if str((f.metadata() or {}).get("complex", "")).strip().lower() in _TRUE_WORDS:
                tensor = _complex_from_last_dim(name, chosen, tensor)
    if tensor.numel() == 0:
        raise ValueError(f"file '{name}': tensor '{chosen}' is empty (shape {tuple(tensor.shape)})")
    return tensor


def _complex_from_pair(name: str, parts: tuple[str, ...], real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    if real.shape != imag.shape:
        raise ValueError(
            f"file '{name}': '{parts[0]}' {tuple(real.shape)} and '{parts[1]}' {tuple(imag.shape)} must have the same shape"
        )
    if real.is_complex() or imag.is_complex():
        raise ValueError(f"file '{name}': '{parts[0]}' and '{parts[1]}' must be real")
    real, imag = canonical_tensor(name, real), canonical_tensor(name, imag)
    both = torch.promote_types(real.dtype, imag.dtype)
    return torch.complex(real.to(both), imag.to(both))


def _complex_from_last_dim(name: str, chosen: str, tensor: torch.Tensor) -> torch.Tensor:
    if tensor.is_complex():
        return tensor
    if tensor.dim() == 0 or tensor.shape[-1] != 2:
        raise ValueError(
            f"file '{name}': metadata says complex, so tensor '{chosen}' needs a last dimension of size 2 "
            f"(real, imaginary); it has shape {tuple(tensor.shape)}"
        )
    return torch.view_as_complex(tensor.contiguous()).clone()


def choose_tensor(name: str, names: list[str], key: str | None) -> tuple[str, tuple[str, ...]]:
    """(logical name, stored tensor names) of the tensor to load."""
    present = set(names)
    if key is not None:
        if key in present:
            return key, (key,)
        if f"{key}_real" in present and f"{key}_imag" in present:
            return key, (f"{key}_real", f"{key}_imag")
        raise ValueError(f"file '{name}' has no tensor '{key}' (nor '{key}_real'/'{key}_imag'); it holds: {_list_names(names)}")
    logical: dict[str, tuple[str, ...]] = {}
    paired: set[str] = set()
    for n in names:
        if n.endswith("_real"):
            base = n[: -len("_real")]
            if base and f"{base}_imag" in present and base not in present:
                logical[base] = (n, f"{base}_imag")
                paired.update(logical[base])
    for n in names:
        if n not in paired:
            logical[n] = (n,)
    if len(logical) == 1:
        return next(iter(logical.items()))
    for preferred in ("measurement", "y"):
        if preferred in logical:
            return preferred, logical[preferred]
    raise ValueError(
        f"file '{name}' holds several tensors ({_list_names(sorted(logical))}); "
        "name the one to use with the key input, or call it 'measurement' or 'y'"
    )


def _list_names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
