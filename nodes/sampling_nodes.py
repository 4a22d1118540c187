"""Sampling nodes: DPS guidance as a MODEL patch, a drop-in DPS KSampler, and a matching latent."""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_api.latest import io

from ..dps.guidance import AUTO, AUTO_DESCRIPTION, METHODS, mode_names
from . import types
from .guidance_patch import guided_model
from .size_check import check_sizes
from .residual_plot import residual_plot

MODE_HELP = ("Which to pick: leave auto. To compare: moment is the most accurate on linear problems and the "
             "slowest; dps is the paper's method and the one for non-linear operators; fast when dps is too slow "
             "or runs out of memory (Flux, SDXL). How each mode steers every step:\n") + "\n".join(
    [f"{AUTO}: {AUTO_DESCRIPTION}"] + [f"{guidance.name}: {guidance.description}" for guidance in METHODS.values()])
STRENGTH_HELP = (
    "Start at 1.0: the calibrated value, for any step count, sampler and scheduler. If the report says a "
    "result does not explain the measurement (residual well above 1 x noise level), raise it, up to about 3 "
    "(4 and more can make samples diverge); lower it (e.g. 0.5) if results look noisy or over-sharpened. "
    "0 ignores the measurement (plain sampling). It scales the likelihood term of the posterior denoiser."
)


def measurement_input():
    return types.Measurement.Input("measurement", tooltip="The observed measurement y with its operator and noise model.")


def strength_input():
    return io.Float.Input("guidance_strength", default=1.0, min=0.0, max=1e6, step=0.1, tooltip=STRENGTH_HELP)


def mode_input():
    return io.Combo.Input("guidance_mode", options=mode_names(), default=AUTO, tooltip=MODE_HELP)


def solver_steps_input():
    iterating = "; ".join(f"{m.name}: {m.inner_steps}" for m in METHODS.values() if m.inner_steps)
    return io.Int.Input(
        "solver_steps", default=0, min=0, max=1000, optional=True,
        tooltip=f"Leave at 0 (each mode's default). Inner iterations per sampling step, for the modes that "
                f"have them ({iterating}); more costs more time per step. Other modes ignore it.",
    )


def vae_input():
    return io.Vae.Input(
        "vae", optional=True,
        tooltip="The VAE of a latent model (SD1.5, SDXL, SD3, Flux): the misfit is measured on its decoded image. "
                "Leave empty for pixel-space models, whose samples are images in [-1, 1].",
    )


class DPSGuidance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSGuidance",
            display_name="DPS Guidance (patch model)",
            category="DPS/sampling",
            description="Patches a model so that any sampler node (KSampler, KSamplerAdvanced, SamplerCustomAdvanced) "
                        "samples from the posterior p(x | measurement): the likelihood gradient is added to the "
                        "model's denoised estimate at every step.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to guide (it is cloned, never modified)."),
                measurement_input(), strength_input(), mode_input(), vae_input(), solver_steps_input(),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The guided model: connect it to any sampler.")],
        )

    @classmethod
    def execute(cls, model, measurement, guidance_strength, guidance_mode, vae=None, solver_steps=0) -> io.NodeOutput:
        patched, _ = guided_model(model, measurement, guidance_mode, guidance_strength, vae,
                                  solver_steps=solver_steps)
        return io.NodeOutput(patched)


def sample_with_progress(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise):
    """ComfyUI's KSampler procedure (noise from the seed, previews, progress bar) on `model`."""
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model, steps)
    samples = comfy.sample.sample(
        model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
        denoise=denoise, noise_mask=latent.get("noise_mask"), callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
    )
    out = latent.copy()
    out["samples"] = samples
    return out


def final_residuals(patch, samples: torch.Tensor) -> list[float]:
    """Each sample's residual against the patch's measurement, in units of the expected noise level,
    rendered as the guidance rendered it."""
    renderer = patch.renderer
    with torch.inference_mode(False), torch.no_grad():
        latent = renderer.base_model.process_latent_in(samples.to(comfy.model_management.intermediate_device()).float())
        if renderer.vae is not None:
            comfy.model_management.load_models_gpu([renderer.vae_patcher])
            latent = latent.to(renderer.vae.device)
        image = renderer(latent)
        measurement = patch.measurement_on(image.device, image.dtype)
        return [float(v) for v in measurement.normalized_residual(image.clamp(0, 1)).cpu()]


class DPSKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSKSampler",
            display_name="DPS KSampler",
            category="DPS/sampling",
            description="KSampler that samples from the posterior p(x | measurement) with Diffusion Posterior "
                        "Sampling: a drop-in replacement for KSampler with a measurement. Reports how well each "
                        "result explains the measurement.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising the input latent."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The random seed used for creating the noise."),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip="The number of sampling steps."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale (1.0 = prompt guidance off; guidance by the "
                                       "measurement works either way)."),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="euler_ancestral",
                               tooltip="The sampling algorithm; every ComfyUI sampler works with DPS."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="normal",
                               tooltip="The noise schedule."),
                io.Conditioning.Input("positive", tooltip="The conditioning describing what to include."),
                io.Conditioning.Input("negative", tooltip="The conditioning describing what to exclude."),
                io.Latent.Input("latent_image", tooltip="The latent to denoise; its size must render to the "
                                                        "measurement's image size ('DPS Empty Latent' makes one)."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="The amount of denoising applied (1.0 = start from pure noise)."),
                measurement_input(), strength_input(), mode_input(), vae_input(), solver_steps_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="The posterior samples."),
                io.Image.Output(display_name="residual_plot",
                                tooltip="Residual / noise level of each sample at every step (log scale)."),
                io.String.Output(display_name="report",
                                 tooltip="Final residual of each sample against the noise level of the measurement."),
            ],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                denoise, measurement, guidance_strength, guidance_mode, vae=None, solver_steps=0) -> io.NodeOutput:
        patched, patch = guided_model(model, measurement, guidance_mode, guidance_strength, vae,
                                      solver_steps=solver_steps)
        check_sizes(measurement, patch.renderer.scale, latent_image["samples"].shape)  # before sampling starts
        out = sample_with_progress(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                   latent_image, denoise)
        final = final_residuals(patch, out["samples"])
        plot = residual_plot(patch.trace.residuals, final)
        report = "\n".join(
            f"sample {i}: residual = {value:.3f} x noise level ({'explains' if value <= 1.25 else 'does not yet explain'} "
            f"the measurement)" for i, value in enumerate(final)
        )
        return io.NodeOutput(out, plot, report)


class DPSEmptyLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSEmptyLatent",
            display_name="DPS Empty Latent for Measurement",
            category="DPS/sampling",
            description="An empty latent whose decoded size is the image size the measurement explains "
                        "(e.g. 4x the low-resolution picture for 4x super-resolution), so sizes never need "
                        "to be computed by hand.",
            inputs=[
                measurement_input(),
                io.Int.Input("batch_size", default=1, min=1, max=4096,
                             tooltip="Number of posterior samples to draw."),
                io.Vae.Input("vae", optional=True,
                             tooltip="The VAE of a latent model; leave empty for pixel-space models."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="Zeros of the matching latent size.")],
        )

    @classmethod
    def execute(cls, measurement, batch_size, vae=None) -> io.NodeOutput:
        height, width = measurement.image_size
        if vae is None:
            channels, ratio = 3, 1
        else:
            channels, ratio = vae.latent_channels, vae.spacial_compression_decode()
        if height % ratio or width % ratio:
            raise ValueError(
                f"measurement: its image size {width}x{height} is not a multiple of the VAE's scale {ratio}; "
                f"crop or pad the measured image to a multiple of {ratio}"
            )
        samples = torch.zeros(batch_size, channels, height // ratio, width // ratio,
                              device=comfy.model_management.intermediate_device())
        return io.NodeOutput({"samples": samples, "downscale_ratio_spacial": ratio})


NODES = [DPSGuidance, DPSKSampler, DPSEmptyLatent]
