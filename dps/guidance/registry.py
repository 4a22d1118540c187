"""Guidance methods by the name users pick. Adding a method = one function (its own module in
this package, keyword arguments as below) + one entry in METHODS.

Every method is called as

    function(x=, sigma=, alpha=, denoise=, render=, measurement=, strength=, trace=) -> D_y(x_t)

with x the noisy sample [B, ...] in model space, sigma and alpha the per-sample noise levels of
x_t = alpha x0 + sigma eps ([B]), denoise the model's denoiser (differentiable when the method
says `through_model`), render the model-space -> image map (with `encode` back), measurement a
`dps.measurement.Measurement`, strength the user's guidance strength and trace a GuidanceTrace
(or None). It returns the posterior denoised estimate, shaped and typed like D(x_t); methods end
with `core.corrected` so that all share one trace, bound and dtype rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .dps import dps_guidance
from .fast import fast_guidance
from .pigdm import pigdm_guidance


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

    def check(self, measurement) -> None:
        """ValueError naming the guidance mode when the measurement's operator does not suit it."""
        if self.needs_linear and not measurement.operator.is_linear:
            raise ValueError(f"guidance_mode: {self.name!r} needs a linear operator, but "
                             f"{measurement.operator.name} is not linear; use 'dps' or 'fast'")


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
                    "seen through the operator, so no step-size rule is needed. Linear operators only. On exact "
                    "checks its samples spread like the true posterior (dps's are too tight) but sit further from "
                    "its mean in inpainting and blur. A step costs a dps step plus a linear solve (iterative for "
                    "bicubic super-resolution, padded blur and compositions).",
    ),
]}


def method(name: str) -> GuidanceMethod:
    """The method called `name`, or a ValueError that lists the choices."""
    if name not in METHODS:
        raise ValueError(f"guidance_mode: expected one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]
