"""DPS DAPS Sampler through ComfyUI's real SamplerCustomAdvanced, guider and schedulers, in-process, with tiny
real models (pixel, latent eps / v / flow), linear and phase-retrieval operators, Gaussian and Poisson noise;
inputs left unchanged; clear errors for bad input; cancel mid-run."""

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

import comfy.model_management  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402
from comfy_extras.nodes_custom_sampler import BasicGuider, BasicScheduler, Noise_RandomNoise  # noqa: E402
from comfy_extras.nodes_custom_sampler import SamplerCustomAdvanced  # noqa: E402
from testkit.tiny_models import tiny_conditioning, tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise  # noqa: E402
from comfyui_dps.dps.operators import PhaseRetrieval, SuperResolution  # noqa: E402
from comfyui_dps.nodes.daps_sampler_node import DPSDAPSSampler  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False


def picture(side=32):
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic").clamp(0, 1)


def run(model, measurement, latent, vae=None, steps=4, scheduler="normal", langevin_steps=3,
        x0_estimate="denoiser (1 call)", callback_steps=None):
    with torch.inference_mode():  # as ComfyUI runs nodes
        sampler = DPSDAPSSampler.execute(measurement, langevin_steps, 0.5, x0_estimate, vae).args[0]
        guider = BasicGuider.execute(model, tiny_conditioning()).args[0]
        sigmas = BasicScheduler.execute(model, scheduler, steps, 1.0).args[0]
        out, denoised = SamplerCustomAdvanced.execute(Noise_RandomNoise(0), guider, sampler, sigmas, latent).args
    return out["samples"], denoised["samples"]


def test_pixel_model_with_phase_retrieval_and_an_ode_estimate():
    with torch.inference_mode():
        model = tiny_unet("eps", pixel=True)
        measurement = simulate(picture(16), PhaseRetrieval(2.0), GaussianNoise(0.05), seed=3)
    y_before = measurement.y.clone()
    latent = {"samples": torch.zeros(2, 3, 16, 16)}
    samples, denoised = run(model, measurement, latent, x0_estimate="ODE (3 steps)")
    assert samples.shape == (2, 3, 16, 16) and torch.isfinite(samples).all()
    assert denoised.shape == samples.shape  # the preview callback saw every level
    assert torch.equal(measurement.y, y_before) and not latent["samples"].any()


@pytest.mark.parametrize("family", ["eps", "v_prediction", "flow"])
def test_latent_families_through_the_decoder(family):
    with torch.inference_mode():
        model, vae = tiny_unet(family), tiny_taesd_vae()
        measurement = simulate(picture(64), SuperResolution(2, "average"), GaussianNoise(0.05), seed=3)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    samples, _ = run(model, measurement, latent, vae=vae, scheduler="simple" if family == "flow" else "karras")
    assert samples.shape == (1, 4, 8, 8) and torch.isfinite(samples).all()


def test_poisson_noise_and_a_batch_one_measurement_over_a_batch():
    with torch.inference_mode():
        model, vae = tiny_unet("eps"), tiny_taesd_vae()
        measurement = simulate(picture(64), SuperResolution(2, "average"), PoissonNoise(50.0), seed=3)
    samples, _ = run(model, measurement, {"samples": torch.zeros(3, 4, 8, 8)}, vae=vae)
    assert samples.shape == (3, 4, 8, 8) and torch.isfinite(samples).all()
    assert not torch.equal(samples[0], samples[1])


def test_the_langevin_steps_pull_towards_the_measurement():
    with torch.inference_mode():
        model = tiny_unet("eps", pixel=True)
        truth = picture(16)
        measurement = simulate(truth, SuperResolution(2, "average"), GaussianNoise(0.05), seed=3)
    latent = {"samples": torch.zeros(1, 3, 16, 16)}
    plain, _ = run(model, measurement, latent, langevin_steps=0, steps=6)
    guided, _ = run(model, measurement, latent, langevin_steps=10, steps=6)
    residual = [float(measurement.normalized_residual((s + 1) / 2)) for s in (plain, guided)]
    assert residual[1] < 0.5 * residual[0]


def test_bad_inputs_are_named():
    with torch.inference_mode():
        with pytest.raises(ValueError, match="measurement: expected a DPS measurement"):
            DPSDAPSSampler.execute(torch.zeros(1, 3, 8, 8), 3, 0.5, "denoiser (1 call)")
        measurement = simulate(picture(64), SuperResolution(2, "average"), GaussianNoise(0.05), seed=3)
        with pytest.raises(ValueError, match="step_size"):
            DPSDAPSSampler.execute(measurement, 3, 0.0, "denoiser (1 call)")
        with pytest.raises(ValueError, match="vae: expected a VAE"):
            DPSDAPSSampler.execute(measurement, 3, 0.5, "denoiser (1 call)", "not a vae")
        model, vae = tiny_unet("eps", pixel=True), tiny_taesd_vae()
    with pytest.raises(ValueError, match="vae: it decodes latents of 4 channels"):
        run(model, measurement, {"samples": torch.zeros(1, 3, 8, 8)}, vae=vae)
    with torch.inference_mode():
        model = tiny_unet("eps")
    with pytest.raises(ValueError, match="latent_image: a 4x4 latent renders to 32x32"):
        run(model, measurement, {"samples": torch.zeros(1, 4, 4, 4)}, vae=vae)


def test_cancel_mid_run_stops_sampling():
    with torch.inference_mode():
        model = tiny_unet("eps", pixel=True)
        measurement = simulate(picture(16), SuperResolution(2, "average"), GaussianNoise(0.05), seed=3)
    calls = []
    original = comfy.model_management.throw_exception_if_processing_interrupted

    def interrupt_later():
        calls.append(1)
        if len(calls) == 5:
            comfy.model_management.interrupt_current_processing(True)
        original()

    comfy.model_management.throw_exception_if_processing_interrupted = interrupt_later
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run(model, measurement, {"samples": torch.zeros(1, 3, 16, 16)}, steps=10)
    finally:
        comfy.model_management.throw_exception_if_processing_interrupted = original
        comfy.model_management.interrupt_current_processing(False)
    assert len(calls) == 5
