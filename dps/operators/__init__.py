"""Forward operators A of the inverse problems, all following `Operator` (base.py)."""

from .base import Operator
from .blur import GaussianBlur, MotionBlur, gaussian_kernel
from .camera_shake import camera_shake_kernel
from .colorization import Colorization
from .composition import Composition
from .convolution import Convolution
from .fourier import FourierUndersampling
from .inpainting import Inpainting, RandomInpainting
from .phase_retrieval import PhaseRetrieval
from .super_resolution import SuperResolution

__all__ = [
    "Colorization",
    "Composition",
    "Convolution",
    "FourierUndersampling",
    "GaussianBlur",
    "Inpainting",
    "MotionBlur",
    "Operator",
    "PhaseRetrieval",
    "RandomInpainting",
    "SuperResolution",
    "camera_shake_kernel",
    "gaussian_kernel",
]
