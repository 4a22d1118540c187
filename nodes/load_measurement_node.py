"""Load Measurement: a measurement read from a file in ComfyUI's input folder.

Reading is `dps.io.load_measurement_file`'s job (safe formats, no pickle, never outside the
input folder). This node turns what it read into y and checks y against the operator.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

import folder_paths
from comfy_api.latest import io

from ..dps.io import (
    MAX_FILE_BYTES,
    MeasurementFileNotFoundError,
    find_measurement_file,
    list_measurement_files,
    load_measurement_file,
)
from .image_layout import to_engine
from .measurement_nodes import (
    CATEGORY,
    make_measurement,
    measurement_output,
    noise_level_input,
    noise_model_input,
    operator_input,
    picture_as_measurement,
)

FILE_HELP = (
    "A file in ComfyUI's input folder. Pictures (.png, .tif/.tiff, 8- or 16-bit, grey or colour) can be "
    "uploaded with the button. Arrays (.npy without pickle, .safetensors; real or complex k-space) cannot be "
    "uploaded here: copy them into the input folder, then refresh (R). Array shapes: [h, w] is one "
    "channel, [C, h, w] one observation, [B, C, h, w] a batch."
)


def input_folder() -> Path:
    return Path(folder_paths.get_input_directory())


def locate(name) -> tuple[Path | None, str | None]:
    """(path, None) for a readable measurement file in the input folder, else (None, problem): the
    engine's own checks, for validation and fingerprinting before a run."""
    try:
        return find_measurement_file(name, input_folder()), None
    except MeasurementFileNotFoundError:
        return None, f"file: '{name}' was not found in the input folder; upload it or copy it there"
    except ValueError as error:
        return None, str(error)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def array_as_measurement(array: torch.Tensor, source: str) -> torch.Tensor:
    """[h, w] -> [1, 1, h, w]; [C, h, w] -> [1, C, h, w]; [B, C, h, w] as is. Real values become
    float32, complex ones complex64."""
    if array.dim() == 2:
        array = array[None, None]
    elif array.dim() == 3:
        array = array[None]
    elif array.dim() != 4:
        raise ValueError(f"{source}: expected an array of shape [h, w], [C, h, w] or [B, C, h, w], "
                         f"got {tuple(array.shape)}")
    dtype = torch.complex64 if array.is_complex() else torch.float32
    return array.to(dtype=dtype, memory_format=torch.contiguous_format)


class DPSLoadMeasurement(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = list_measurement_files(input_folder())
        return io.Schema(
            node_id="DPSLoadMeasurement",
            display_name="DPS Load Measurement",
            category=CATEGORY,
            description="Loads a measurement from a file in the input folder: a picture (turned into y by the "
                        "operator, as Measurement does) or an array taken as y directly (e.g. complex MRI k-space "
                        "for the Fourier Undersampling Operator, magnitudes for Phase Retrieval). The operator "
                        "must be the one that produced the file.",
            inputs=[
                io.Combo.Input("file", options=sorted(files), upload=io.UploadType.image, tooltip=FILE_HELP),
                operator_input(),
                noise_model_input(),
                noise_level_input(),
                io.String.Input("key", optional=True, default="",
                                tooltip="Only for .safetensors files holding several tensors: the name of the "
                                        "measurement tensor (a complex pair '<key>_real' / '<key>_imag' counts "
                                        "as '<key>'). Empty: the only tensor, else 'measurement' or 'y'."),
            ],
            outputs=[measurement_output("The loaded observation with its operator and noise model: connect it to "
                                        "DPS KSampler, DPS Guidance or DPS Empty Latent.")],
        )

    @classmethod
    def validate_inputs(cls, file) -> bool | str:
        _, problem = locate(file)
        return True if problem is None else problem

    @classmethod
    def fingerprint_inputs(cls, file, **kwargs):
        path, problem = locate(file)
        if problem is not None:
            return problem
        if path.stat().st_size > MAX_FILE_BYTES:
            return f"too large: {path.stat().st_size}"  # refused when loading anyway
        return file_digest(path)

    @classmethod
    def execute(cls, file, operator, noise_model, noise_level, key="") -> io.NodeOutput:
        loaded = load_measurement_file(file, input_folder(), key=key or None)
        source = f"file '{file}'"
        if loaded.kind == "image":
            y = picture_as_measurement(operator, to_engine(loaded.tensor, source), source)
        else:
            y = array_as_measurement(loaded.tensor, source)
        return io.NodeOutput(make_measurement(y, operator, noise_model, noise_level, source))


NODES = [DPSLoadMeasurement]
