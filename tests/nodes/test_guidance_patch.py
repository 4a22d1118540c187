"""The PREDICT_NOISE patch (nodes/guidance_patch.py) with ComfyUI's real sampling code and a tiny
pixel-space model: what it calls, what it refuses, and how it recovers when memory runs out."""

import pytest
import torch

from testkit.host import load_pack

load_pack()

import comfy.model_management  # noqa: E402
import comfy.patcher_extension  # noqa: E402
import comfy.sample  # noqa: E402
from testkit.tiny_models import tiny_conditioning, tiny_unet  # noqa: E402

from comfyui_dps.dps.guidance import METHODS, GuidanceMethod  # noqa: E402
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import GaussianBlur, PhaseRetrieval  # noqa: E402
from comfyui_dps.nodes import checkpointing  # noqa: E402
from comfyui_dps.nodes.guidance_patch import WRAPPER_KEY, guided_model  # noqa: E402

SIDE = 16


@pytest.fixture(scope="module")
def setup():
    with torch.inference_mode():  # as ComfyUI runs nodes
        model = tiny_unet("eps", pixel=True)
        picture = torch.rand(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
        measurement = simulate(picture, GaussianBlur(5, 1.5), GaussianNoise(0.05), seed=3)
    return model, measurement


def sample(model, steps=2, seed=0):
    cond = tiny_conditioning()
    noise = torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return comfy.sample.sample(model, noise, steps, 1.0, "euler", "normal", cond, cond, torch.zeros_like(noise),
                                   disable_pbar=True, seed=seed)


def test_the_patch_goes_on_a_clone_and_calls_the_method_once_per_model_call(setup):
    model, measurement = setup
    calls = []

    def spy(**kwargs):
        calls.append(sorted(kwargs))
        return METHODS["fast"].function(**kwargs)

    method = GuidanceMethod("spy", spy, through_model=False, needs_linear=False, description="test")
    patched, patch = guided_model(model, measurement, "ignored", 1.0, guidance=method)
    assert patched is not model
    assert not model.get_wrappers(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY)
    assert patched.get_wrappers(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY) == [patch]
    sample(patched, steps=3)
    assert len(calls) == 3 and len(patch.trace.sigmas) == 3
    assert calls[0] == ["alpha", "denoise", "measurement", "render", "sigma", "strength", "trace", "x"]


def test_strength_zero_is_plain_sampling(setup):
    model, measurement = setup
    patched, patch = guided_model(model, measurement, "dps", 0.0)
    assert torch.equal(sample(patched), sample(model))
    assert patch.trace.sigmas == []


def test_auto_becomes_proximal_for_a_blur_measurement_and_dps_for_phase_retrieval(setup):
    model, measurement = setup
    _, patch = guided_model(model, measurement, "auto", 1.0)
    assert patch.method is METHODS["proximal"]
    with torch.inference_mode():
        phase = simulate(torch.rand(1, 3, SIDE, SIDE), PhaseRetrieval(2.0), GaussianNoise(0.05), seed=0)
    patched, patch = guided_model(model, phase, "auto", 1.0)
    assert patch.method is METHODS["dps"]
    assert torch.isfinite(sample(patched)).all() and len(patch.trace.sigmas) == 2


def test_bad_settings_are_clear_errors(setup):
    model, measurement = setup
    with pytest.raises(ValueError, match="guidance_mode: expected one of auto, dps, fast"):
        guided_model(model, measurement, "nope", 1.0)
    with pytest.raises(ValueError, match="guidance_strength: expected a finite number >= 0, got -1"):
        guided_model(model, measurement, "dps", -1.0)
    with torch.inference_mode():
        phase = simulate(torch.rand(1, 3, SIDE, SIDE), PhaseRetrieval(2.0), GaussianNoise(0.05), seed=0)
    linear_only = GuidanceMethod("linear-only", METHODS["dps"].function, True, True, "test")
    with pytest.raises(ValueError, match="guidance_mode: 'linear-only' needs a linear operator"):
        guided_model(model, phase, "ignored", 1.0, guidance=linear_only)


def test_out_of_memory_retries_the_step_checkpointed_and_keeps_checkpointing(setup, monkeypatch):
    """Speed first: the step runs without checkpointing; when memory runs out it is run again
    checkpointed, and so are the steps after it. A second failure, checkpointed, is the user's."""
    model, measurement = setup
    monkeypatch.setattr(checkpointing, "GRADIENT_CHECKPOINTING", "auto")
    monkeypatch.setattr(checkpointing, "CHECKPOINT_MEMORY_FRACTION", float("inf"))  # never by the estimate
    decisions, failures = [], [1]

    def short_of_memory_once(**kwargs):
        decisions.append(patch.checkpointing.decide(kwargs["x"]).model)
        if failures:
            failures.pop()
            raise comfy.model_management.OOM_EXCEPTION("out of memory (test)")
        return METHODS["dps"].function(**kwargs)

    method = GuidanceMethod("oom", short_of_memory_once, through_model=True, needs_linear=False, description="test")
    patched, patch = guided_model(model, measurement, "ignored", 1.0, guidance=method)
    reference, _ = guided_model(model, measurement, "dps", 1.0)
    assert torch.equal(sample(patched), sample(reference))  # checkpointing changes no result
    assert decisions == [False, True, True] and patch.checkpointing.short_of_memory

    def always_short(**kwargs):
        raise comfy.model_management.OOM_EXCEPTION("out of memory (test)")

    patched, _ = guided_model(model, measurement, "ignored", 1.0,
                              guidance=GuidanceMethod("oom", always_short, True, False, "test"))
    with pytest.raises(comfy.model_management.OOM_EXCEPTION):
        sample(patched)


def test_a_model_family_that_adds_no_noise_is_refused_by_name(setup):
    """Image-to-image families of newer ComfyUI (IMG_TO_IMG_FLOW) start from an image: noise scale 0."""
    model, measurement = setup
    sampling = model.get_model_object("model_sampling")

    class ImageToImage(type(sampling)):
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return latent_image

    image_to_image = ImageToImage.__new__(ImageToImage)
    image_to_image.__dict__.update(sampling.__dict__)
    image_to_image._buffers, image_to_image._modules = dict(sampling._buffers), dict(sampling._modules)
    variant = model.clone()
    variant.add_object_patch("model_sampling", image_to_image)
    patched, _ = guided_model(variant, measurement, "dps", 1.0)
    with pytest.raises(ValueError, match=r"model: BaseModel's sampling \(ImageToImage\) adds no noise of scale sigma"):
        sample(patched)
