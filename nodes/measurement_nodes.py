"""Measurement nodes: an observed picture, a simulated measurement, and a summary of one.

A DPS_MEASUREMENT is a `dps.measurement.Measurement`: the observation y [B, ...] with its
operator, its noise model and the size of the image it explains.
"""

from __future__ import annotations

import torch

from comfy_api.latest import io

from ..dps.measurement import Measurement, simulate
from ..dps.noise import GaussianNoise, PoissonNoise
from . import types
from .image_layout import to_comfy, to_engine

CATEGORY = "DPS/measurement"
NOISE_MODELS = ("gaussian", "poisson")


def noise_model_input():
    return io.Combo.Input(
        "noise_model", options=list(NOISE_MODELS), default="gaussian",
        tooltip="How the measurement is noisy. gaussian: additive noise of fixed strength (most cameras, "
                "scans, MRI). poisson: photon counting (low light, X-ray); needs a real, non-negative "
                "measurement.",
    )


def noise_level_input():
    return io.Float.Input(
        "noise_level", default=0.05, min=0.0, max=1e6, step=0.01,
        tooltip="gaussian: the noise's standard deviation on the [0, 1] pixel scale (0.05 as in the DPS paper; "
                "0 = noise-free apart from 8-bit rounding). poisson: the photon count at full intensity "
                "(e.g. 10 to 1000; more photons = less noise; must be > 0).",
    )


def operator_input(tooltip: str = "The forward model A (from an operator node) that produced the measurement."):
    return types.Operator.Input("operator", tooltip=tooltip)


def measurement_output(tooltip: str):
    return types.Measurement.Output(display_name="measurement", tooltip=tooltip)


def make_noise(noise_model: str, noise_level: float):
    """The engine's noise model for the two widgets (errors name `noise_level`)."""
    if noise_model == "gaussian":
        if not noise_level >= 0:
            raise ValueError(f"noise_level: for gaussian noise it is a standard deviation and must be >= 0, "
                             f"got {noise_level!r}")
        return GaussianNoise(noise_level)
    if noise_model == "poisson":
        if not noise_level > 0:
            raise ValueError(f"noise_level: for poisson noise it is the photon count at full intensity and must "
                             f"be > 0 (e.g. 100), got {noise_level!r}")
        return PoissonNoise(noise_level)
    raise ValueError(f"noise_model: expected one of {', '.join(NOISE_MODELS)}, got {noise_model!r}")


def check_explains(operator, y: torch.Tensor, source: str) -> tuple[int, int]:
    """(H, W) of the image that `y` explains under `operator`, after checking that the operator
    accepts an image of that size and produces a measurement shaped like y. Errors from the
    operator (e.g. "mask: size ... does not match the image size ...") pass through; the others
    name `source`, the input that gave y."""
    if y.dim() != 4 or 0 in y.shape:
        raise ValueError(f"{source}: expected a measurement of shape [batch, channels, height, width], "
                         f"got {tuple(y.shape)}")
    try:
        height, width = operator.image_size(tuple(y.shape[-2:]))
    except ValueError as error:
        message = str(error)
        if message.startswith("measurement:"):
            message = source + message[len("measurement"):]
        raise ValueError(message) from error
    with torch.no_grad():
        probe = operator(torch.zeros(y.shape[0], 3, height, width, device=y.device))
    if tuple(probe.shape[-2:]) != tuple(y.shape[-2:]):
        raise ValueError(f"{source}: is {y.shape[-1]}x{y.shape[-2]} (width x height), but {operator.name} turns a "
                         f"{width}x{height} image into a {probe.shape[-1]}x{probe.shape[-2]} measurement")
    if y.shape[1] not in (1, probe.shape[1]):
        raise ValueError(f"{source}: has {y.shape[1]} channels, but {operator.name} gives {probe.shape[1]} "
                         f"(a 1-channel measurement is also accepted)")
    if y.is_complex() != probe.is_complex():
        kind = "complex (k-space)" if probe.is_complex() else "real"
        got = "complex" if y.is_complex() else "real"
        raise ValueError(f"{source}: is {got}, but {operator.name} gives {kind} measurements")
    return height, width


def picture_as_measurement(operator, picture: torch.Tensor, source: str) -> torch.Tensor:
    """The operator's y for an observed picture [B, 3, h, w]; its errors name `source`."""
    try:
        return operator.measurement_from_image(picture)
    except ValueError as error:
        message = str(error)
        if message.startswith("image:"):
            message = message[len("image:"):].lstrip()
        raise ValueError(f"{source}: {message}") from error


def make_measurement(y: torch.Tensor, operator, noise_model: str, noise_level: float, source: str) -> Measurement:
    noise = make_noise(noise_model, noise_level)
    if isinstance(noise, PoissonNoise) and y.is_complex():
        raise ValueError("noise_model: poisson noise needs a real, non-negative measurement; a complex "
                         "measurement (k-space) needs gaussian noise")
    if isinstance(noise, PoissonNoise) and bool((y < 0).any()):
        raise ValueError(f"{source}: has negative values, but poisson noise counts photons (values >= 0); use "
                         f"gaussian noise")
    size = check_explains(operator, y, source)
    return Measurement(y=y, operator=operator, noise=noise, image_size=size)


class DPSMeasurement(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSMeasurement",
            display_name="DPS Measurement",
            category=CATEGORY,
            description="Turns an observed picture (the degraded photo you want to restore) into a measurement: "
                        "the picture, the operator that degraded it and the noise model. The picture is taken "
                        "at its own size: a low-resolution photo with a 4x Super-Resolution Operator explains "
                        "an image 4 times larger; a grey photo with the Colorization Operator is the luma.",
            inputs=[
                io.Image.Input("image", tooltip="The observed, degraded picture (e.g. from Load Image), values in "
                                                "[0, 1]. RGBA loses its alpha; grey is used as is."),
                operator_input(),
                noise_model_input(),
                noise_level_input(),
            ],
            outputs=[measurement_output("The observation with its operator and noise model: connect it to DPS "
                                        "KSampler, DPS Guidance or DPS Empty Latent.")],
        )

    @classmethod
    def execute(cls, image, operator, noise_model, noise_level) -> io.NodeOutput:
        y = picture_as_measurement(operator, to_engine(image, "image"), "image")
        return io.NodeOutput(make_measurement(y, operator, noise_model, noise_level, "image"))


class DPSSimulateMeasurement(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSSimulateMeasurement",
            display_name="DPS Simulate Measurement",
            category=CATEGORY,
            description="Degrades a clean image with an operator and noise, to try DPS on a known ground truth: "
                        "y = noise(A(image)). Also gives a viewable picture of y.",
            inputs=[
                io.Image.Input("image", tooltip="The clean picture to degrade, values in [0, 1]. RGBA loses its "
                                                "alpha; grey is used as RGB."),
                operator_input("The forward model A (from an operator node) to apply to the image."),
                noise_model_input(),
                noise_level_input(),
                types.seed_input("Seed of the noise; the same seed gives the same measurement."),
            ],
            outputs=[
                measurement_output("The simulated observation with its operator and noise model; it explains "
                                   "images of the input image's size."),
                io.Image.Output(display_name="degraded",
                                tooltip="The noisy measurement as a picture at the size of the image it explains, "
                                        "for Preview Image (e.g. the blurred image, the shrunk image enlarged by "
                                        "repeating its pixels, or the log-magnitude of k-space)."),
            ],
        )

    @classmethod
    def execute(cls, image, operator, noise_model, noise_level, seed) -> io.NodeOutput:
        x = to_engine(image, "image")
        measurement = simulate(x, operator, make_noise(noise_model, noise_level), seed)
        picture = at_image_size(operator.measurement_to_image(measurement.y), measurement.image_size)
        return io.NodeOutput(measurement, to_comfy(picture))


def at_image_size(picture: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A measurement picture [B, C, h, w] enlarged by pixel repetition (nearest neighbour) to the image
    size (H, W) it explains, when H and W are whole multiples of h and w: a 4x super-resolution
    measurement previews at the size of the result instead of as a thumbnail. Otherwise unchanged."""
    height, width = size
    h, w = picture.shape[-2:]
    if (h, w) == (height, width) or height % h or width % w:
        return picture
    return picture.repeat_interleave(height // h, dim=-2).repeat_interleave(width // w, dim=-1)


def describe(measurement: Measurement) -> str:
    y = measurement.y
    height, width = measurement.image_size
    kind = "complex" if y.is_complex() else "real"
    batch = "one observation for every sample" if y.shape[0] == 1 else f"{y.shape[0]} observations, one per sample"
    return (f"Operator: {measurement.operator.name}. Noise: {measurement.noise.describe()}. Measurement y: {kind}, shape "
            f"[{', '.join(map(str, y.shape))}] ({batch}). It explains images of {width}x{height} pixels "
            f"(width x height).")


class DPSMeasurementInfo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSMeasurementInfo",
            display_name="DPS Measurement Info",
            category=CATEGORY,
            description="Describes a measurement (operator, noise, shape of y) and gives the width and height of "
                        "the image it explains, e.g. to size an Empty Latent Image by hand.",
            inputs=[types.Measurement.Input("measurement", tooltip="The measurement to describe.")],
            outputs=[
                io.String.Output(display_name="info", tooltip="A one-paragraph description of the measurement."),
                io.Int.Output(display_name="width", tooltip="Width in pixels of the image the measurement explains."),
                io.Int.Output(display_name="height",
                              tooltip="Height in pixels of the image the measurement explains."),
            ],
        )

    @classmethod
    def execute(cls, measurement) -> io.NodeOutput:
        height, width = measurement.image_size
        return io.NodeOutput(describe(measurement), int(width), int(height))


NODES = [DPSMeasurement, DPSSimulateMeasurement, DPSMeasurementInfo]
