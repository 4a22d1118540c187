"""The modes for linear operators (`pigdm`, `proximal`, `moment`) through DPS KSampler and DPS
Guidance in-process, with ComfyUI's real sampling code and tiny models: pixel and latent models of
every family, closed-form and conjugate-gradient operators, solver steps, strength 0 bit-identical
to KSampler, and the refusal of a non-linear operator."""

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

import comfy.sample  # noqa: E402
import comfy.utils  # noqa: E402
from testkit.tiny_models import pixel_space_vae, tiny_conditioning, tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise  # noqa: E402
from comfyui_dps.dps.operators import (  # noqa: E402
    GaussianBlur, PhaseRetrieval, RandomInpainting, SuperResolution)
from comfyui_dps.nodes.sampling_nodes import DPSGuidance, DPSKSampler  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False

MODES = ["pigdm", "proximal", "moment"]

OPERATORS = {
    "random inpainting (diagonal)": lambda: RandomInpainting(0.7, seed=1),
    "average SR (per block)": lambda: SuperResolution(2, "average"),
    "reflect blur (conjugate gradients)": lambda: GaussianBlur(5, 1.5),
}


def picture(side=32):
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic").clamp(0, 1)


@pytest.fixture(scope="module")
def pixel_model():
    with torch.inference_mode():  # as ComfyUI runs nodes
        return tiny_unet("eps", pixel=True), pixel_space_vae(), tiny_conditioning()


def run(model, vae, cond, measurement, latent, strength=1.0, seed=0, sampler="euler_ancestral", steps=3,
        mode="pigdm", solver_steps=0):
    with torch.inference_mode():
        return DPSKSampler.execute(model, seed, steps, 1.0, sampler, "normal", cond, cond, latent, 1.0,
                                   measurement, strength, mode, vae, solver_steps)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(OPERATORS))
def test_each_mode_samples_a_pixel_model_through_the_node(pixel_model, name, mode):
    model, vae, cond = pixel_model
    with torch.inference_mode():
        measurement = simulate(picture(), OPERATORS[name](), GaussianNoise(0.05), seed=3)
    latent = {"samples": torch.zeros(1, 3, 32, 32)}
    result, plot, report = run(model, vae, cond, measurement, latent, mode=mode).args
    samples = result["samples"]
    assert samples.shape == (1, 3, 32, 32) and torch.isfinite(samples).all()
    assert report.count("residual =") == 1 and plot.ndim == 4
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent["samples"], 0)
        plain = comfy.sample.sample(model, noise, 3, 1.0, "euler_ancestral", "normal", cond, cond,
                                    latent["samples"], disable_pbar=True, seed=0)
    assert not torch.equal(samples, plain)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_at_strength_zero_is_plain_sampling(pixel_model, mode):
    model, vae, cond = pixel_model
    with torch.inference_mode():
        measurement = simulate(picture(), SuperResolution(2, "bicubic"), GaussianNoise(0.05), seed=3)
    latent = {"samples": torch.zeros(1, 3, 32, 32)}
    guided = run(model, vae, cond, measurement, latent, strength=0.0, seed=3, sampler="euler",
                 mode=mode).args[0]["samples"]
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent["samples"], 3)
        plain = comfy.sample.sample(model, noise, 3, 1.0, "euler", "normal", cond, cond, latent["samples"],
                                    disable_pbar=True, seed=3)
    assert torch.equal(guided, plain)


@pytest.mark.parametrize("family", ["eps", "v_prediction", "flow"])
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_under_poisson_noise_through_a_latent_models_decoder(mode, family):
    with torch.inference_mode():
        model, vae, cond = tiny_unet(family), tiny_taesd_vae(), tiny_conditioning()
        measurement = simulate(picture(64), SuperResolution(2, "average"), PoissonNoise(50.0), seed=3)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    before = latent["samples"].clone()
    result, _, report = run(model, vae, cond, measurement, latent, sampler="euler", mode=mode, solver_steps=2).args
    assert result["samples"].shape == (1, 4, 8, 8) and torch.isfinite(result["samples"]).all()
    assert "residual =" in report and torch.equal(latent["samples"], before)


@pytest.mark.parametrize("mode", ["proximal", "moment"])
def test_solver_steps_change_what_iterating_modes_do(mode):
    with torch.inference_mode():
        model, vae, cond = tiny_unet("eps"), tiny_taesd_vae(), tiny_conditioning()
        measurement = simulate(picture(64), GaussianBlur(5, 1.5), GaussianNoise(0.05), seed=3)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    one = run(model, vae, cond, measurement, latent, sampler="euler", mode=mode, solver_steps=1).args[0]["samples"]
    default = run(model, vae, cond, measurement, latent, sampler="euler", mode=mode).args[0]["samples"]
    assert not torch.equal(one, default)


def test_negative_solver_steps_are_refused_by_name(pixel_model):
    model, vae, cond = pixel_model
    with torch.inference_mode():
        measurement = simulate(picture(), SuperResolution(2, "average"), GaussianNoise(0.05), seed=3)
    with torch.inference_mode(), pytest.raises(ValueError, match="solver_steps: expected 0"):
        DPSGuidance.execute(model, measurement, 1.0, "moment", vae, -1)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_refuses_phase_retrieval_naming_the_mode_and_the_operator(pixel_model, mode):
    model, vae, cond = pixel_model
    with torch.inference_mode():
        phase = simulate(picture(16), PhaseRetrieval(2.0), GaussianNoise(0.05), seed=0)
    with torch.inference_mode(), pytest.raises(ValueError, match=f"guidance_mode: '{mode}' needs a linear operator, "
                                                                  "but phase retrieval"):
        DPSGuidance.execute(model, phase, 1.0, mode, vae)
