"""The registry of guidance methods (dps/guidance/registry.py): a method is one function plus one
entry, and every entry keeps the calling convention the hosts rely on."""

import inspect

import pytest
import torch

from comfyui_dps.dps.guidance import METHODS, GuidanceMethod, method, mode_names
from comfyui_dps.dps.measurement import Measurement
from comfyui_dps.dps.noise import GaussianNoise
from comfyui_dps.dps.operators import GaussianBlur, Inpainting, PhaseRetrieval, RandomInpainting, SuperResolution

KEYWORDS = {"x", "sigma", "alpha", "denoise", "render", "measurement", "strength", "trace"}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_takes_the_keyword_arguments_only(name):
    entry = METHODS[name]
    assert entry.name == name and entry.description and not entry.description.endswith(" ")
    parameters = inspect.signature(entry.function).parameters
    # Methods with an inner iteration take `steps` too, defaulting to their own count.
    assert set(parameters) == KEYWORDS | ({"steps"} if entry.inner_steps else set())
    if entry.inner_steps:
        assert parameters["steps"].default is None
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert parameters["trace"].default is None


def test_the_flags_say_what_each_method_differentiates():
    assert METHODS["dps"].through_model and not METHODS["fast"].through_model
    assert not METHODS["dps"].needs_linear and not METHODS["fast"].needs_linear
    assert METHODS["pigdm"].through_model and METHODS["pigdm"].needs_linear
    assert not METHODS["proximal"].through_model and METHODS["proximal"].needs_linear
    assert METHODS["moment"].through_model and METHODS["moment"].needs_linear


def test_steps_reach_only_the_methods_that_iterate():
    seen = []

    def iterating(*, steps=None, **arguments):
        seen.append(steps)

    def plain(**arguments):
        seen.append("plain")

    GuidanceMethod("it", iterating, through_model=False, needs_linear=False, description="test",
                   inner_steps="inner iterations").call(steps=5, x=1)
    GuidanceMethod("it", iterating, through_model=False, needs_linear=False, description="test",
                   inner_steps="inner iterations").call(x=1)
    GuidanceMethod("plain", plain, through_model=False, needs_linear=False, description="test").call(steps=5, x=1)
    assert seen == [5, None, "plain"]


def test_an_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="guidance_mode: expected one of auto, dps, fast, pigdm.*'dsp'"):
        method("dsp")


def test_auto_picks_proximal_for_sr_and_blur_by_model_kind_for_masks_and_dps_for_non_linear():
    y = torch.rand(1, 3, 8, 8)
    masked = Measurement(y, Inpainting(torch.zeros(8, 8)), GaussianNoise(0.1))
    scattered = Measurement(y, RandomInpainting(0.5, seed=0), GaussianNoise(0.1))
    blurred = Measurement(y, GaussianBlur(3, 1.0), GaussianNoise(0.1))
    low = Measurement(torch.rand(1, 3, 4, 4), SuperResolution(2, "bicubic"), GaussianNoise(0.1))
    phase = Measurement(torch.rand(1, 3, 16, 16), PhaseRetrieval(2.0), GaussianNoise(0.1))
    for pixel_model in (False, True):
        assert method("auto", blurred, pixel_model) is METHODS["proximal"]
        assert method("auto", low, pixel_model) is METHODS["proximal"]
        assert method("auto", phase, pixel_model) is METHODS["dps"]
    # Holes: proximal kept to the images' range (pixel models); dps with latent models.
    assert method("auto", masked) is METHODS["dps"]
    assert method("auto", masked, pixel_model=True) is METHODS["proximal"]
    # Scattered masks: proximal's spectral covariance (pixel models only) fills them; else pigdm.
    assert method("auto", scattered) is METHODS["pigdm"]
    assert method("auto", scattered, pixel_model=True) is METHODS["proximal"]
    assert mode_names()[0] == "auto" and set(mode_names()[1:]) == set(METHODS)
    with pytest.raises(ValueError, match="guidance_mode: 'auto' picks a method for a measurement"):
        method("auto")


def test_a_method_that_needs_a_linear_operator_refuses_a_non_linear_one():
    linear_only = GuidanceMethod("linear-only", METHODS["dps"].function, through_model=True, needs_linear=True,
                                 description="test")
    y = torch.rand(1, 3, 8, 8)
    linear_only.check(Measurement(y, Inpainting(torch.zeros(8, 8)), GaussianNoise(0.1)))
    phase = Measurement(torch.rand(1, 3, 16, 16), PhaseRetrieval(2.0), GaussianNoise(0.1))
    with pytest.raises(ValueError, match="guidance_mode: 'linear-only' needs a linear operator"):
        linear_only.check(phase)
