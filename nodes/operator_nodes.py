"""Operator nodes: each builds one forward model A of `dps.operators` from widget values.

The nodes only translate ComfyUI values into engine objects; every check on the values is the
engine's, re-labelled with the node's input name where the two differ.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..dps.operators import (
    Colorization,
    Composition,
    FourierUndersampling,
    GaussianBlur,
    Inpainting,
    MotionBlur,
    PhaseRetrieval,
    RandomInpainting,
    SuperResolution,
)
from ..dps.operators.super_resolution import FACTORS, KERNELS
from . import types
from .image_layout import to_comfy, to_engine

CATEGORY = "DPS/operators"


def operator_output(what: str) -> io.Output:
    return types.Operator.Output(
        display_name="operator",
        tooltip=f"The forward model A ({what}). Connect it to Measurement, Simulate Measurement or "
                "Load Measurement.",
    )


def relabel(error: ValueError, engine_name: str, input_name: str) -> ValueError:
    """The engine's error with its parameter name replaced by the node's input name."""
    message = str(error)
    if message.startswith(engine_name + ":"):
        message = input_name + message[len(engine_name):]
    return ValueError(message)


class DPSInpaintingOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSInpaintingOperator",
            display_name="DPS Inpainting Operator",
            category=CATEGORY,
            description="Inpainting with a fixed mask: the measurement is the image with the masked pixels "
                        "removed. The mask follows ComfyUI's convention (white = 1 = missing, to be generated), "
                        "so a mask from Load Image, a mask editor or Solid Mask works as is.",
            inputs=[
                io.Mask.Input("mask", tooltip="1 (white) = missing pixels to generate, 0 (black) = kept pixels; "
                                              "values in between weight a pixel partly. Its size must equal "
                                              "the image size."),
            ],
            outputs=[operator_output("masking")],
        )

    @classmethod
    def execute(cls, mask) -> io.NodeOutput:
        return io.NodeOutput(Inpainting(mask))


class DPSRandomInpaintingOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSRandomInpaintingOperator",
            display_name="DPS Random Inpainting Operator",
            category=CATEGORY,
            description="Inpainting with randomly scattered missing pixels (all channels of a pixel together), "
                        "as in the DPS paper's random-inpainting task. The mask depends only on the seed and the "
                        "image size, so it stays the same from run to run.",
            inputs=[
                io.Float.Input("missing_fraction", default=0.92, min=0.0, max=0.99, step=0.01,
                               tooltip="Fraction of pixels that are missing (the DPS paper used 0.92)."),
                types.seed_input("Seed of the random mask; the same seed gives the same mask."),
            ],
            outputs=[operator_output("random pixel masking")],
        )

    @classmethod
    def execute(cls, missing_fraction, seed) -> io.NodeOutput:
        return io.NodeOutput(RandomInpainting(missing_fraction, seed))


class DPSSuperResolutionOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSSuperResolutionOperator",
            display_name="DPS Super-Resolution Operator",
            category=CATEGORY,
            description="Super-resolution: the measurement is the image shrunk by an integer factor. A low-resolution "
                        "picture fed to Measurement explains an image 'scale_factor' times larger.",
            inputs=[
                io.Int.Input("scale_factor", default=4, min=min(FACTORS), max=max(FACTORS),
                             tooltip=f"How many times smaller the measurement is than the image: one of "
                                     f"{', '.join(map(str, FACTORS))}. Image width and height must be multiples "
                                     f"of it."),
                io.Combo.Input("kernel", options=list(KERNELS), default="bicubic",
                               tooltip="How the image was shrunk: 'bicubic' (antialiased, as PIL and most "
                                       "resizers do) or 'average' (mean of each scale_factor x scale_factor "
                                       "block)."),
            ],
            outputs=[operator_output("downsampling")],
        )

    @classmethod
    def validate_inputs(cls, scale_factor) -> bool | str:
        # None: the value comes from a link and is checked when the node runs.
        if scale_factor is None or scale_factor in FACTORS:
            return True
        return f"scale_factor: expected one of {', '.join(map(str, FACTORS))}, got {scale_factor!r}"

    @classmethod
    def execute(cls, scale_factor, kernel) -> io.NodeOutput:
        return io.NodeOutput(SuperResolution(scale_factor, kernel))


class DPSGaussianBlurOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSGaussianBlurOperator",
            display_name="DPS Gaussian Blur Operator",
            category=CATEGORY,
            description="Deblurring: the measurement is the image blurred by a Gaussian (the DPS paper used a 61x61 "
                        "kernel with sigma 3.0). Borders are extended by reflection.",
            inputs=[
                io.Int.Input("kernel_size", default=61, min=1, max=255, step=2,
                             tooltip="Width and height of the blur kernel in pixels; must be odd so the blur "
                                     "does not shift the image. About 6 x sigma + 1 covers the whole Gaussian."),
                io.Float.Input("sigma", default=3.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Standard deviation of the Gaussian in pixels (0 = no blur)."),
            ],
            outputs=[operator_output("Gaussian blur")],
        )

    @classmethod
    def execute(cls, kernel_size, sigma) -> io.NodeOutput:
        return io.NodeOutput(GaussianBlur(kernel_size, sigma))


class DPSMotionBlurOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSMotionBlurOperator",
            display_name="DPS Motion Blur Operator",
            category=CATEGORY,
            description="Deblurring of camera shake: the measurement is the image blurred by a motion kernel, either "
                        "a random camera-shake path drawn from the seed (as in the DPS paper: 61x61, intensity 0.5) "
                        "or your own kernel picture.",
            inputs=[
                io.Int.Input("kernel_size", default=61, min=3, max=255, step=2,
                             tooltip="Width and height of the random kernel in pixels (odd). Ignored when a "
                                     "kernel_image is connected."),
                io.Float.Input("intensity", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="How long and erratic the random shake is (0 = short and straight, "
                                       "1 = long and curly). Ignored when a kernel_image is connected."),
                types.seed_input("Seed of the random kernel; the same seed gives the same kernel. Ignored "
                                 "when a kernel_image is connected."),
                io.Image.Input("kernel_image", optional=True,
                               tooltip="Optional: a picture of the blur kernel (bright = where light went). It is "
                                       "made grey and normalised to sum 1; one picture, not a batch."),
            ],
            outputs=[operator_output("motion blur")],
        )

    @classmethod
    def execute(cls, kernel_size, intensity, seed, kernel_image=None) -> io.NodeOutput:
        if kernel_image is None:
            try:
                return io.NodeOutput(MotionBlur.camera_shake(kernel_size, intensity, seed))
            except ValueError as error:
                raise relabel(error, "size", "kernel_size") from error
        if kernel_image.dim() != 4 or kernel_image.shape[0] != 1:
            raise ValueError(f"kernel_image: expected one picture [1, height, width, channels], "
                             f"got shape {tuple(kernel_image.shape)}")
        grey = to_engine(kernel_image, "kernel_image")[0].mean(dim=0)
        try:
            return io.NodeOutput(MotionBlur(grey))
        except ValueError as error:
            raise relabel(error, "kernel", "kernel_image") from error


class DPSColorizationOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSColorizationOperator",
            display_name="DPS Colorization Operator",
            category=CATEGORY,
            description="Colourisation: the measurement is the grey (luma, ITU-R BT.601) version of a colour image. "
                        "A grey or colour picture fed to Measurement is used as the luma.",
            inputs=[],
            outputs=[operator_output("RGB to luma")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(Colorization())


class DPSFourierUndersamplingOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSFourierUndersamplingOperator",
            display_name="DPS Fourier Undersampling Operator (MRI)",
            category=CATEGORY,
            description="Accelerated MRI: the measurement is the image's 2-D Fourier transform (k-space, orthonormal, "
                        "centred: frequency 0 in the middle, as fastMRI files store it) with only some columns kept: the central low frequencies "
                        "always, the rest at random. Its measurements are complex: load them from a file or "
                        "simulate them.",
            inputs=[
                io.Float.Input("acceleration", default=4.0, min=1.0, max=64.0, step=0.5,
                               tooltip="Undersampling factor: about 1 in 'acceleration' columns of k-space is "
                                       "kept."),
                io.Float.Input("center_fraction", default=0.08, min=0.001, max=1.0, step=0.01,
                               tooltip="Fraction of columns at the centre of k-space that are always kept; at "
                                       "most 1 / acceleration (fastMRI uses 0.08 with acceleration 4)."),
                types.seed_input("Seed of the random column pattern; the same seed gives the same pattern."),
            ],
            outputs=[operator_output("undersampled Fourier transform")],
        )

    @classmethod
    def execute(cls, acceleration, center_fraction, seed) -> io.NodeOutput:
        return io.NodeOutput(FourierUndersampling(acceleration, center_fraction, seed))


class DPSPhaseRetrievalOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSPhaseRetrievalOperator",
            display_name="DPS Phase Retrieval Operator",
            category=CATEGORY,
            description="Fourier phase retrieval: the measurement is the magnitude of the Fourier transform of the "
                        "zero-padded image, the phase is lost. Non-linear; load its measurements from a file or "
                        "simulate them.",
            inputs=[
                io.Float.Input("oversampling", default=2.0, min=1.0, max=8.0, step=0.1,
                               tooltip="The image is padded with zeros to this many times its width and height "
                                       "before the transform (2.0 is the usual choice)."),
            ],
            outputs=[operator_output("Fourier magnitude")],
        )

    @classmethod
    def execute(cls, oversampling) -> io.NodeOutput:
        return io.NodeOutput(PhaseRetrieval(oversampling))


class DPSComposeOperators(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSComposeOperators",
            display_name="DPS Compose Operators",
            category=CATEGORY,
            description="Two degradations in a row: the image goes through 'first', its result through 'second' "
                        "(e.g. first a blur, then super-resolution).",
            inputs=[
                types.Operator.Input("first", tooltip="The operator applied to the image first."),
                types.Operator.Input("second", tooltip="The operator applied to the result of 'first'."),
            ],
            outputs=[operator_output("first, then second")],
        )

    @classmethod
    def execute(cls, first, second) -> io.NodeOutput:
        return io.NodeOutput(Composition(first, second))


class DPSPreviewOperator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSPreviewOperator",
            display_name="DPS Preview Operator",
            category=CATEGORY,
            description="Shows what an operator does to a picture (the noise-free measurement A(image), as a "
                        "viewable picture), to check an operator before sampling. Connect the result to Preview "
                        "Image.",
            inputs=[
                io.Image.Input("image", tooltip="A picture to degrade; RGBA loses its alpha, grey is used as RGB."),
                types.Operator.Input("operator", tooltip="The operator to preview."),
            ],
            outputs=[
                io.Image.Output(display_name="degraded",
                                tooltip="A(image) as a picture: e.g. the blurred, shrunk or masked image, the luma, "
                                        "or the log-magnitude of k-space."),
            ],
        )

    @classmethod
    def execute(cls, image, operator) -> io.NodeOutput:
        x = to_engine(image, "image")
        return io.NodeOutput(to_comfy(operator.measurement_to_image(operator(x))))


NODES = [
    DPSInpaintingOperator,
    DPSRandomInpaintingOperator,
    DPSSuperResolutionOperator,
    DPSGaussianBlurOperator,
    DPSMotionBlurOperator,
    DPSColorizationOperator,
    DPSFourierUndersamplingOperator,
    DPSPhaseRetrievalOperator,
    DPSComposeOperators,
    DPSPreviewOperator,
]
