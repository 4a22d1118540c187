"""Load Measurement (the node, in-process) on hostile files: only ValueError, never another exception.

tests/dps/io/test_loader.py fuzzes the engine's reader. The node adds its own layer: validate_inputs and
fingerprint_inputs (which ComfyUI calls before running), and the shape rules that turn what was
read into y and check it against the operator. Here random, truncated and mutated files of every
format, and well-formed arrays of random shapes and dtypes, go through all of that with several
operators and both noise models.
"""

from __future__ import annotations

import hashlib
import io as bytes_io
import itertools

import numpy as np
import png
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save as safetensors_save

from testkit.host import input_directory, load_pack

pack = load_pack()


from comfyui_dps.dps.measurement import Measurement  # noqa: E402
from comfyui_dps.dps.operators import (  # noqa: E402
    Colorization,
    FourierUndersampling,
    GaussianBlur,
    Inpainting,
    PhaseRetrieval,
    SuperResolution,
)

load = pack.nodes.load_measurement_node
Node = load.DPSLoadMeasurement

OPERATORS = {
    "super-resolution x2": lambda: SuperResolution(2, "bicubic"),
    "colorization": Colorization,
    "gaussian blur": lambda: GaussianBlur(3, 1.0),
    "inpainting 8x8": lambda: Inpainting(torch.zeros(1, 8, 8)),
    "fourier": lambda: FourierUndersampling(2.0, 0.25, 0),
    "phase retrieval": lambda: PhaseRetrieval(2.0),
}
# The inputs a message may name besides the file.
OTHER_INPUTS = ("noise_model:", "noise_level:", "mask:")

FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
_names = itertools.count()


def picture_bytes(fmt, array, mode=None):
    buffer = bytes_io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=fmt)
    return buffer.getvalue()


def png16_bytes(array):
    """A 16-bit colour PNG, which Pillow cannot write."""
    buffer = bytes_io.BytesIO()
    height, width, channels = array.shape
    png.Writer(width, height, greyscale=False, alpha=channels == 4, bitdepth=16).write(buffer, array.reshape(height, -1))
    return buffer.getvalue()


def npy_bytes(array):
    buffer = bytes_io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


RNG = np.random.default_rng(3)
VALID = {
    ".png": [picture_bytes("PNG", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
             picture_bytes("PNG", RNG.integers(0, 65536, (8, 8), dtype=np.uint16)),
             picture_bytes("PNG", RNG.integers(0, 256, (4, 4, 4), dtype=np.uint8), "RGBA"),
             png16_bytes(RNG.integers(0, 65536, (8, 8, 3), dtype=np.uint16))],
    ".tif": [picture_bytes("TIFF", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
             picture_bytes("TIFF", RNG.random((4, 4)).astype(np.float32), "F")],
    ".npy": [npy_bytes(RNG.random((3, 4, 4)).astype(np.float32)),
             npy_bytes((RNG.random((1, 8, 8)) + 1j * RNG.random((1, 8, 8))).astype(np.complex64))],
    ".safetensors": [safetensors_save({"y": torch.rand(1, 3, 4, 4)}),
                     safetensors_save({"k_real": torch.rand(8, 8), "k_imag": torch.rand(8, 8)})],
}


@st.composite
def hostile_bytes(draw, ext):
    base = draw(st.sampled_from(VALID[ext]))
    how = draw(st.sampled_from(["random", "truncated", "mutated", "valid"]))
    if how == "random":
        return draw(st.binary(max_size=2000))
    if how == "truncated":
        return base[: draw(st.integers(0, len(base) - 1))]
    if how == "valid":
        return base
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory):
    with input_directory(tmp_path_factory.mktemp("fuzz_input")) as folder:
        yield folder


def run_node(input_dir, name, data, operator_name, noise_model):
    """Everything ComfyUI does with the node for one prompt: validate, fingerprint, execute.
    Returns the measurement, or the ValueError's message."""
    (input_dir / name).write_bytes(data)
    assert Node.validate_inputs(file=name) is True
    assert Node.fingerprint_inputs(file=name) == hashlib.sha256(data).hexdigest()
    operator = OPERATORS[operator_name]()
    try:
        with torch.inference_mode():
            (measurement,) = Node.execute(file=name, operator=operator, noise_model=noise_model,
                                          noise_level=0.05 if noise_model == "gaussian" else 100.0, key="").result
    except ValueError as error:
        message = str(error)
        assert message.startswith(f"file '{name}'") or message.startswith(OTHER_INPUTS), message
        event("ValueError: " + message.replace(f"file '{name}'", "file")[:40])
        return message
    event("measurement")
    check_measurement(measurement, operator)
    return measurement


def check_measurement(measurement, operator):
    assert isinstance(measurement, Measurement)
    y = measurement.y
    assert y.dim() == 4 and 0 not in y.shape
    assert bool(torch.isfinite(torch.view_as_real(y) if y.is_complex() else y).all())
    height, width = measurement.image_size
    with torch.inference_mode():
        predicted = operator(torch.zeros(y.shape[0], 3, height, width))
    assert tuple(predicted.shape[-2:]) == tuple(y.shape[-2:])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("ext", list(VALID))
def test_hostile_files_give_value_error_or_a_valid_measurement(input_dir, ext):
    @FUZZ
    @given(data=hostile_bytes(ext), operator_name=st.sampled_from(list(OPERATORS)),
           noise_model=st.sampled_from(["gaussian", "poisson"]))
    def check(data, operator_name, noise_model):
        name = f"hostile_{next(_names)}{ext}"
        result = run_node(input_dir, name, data, operator_name, noise_model)
        if not data:
            assert result == f"file '{name}' is empty"

    check()


ARRAY_DTYPES = ["float32", "float64", "float16", "complex64", "complex128", "uint8", "int16", "bool"]


@st.composite
def arrays(draw):
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=5)))
    dtype = draw(st.sampled_from(ARRAY_DTYPES))
    scale = draw(st.sampled_from([1.0, -1.0, 1e3]))
    values = np.asarray(np.random.default_rng(draw(st.integers(0, 2**16))).random(shape)) * scale
    if dtype.startswith("complex"):
        values = values * (1 + 0.5j)
    if dtype.startswith(("float", "complex")) and values.size and draw(st.integers(0, 9)) == 0:
        values.flat[0] = draw(st.sampled_from([np.nan, np.inf]))
    return np.array(values, dtype=dtype)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("ext", [".npy", ".safetensors"])
def test_arrays_of_any_shape_and_dtype_give_value_error_or_a_valid_measurement(input_dir, ext):
    @FUZZ
    @given(array=arrays(), operator_name=st.sampled_from(list(OPERATORS)),
           noise_model=st.sampled_from(["gaussian", "poisson"]))
    def check(array, operator_name, noise_model):
        if ext == ".npy":
            data = npy_bytes(array)
        else:
            if array.dtype == np.complex128 or array.dtype == np.complex64:
                tensors = {"y_real": torch.from_numpy(np.array(array.real)), "y_imag": torch.from_numpy(np.array(array.imag))}
            else:
                tensors = {"y": torch.from_numpy(np.array(array))}
            data = safetensors_save(tensors)
        name = f"array_{next(_names)}{ext}"
        result = run_node(input_dir, name, data, operator_name, noise_model)
        if isinstance(result, Measurement):
            assert array.ndim in (2, 3, 4) and 0 not in array.shape and np.isfinite(array).all()

    check()
