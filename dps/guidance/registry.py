"""Guidance methods by the name users pick. Adding a method = one function (its own module in
this package, keyword arguments as below) + one entry in METHODS.

Every method is called as

    function(x=, sigma=, alpha=, denoise=, render=, measurement=, strength=, trace=) -> D_y(x_t)

with x the noisy sample [B, ...] in model space, sigma and alpha the per-sample noise levels of
x_t = alpha x0 + sigma eps ([B]), denoise the model's denoiser (differentiable when the method
says `through_model`), render the model-space -> image map (with `encode` back), measurement a
`dps.measurement.Measurement`, strength the user's guidance strength and trace a GuidanceTrace
(or None). It returns the posterior denoised estimate, shaped and typed like D(x_t); methods end
with `core.corrected` so that all share one trace, bound and dtype rule. A method with an inner
iteration (`inner_steps` names what it counts) also takes `steps=` (None: its own default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..operators.inpainting import RandomInpainting, Masking
from .dps import dps_guidance
from .fast import fast_guidance
from .moment import moment_guidance
from .pigdm import pigdm_guidance
from .proximal import proximal_guidance


@dataclass(frozen=True)
class GuidanceMethod:
    name: str
    function: Callable
    #: True when the method back-propagates through the diffusion model (a model Jacobian):
    #: the host must keep the model's activations (and may checkpoint them).
    through_model: bool
    #: True when the method needs a linear operator (with an adjoint).
    needs_linear: bool
    #: One line for the node's tooltip: what it does and when to pick it.
    description: str
    #: What the method's `steps=` argument counts, or None when it has no inner iteration.
    inner_steps: str | None = None

    def check(self, measurement) -> None:
        """ValueError naming the guidance mode when the measurement's operator does not suit it."""
        if self.needs_linear and not measurement.operator.is_linear:
            raise ValueError(f"guidance_mode: {self.name!r} needs a linear operator, but "
                             f"{measurement.operator.name} is not linear; use 'dps' or 'fast'")

    def call(self, steps: int | None = None, **arguments):
        """The method on keyword `arguments`, with `steps` passed on only to methods that iterate."""
        if self.inner_steps is not None and steps is not None:
            return self.function(steps=steps, **arguments)
        return self.function(**arguments)


METHODS: dict[str, GuidanceMethod] = {m.name: m for m in [
    GuidanceMethod(
        "dps", dps_guidance, through_model=True, needs_linear=False,
        description="the paper's method: the misfit is back-propagated through the diffusion model and the "
                    "VAE decoder. Most faithful; pick it first. A step costs a forward and a backward of both "
                    "(about 10x a plain step at SD1.5 size on CPU).",
    ),
    GuidanceMethod(
        "fast", fast_guidance, through_model=False, needs_linear=False,
        description="the misfit is back-propagated through the VAE decoder only, at the current clean estimate: "
                    "no backward pass through the diffusion model. For models too large to differentiate (Flux, "
                    "SDXL at full size); with a VAE the decoder's backward still dominates (about 7x a plain step "
                    "at SD1.5 size on CPU), for pixel models it costs as much as plain sampling.",
    ),
    GuidanceMethod(
        "pigdm", pigdm_guidance, through_model=True, needs_linear=True,
        description="pseudoinverse guidance (PiGDM): like dps, back-propagated through the diffusion model and "
                    "the VAE decoder, but the misfit is weighted by the uncertainty of the current estimate "
                    "seen through the operator, and the step is set by the model's own covariance measured in "
                    "the same backward pass: no step-size rule. Linear operators only. On exact checks its "
                    "samples spread more like the true posterior than dps's and sit closer to its mean on "
                    "every operator; with pixel models its estimate is kept to the images' range. A step costs "
                    "a dps step plus a linear solve (iterative for bicubic super-resolution, blur and "
                    "compositions).",
    ),
    GuidanceMethod(
        "proximal", proximal_guidance, through_model=False, needs_linear=True,
        description="proximal data consistency (DiffPIR): the clean estimate is replaced by the image closest "
                    "to it that explains the measurement, solved exactly, 'closest' weighed by the model's own "
                    "covariance per spatial frequency with pixel models; no backward pass through the diffusion "
                    "model, so a step costs about a plain step (pixel models) or a plain step plus a few decoder "
                    "passes (latent models: solver_steps gradient steps, default 3). With pixel models its estimate "
                    "is kept to the images' range (auto's pick for every linear operator there). Linear "
                    "operators only; strength 1 is calibrated.",
        inner_steps="gradient steps on the latent through the VAE decoder (latent models)",
    ),
    GuidanceMethod(
        "moment", moment_guidance, through_model=True, needs_linear=True,
        description="moment matching: the estimate's own covariance (from the model's Jacobian) weighs the "
                    "misfit, exact for Gaussian priors. The most accurate on linear problems and the slowest: a "
                    "step costs a dps step plus one backward pass per solver iteration (solver_steps, default 8).",
        inner_steps="conjugate-gradient iterations, each a backward pass through the model",
    ),
]}


#: The nodes' default mode: not a method of its own, a choice per measurement (see `method`).
AUTO = "auto"
AUTO_DESCRIPTION = ("the default: proximal for super-resolution, blur, colourisation and k-space, and for random "
                    "(scattered) inpainting masks and masks with holes (Inpainting Operator) with pixel "
                    "models; with latent models pigdm for scattered masks and dps for holes; dps for "
                    "non-linear operators (phase retrieval). The best per "
                    "task in the pack's measurements; pick a mode yourself to compare.")


def auto_choice(operator, pixel_model: bool = False) -> str:
    """What `auto` picks for `operator` (and a pixel model, or a latent one), from the pack's
    measurements (README, "How auto chooses"). Where A measures nothing (the holes of a mask) only
    the prior moves the estimate: proximal with the model's spectral covariance (pixel models,
    spectral.py) fills scattered holes from their measured neighbours and beat pigdm there on
    photographs at half the cost; with the isotropic covariance it must assume for latent models it
    fills nothing (80% random inpainting fell 4-7 dB below the classical baseline), and pigdm's mean
    was closer to the truth than dps's (exact checks 9 of 9; photos +0.56 dB). On a contiguous hole
    proximal, with its estimate kept to the images' range, beat pigdm and dps with pixel models (6 box
    positions on the tuning photographs: mean +0.9 dB over pigdm, +2.2 dB over dps) at about 0.6x
    their cost; latent models keep dps there, where that was not measured."""
    if not operator.is_linear:
        return "dps"
    if pixel_model:
        return "proximal"
    if isinstance(operator, RandomInpainting):
        return "pigdm"
    if isinstance(operator, Masking):
        return "dps"
    return "proximal"


def mode_names() -> list[str]:
    """The values of the nodes' guidance_mode: auto first, then every method."""
    return [AUTO, *METHODS]


def method(name: str, measurement=None, pixel_model: bool = False) -> GuidanceMethod:
    """The method called `name` (for `auto`, the one it picks for `measurement` and the kind of
    model), or a ValueError that lists the choices."""
    if name == AUTO:
        if measurement is None:
            raise ValueError("guidance_mode: 'auto' picks a method for a measurement, and none was given")
        return METHODS[auto_choice(measurement.operator, pixel_model)]
    if name not in METHODS:
        raise ValueError(f"guidance_mode: expected one of {', '.join(mode_names())}, got {name!r}")
    return METHODS[name]
