"""safetensors files: which tensor is read, the three complex conventions, the dtype policy, and
corrupt headers refused."""

from __future__ import annotations

import struct

import pytest
import torch
from measurement_files import load, safetensors_bytes

from comfyui_dps.dps.io import limits


def test_single_real_tensor(tmp_path):
    values = torch.randn(2, 3, 4, dtype=torch.float64)
    got = load(tmp_path, "a.safetensors", safetensors_bytes({"whatever": values}))
    assert got.kind == "array"
    assert torch.equal(got.tensor, values)


def test_native_complex(tmp_path):
    values = torch.randn(3, 5, dtype=torch.complex64)
    got = load(tmp_path, "c.safetensors", safetensors_bytes({"y": values}))
    assert got.tensor.dtype == torch.complex64 and torch.equal(got.tensor, values)


@pytest.mark.parametrize(
    "real_dtype,imag_dtype,expected",
    [
        (torch.float32, torch.float32, torch.complex64),
        (torch.float64, torch.float64, torch.complex128),
        (torch.float32, torch.float64, torch.complex128),
    ],
)
def test_real_imag_pair(tmp_path, real_dtype, imag_dtype, expected):
    real = torch.randn(4, 6, dtype=real_dtype)
    imag = torch.randn(4, 6, dtype=imag_dtype)
    data = safetensors_bytes({"kspace_real": real, "kspace_imag": imag})
    got = load(tmp_path, "k.safetensors", data)
    assert got.tensor.dtype == expected
    assert torch.equal(got.tensor.real, real.to(got.tensor.real.dtype))
    assert torch.equal(got.tensor.imag, imag.to(got.tensor.real.dtype))
    again = load(tmp_path, "k.safetensors", data, key="kspace")
    assert torch.equal(again.tensor, got.tensor)
    part = load(tmp_path, "k.safetensors", data, key="kspace_imag")
    assert torch.equal(part.tensor, imag)


def test_trailing_pair_with_complex_metadata(tmp_path):
    pairs = torch.randn(3, 4, 2)
    got = load(
        tmp_path, "t.safetensors", safetensors_bytes({"y": pairs}, metadata={"complex": "true"})
    )
    assert got.tensor.dtype == torch.complex64 and got.tensor.shape == (3, 4)
    assert torch.equal(torch.view_as_real(got.tensor), pairs)
    plain = load(tmp_path, "p.safetensors", safetensors_bytes({"y": pairs}))
    assert plain.tensor.dtype == torch.float32 and plain.tensor.shape == (3, 4, 2)
    with pytest.raises(ValueError, match=r"last dimension of size 2"):
        load(
            tmp_path,
            "bad.safetensors",
            safetensors_bytes({"y": torch.randn(3, 3)}, metadata={"complex": "true"}),
        )


def test_key_selection(tmp_path):
    a, b, m = torch.randn(2), torch.randn(3), torch.randn(4)
    data = safetensors_bytes({"a": a, "b": b, "measurement": m, "y": torch.randn(5)})
    assert torch.equal(load(tmp_path, "s.safetensors", data).tensor, m)
    assert torch.equal(load(tmp_path, "s.safetensors", data, key="b").tensor, b)
    assert torch.equal(load(tmp_path, "s.safetensors", data, key="").tensor, m)
    y = torch.randn(5)
    assert torch.equal(load(tmp_path, "y.safetensors", safetensors_bytes({"a": a, "y": y})).tensor, y)
    with pytest.raises(ValueError, match=r"holds several tensors \('a', 'b'\).*key"):
        load(tmp_path, "amb.safetensors", safetensors_bytes({"a": a, "b": b}))
    with pytest.raises(ValueError, match=r"has no tensor 'zz'.*'a', 'b'"):
        load(tmp_path, "amb.safetensors", safetensors_bytes({"a": a, "b": b}), key="zz")


def test_dtype_policy_and_nonfinite(tmp_path):
    data = safetensors_bytes(
        {"y": torch.tensor([1.5, 2.0], dtype=torch.bfloat16), "i": torch.tensor([1, 2])}
    )
    assert load(tmp_path, "d.safetensors", data).tensor.dtype == torch.float32
    assert load(tmp_path, "d.safetensors", data, key="i").tensor.dtype == torch.float64
    with pytest.raises(ValueError, match=r"non-finite"):
        load(tmp_path, "n.safetensors", safetensors_bytes({"y": torch.tensor([1.0, float("inf")])}))


def test_corrupt_headers(tmp_path):
    good = safetensors_bytes({"y": torch.randn(4)})
    (n,) = struct.unpack("<Q", good[:8])
    cases = {
        "garbage_json.safetensors": struct.pack("<Q", 10) + b"{not json!" + bytes(16),
        "too_long.safetensors": struct.pack("<Q", 1 << 40) + b"{}",
        "bad_offsets.safetensors": good[:8]
        + good[8 : 8 + n].replace(b"[0,16]", b"[0,99]")
        + good[8 + n :],
        "truncated.safetensors": good[:-3],
        "nested.safetensors": struct.pack("<Q", 20000) + b"{" + b"[" * 19999,
    }
    for name, data in cases.items():
        with pytest.raises(ValueError, match=rf"file '{name}'"):
            load(tmp_path, name, data)


def test_element_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 10)
    with pytest.raises(ValueError, match=r"over the limit of 10"):
        load(tmp_path, "big.safetensors", safetensors_bytes({"y": torch.zeros(11)}))
