"""DPS KSampler and DPS Guidance in-process with ComfyUI's real sampling code and tiny models."""

import hashlib

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

import comfy.sample  # noqa: E402
import comfy.utils  # noqa: E402
from testkit.tiny_models import pixel_space_vae, tiny_conditioning, tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import GaussianBlur, SuperResolution  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402
from comfyui_dps.nodes.sampling_nodes import DPSEmptyLatent, DPSGuidance, DPSKSampler  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False


def digest(tensor):
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def setup():
    with torch.inference_mode():  # as ComfyUI runs nodes
        model = tiny_unet("eps", pixel=True)
        vae = pixel_space_vae()
        generator = torch.Generator().manual_seed(0)
        coarse = torch.rand(1, 3, 8, 8, generator=generator)
        picture = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bicubic").clamp(0, 1)
        measurement = simulate(picture, GaussianBlur(5, 1.5), GaussianNoise(0.05), seed=3)
    return model, vae, measurement, tiny_conditioning()


def run_ksampler(setup, latent, seed=0, sampler="euler", steps=4, strength=1.0, mode="dps"):
    model, vae, measurement, cond = setup
    with torch.inference_mode():
        return DPSKSampler.execute(model, seed, steps, 1.0, sampler, "normal", cond, cond, latent, 1.0,
                                   measurement, strength, mode, vae)


def test_same_seed_same_result_and_inputs_untouched(setup):
    model, vae, measurement, _ = setup
    latent = {"samples": torch.zeros(2, 3, 32, 32)}
    before = {"latent": digest(latent["samples"]), "y": digest(measurement.y),
              "weights": [digest(p) for p in list(model.model.parameters())[:5]]}
    first = run_ksampler(setup, latent, seed=7, sampler="euler_ancestral")
    second = run_ksampler(setup, latent, seed=7, sampler="euler_ancestral")
    other = run_ksampler(setup, latent, seed=8, sampler="euler_ancestral")
    assert torch.equal(first.args[0]["samples"], second.args[0]["samples"])
    assert not torch.equal(first.args[0]["samples"], other.args[0]["samples"])
    after = {"latent": digest(latent["samples"]), "y": digest(measurement.y),
             "weights": [digest(p) for p in list(model.model.parameters())[:5]]}
    assert before == after
    assert model.get_wrappers("predict_noise", "comfyui_dps_guidance") == []


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_each_sample_of_a_batch_equals_that_sample_run_alone(setup, sampler):
    """The plug-in variance is per sample: no sample may depend on its batch mates."""
    model, vae, measurement, cond = setup
    patched, _ = guided_model(model, measurement, "dps", 1.0, vae)
    noise = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    latent = torch.zeros(3, 3, 32, 32)
    with torch.inference_mode():
        batch = comfy.sample.sample(patched, noise, 4, 1.0, sampler, "normal", cond, cond, latent,
                                    disable_pbar=True, seed=0)
        alone = comfy.sample.sample(patched, noise[1:2], 4, 1.0, sampler, "normal", cond, cond, latent[1:2],
                                    disable_pbar=True, seed=0)
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-4, atol=1e-4)


def test_reports_residuals_and_a_plot(setup):
    latent = {"samples": torch.zeros(2, 3, 32, 32)}
    out = run_ksampler(setup, latent, steps=3)
    result, plot, report = out.args
    assert result["samples"].shape == (2, 3, 32, 32)
    assert plot.ndim == 4 and plot.shape[-1] == 3 and 0 <= plot.min() and plot.max() <= 1
    assert report.count("residual =") == 2


def test_strength_zero_is_plain_sampling(setup):
    model, vae, measurement, cond = setup
    latent = {"samples": torch.zeros(1, 3, 32, 32)}
    guided = run_ksampler(setup, latent, seed=3, strength=0.0).args[0]["samples"]
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent["samples"], 3)
        plain = comfy.sample.sample(model, noise, 4, 1.0, "euler", "normal", cond, cond, latent["samples"],
                                    disable_pbar=True, seed=3)
    assert torch.equal(guided, plain)


def test_extreme_strength_gives_finite_output(setup):
    latent = {"samples": torch.zeros(1, 3, 32, 32)}
    samples = run_ksampler(setup, latent, strength=1e6).args[0]["samples"]
    assert torch.isfinite(samples).all()


def test_size_mismatch_names_the_latent(setup):
    with pytest.raises(ValueError, match="latent_image"):
        run_ksampler(setup, {"samples": torch.zeros(1, 3, 16, 16)})


def test_batch_mismatch_is_refused(setup):
    model, vae, measurement, cond = setup
    two = type(measurement)(measurement.y.repeat(2, 1, 1, 1), measurement.operator, measurement.noise,
                            measurement.image_size)
    with torch.inference_mode(), pytest.raises(ValueError, match="batch"):
        DPSKSampler.execute(model, 0, 2, 1.0, "euler", "normal", cond, cond, {"samples": torch.zeros(3, 3, 32, 32)},
                            1.0, two, 1.0, "dps", vae)


def test_guidance_node_patches_a_clone_for_stock_samplers(setup):
    model, vae, measurement, cond = setup
    with torch.inference_mode():
        patched = DPSGuidance.execute(model, measurement, 1.0, "fast", vae).args[0]
    assert patched is not model
    assert len(patched.get_wrappers("predict_noise", "comfyui_dps_guidance")) == 1
    assert model.get_wrappers("predict_noise", "comfyui_dps_guidance") == []


def test_empty_latent_matches_the_measurement(setup):
    _, _, measurement, _ = setup
    with torch.inference_mode():
        sr = simulate(torch.rand(1, 3, 64, 64), SuperResolution(4, "bicubic"), GaussianNoise(0.01), seed=0)
        pixel = DPSEmptyLatent.execute(sr, 2).args[0]["samples"]
        vae = tiny_taesd_vae()
        latent = DPSEmptyLatent.execute(sr, 1, vae).args[0]["samples"]
    assert pixel.shape == (2, 3, 64, 64)
    assert latent.shape == (1, 4, 8, 8)
