"""Safe loading of measurements from files in ComfyUI's input folder.

`load_measurement_file(name, root)` reads one file whose name is relative to `root`;
`list_measurement_files(root)` lists the files it can read; `find_measurement_file` runs the checks
of a name without reading the file. Every problem with a file (path outside `root`, missing, empty,
too large, truncated, corrupt, wrong format, pickled, non-finite values) is a ValueError whose message
names the file.

Formats, chosen by extension and checked against the file's first bytes:

* .png, .tif, .tiff -> kind "image", ComfyUI's IMAGE layout [1, H, W, C] (see images.py);
* .npy -> kind "array", read without pickle (npy.py);
* .safetensors -> kind "array", with the complex conventions of safetensors_file.py.

Arrays follow one dtype policy and must be finite (arrays.py). Files over 512 MiB, images over
16384 pixels on a side and any tensor over 2**28 values are refused before being decoded (limits.py).
No pickle, eval, subprocess, network access or environment variables are used.

Modules: sandbox (names inside the input folder), formats (extension and content), limits, arrays,
npy, safetensors_file, images with png_files and tiff_files, and loader (the entry points).
"""

from .limits import MAX_ELEMENTS, MAX_FILE_BYTES, MAX_SIDE
from .formats import SUPPORTED_EXTENSIONS
from .loader import LoadedArray, find_measurement_file, list_measurement_files, load_measurement_file
from .sandbox import MeasurementFileNotFoundError

__all__ = [
    "MAX_ELEMENTS",
    "MAX_FILE_BYTES",
    "MAX_SIDE",
    "SUPPORTED_EXTENSIONS",
    "LoadedArray",
    "MeasurementFileNotFoundError",
    "find_measurement_file",
    "list_measurement_files",
    "load_measurement_file",
]
