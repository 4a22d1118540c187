"""NumPy .npy files, read without pickle: the header is parsed and the dtype checked before any data
is touched; object arrays (which only pickle can hold) are refused."""

from __future__ import annotations

import io

import numpy as np
import torch

from .arrays import check_finite
from .limits import check_elements


def load_npy(name: str, data: bytes) -> torch.Tensor:
    fmt = np.lib.format
    stream = io.BytesIO(data)
    try:
        version = fmt.read_magic(stream)
    except Exception as e:
        raise ValueError(f"file '{name}' is not a valid .npy file: {e}") from e
    try:
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream, max_header_size=10000)
        else:
            raise ValueError(f".npy format version {version} is not supported")
    except Exception as e:
        text = str(e)
        if "pickle" in text.lower():
            raise ValueError(f"file '{name}': pickled .npy files are refused ({text})") from e
        raise ValueError(f"file '{name}' has a corrupt .npy header: {text}") from e
    if dtype.hasobject:
        raise ValueError(f"file '{name}': pickled .npy files are refused (object dtype; save a plain numeric array instead)")
    if dtype.names is not None or dtype.subdtype is not None:
        raise ValueError(f"file '{name}': structured .npy arrays are not supported ({dtype})")
    if dtype.kind not in "biufc":
        raise ValueError(f"file '{name}': .npy dtype {dtype} is not a number type")
    count = check_elements(name, shape)
    if count == 0:
        raise ValueError(f"file '{name}' holds an empty array (shape {tuple(shape)})")
    offset = stream.tell()
    needed = count * dtype.itemsize
    have = len(data) - offset
    if have < needed:
        raise ValueError(f"file '{name}' is truncated: its header promises {needed} data bytes, it holds {have}")
    if have > needed:
        raise ValueError(f"file '{name}' has {have - needed} unexpected bytes after the array")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    array = array.reshape(shape, order="F" if fortran else "C")
    # The dtype policy of arrays.py, applied in numpy (torch has no unsigned 16/32/64-bit or big-endian types).
    if dtype.kind == "c":
        target = np.complex64 if dtype.itemsize <= 8 else np.complex128
    elif dtype.kind == "f":
        target = np.float64 if dtype.itemsize >= 8 else np.float32
    elif dtype.itemsize <= 2:
        target = np.float32
    else:
        target = np.float64
    tensor = torch.from_numpy(np.array(array, dtype=target, order="C", copy=True))
    check_finite(name, tensor)
    return tensor
