"""Guidance: how a diffusion model's denoised estimate becomes a posterior one, given a
measurement. `core` holds what every method shares, `likelihood` the loss they differentiate,
one module per method (`dps`, `fast`), and `registry` the methods by name."""

from .core import GuidanceTrace, at_least_float32, posterior_scale, prior_covariance_scale
from .registry import METHODS, GuidanceMethod, method

__all__ = ["METHODS", "GuidanceMethod", "GuidanceTrace", "at_least_float32", "method", "posterior_scale",
           "prior_covariance_scale"]
