"""Guidance: how a diffusion model's denoised estimate becomes a posterior one, given a
measurement. `core` holds what every method shares, `likelihood` the loss they differentiate,
one module per method (`dps`, `fast`, `pigdm`, `proximal`, `moment`), and `registry` the methods
by name (and `auto`, the default choice among them)."""

from .core import GuidanceTrace, at_least_float32, posterior_scale, prior_covariance_scale
from .registry import AUTO, AUTO_DESCRIPTION, METHODS, GuidanceMethod, method, mode_names

__all__ = ["AUTO", "AUTO_DESCRIPTION", "METHODS", "GuidanceMethod", "GuidanceTrace", "at_least_float32", "method",
           "mode_names", "posterior_scale", "prior_covariance_scale"]
