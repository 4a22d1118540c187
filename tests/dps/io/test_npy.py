"""NumPy .npy files: exact values, the dtype policy, and no pickle in any form."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from measurement_files import load, npy_bytes

RNG = np.random.default_rng(1234)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_float_and_complex_exact(tmp_path, dtype):
    values = RNG.standard_normal((3, 4, 5))
    if np.dtype(dtype).kind == "c":
        values = values + 1j * RNG.standard_normal((3, 4, 5))
    values = values.astype(dtype)
    got = load(tmp_path, "y.npy", npy_bytes(values))
    assert got.kind == "array"
    assert got.tensor.dtype == torch.from_numpy(values).dtype
    assert torch.equal(got.tensor, torch.from_numpy(values))
    assert got.tensor.is_complex() == (np.dtype(dtype).kind == "c")


@pytest.mark.parametrize(
    "dtype,expected",
    [
        (np.uint8, torch.float32),
        (np.int16, torch.float32),
        (np.uint16, torch.float32),
        (np.bool_, torch.float32),
        (np.int32, torch.float64),
        (np.int64, torch.float64),
        (np.float16, torch.float32),
        (">f8", torch.float64),
        (">c8", torch.complex64),
    ],
)
def test_dtype_policy(tmp_path, dtype, expected):
    values = np.arange(12).reshape(3, 4).astype(dtype)
    got = load(tmp_path, "y.npy", npy_bytes(values))
    assert got.tensor.dtype == expected
    assert np.array_equal(got.tensor.numpy(), values.astype(got.tensor.numpy().dtype))


def test_fortran_order_and_scalar(tmp_path):
    values = np.asfortranarray(RNG.standard_normal((4, 3)))
    got = load(tmp_path, "f.npy", npy_bytes(values))
    assert got.tensor.is_contiguous() and torch.equal(got.tensor, torch.from_numpy(values.copy()))
    got = load(tmp_path, "s.npy", npy_bytes(np.float64(2.5)))
    assert got.tensor.shape == () and got.tensor.item() == 2.5


def test_pickled_object_array_refused(tmp_path):
    evil = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(ValueError, match=r"file 'evil.npy': pickled .npy files are refused"):
        load(tmp_path, "evil.npy", npy_bytes(evil, allow_pickle=True))


def test_raw_pickle_refused(tmp_path):
    with pytest.raises(ValueError, match=r"pickle"):
        load(tmp_path, "p.npy", pickle.dumps(np.zeros(3)))


def test_structured_string_empty_nonfinite_refused(tmp_path):
    structured = np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])
    with pytest.raises(ValueError, match=r"structured"):
        load(tmp_path, "s.npy", npy_bytes(structured))
    with pytest.raises(ValueError, match=r"not a number type"):
        load(tmp_path, "u.npy", npy_bytes(np.array(["x", "y"])))
    with pytest.raises(ValueError, match=r"empty array"):
        load(tmp_path, "e.npy", npy_bytes(np.zeros((0, 3))))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"file 'n.npy' contains 1 non-finite"):
            load(tmp_path, "n.npy", npy_bytes(np.array([1.0, bad, 2.0])))
    with pytest.raises(ValueError, match=r"non-finite"):
        load(tmp_path, "nc.npy", npy_bytes(np.array([1 + 1j, complex(0, np.nan)])))


def test_truncated_trailing_and_huge_header(tmp_path):
    data = npy_bytes(np.arange(10, dtype=np.float64))
    with pytest.raises(ValueError, match=r"is truncated"):
        load(tmp_path, "t.npy", data[:-1])
    with pytest.raises(ValueError, match=r"unexpected bytes"):
        load(tmp_path, "x.npy", data + b"\0")
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1073741824,), }"
    header = header.ljust(118) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(8)
    with pytest.raises(ValueError, match=r"over the limit"):
        load(tmp_path, "big.npy", data)
