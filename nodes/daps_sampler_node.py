"""DPS DAPS Sampler: decoupled annealing posterior sampling (dps/daps.py) as a ComfyUI SAMPLER.

SamplerCustomAdvanced runs it with any guider (its denoiser gives x0_hat) and any scheduler's sigmas
(the annealing schedule). The Langevin steps differentiate the renderer only (the VAE decoder of a
latent model), never the diffusion model.
"""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.samplers
import comfy.sd
from comfy.k_diffusion.sampling import default_noise_sampler
from comfy_api.latest import io

from ..dps.daps import DAPSSettings, daps_sample
from ..dps.measurement import Measurement
from .inference_mode import ordinary_copy
from .noise_levels import noise_levels
from .renderer import Renderer
from .sampling_nodes import measurement_input, vae_input
from .size_check import check_sizes

ESTIMATES = {"denoiser (1 call)": 1, "ODE (3 steps)": 3, "ODE (5 steps)": 5}


def check_vae_fits(vae, latent_shape) -> None:
    """ValueError naming `vae` when its latents have other channels than the sampled latent."""
    channels = getattr(vae, "latent_channels", None)
    if channels is not None and channels != latent_shape[1]:
        raise ValueError(f"vae: it decodes latents of {channels} channels, but the sampled latent has "
                         f"{latent_shape[1]}; connect the VAE of the model being sampled (or none for a pixel model)")


def daps_function(measurement: Measurement, vae, settings: DAPSSettings):
    """The KSAMPLER sample function: (model, x, sigmas, extra_args, callback, disable) -> samples."""

    @torch.no_grad()
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = {} if extra_args is None else extra_args
        guider = model.inner_model
        base_model = guider.inner_model
        renderer = Renderer(guider.model_patcher, vae)
        if vae is not None:
            check_vae_fits(vae, x.shape)
        check_sizes(measurement, renderer.scale, x.shape, name="latent_image")
        if vae is not None:
            comfy.model_management.load_models_gpu([renderer.vae_patcher])
        renderer.prepare()
        image_device = torch.device(vae.device) if vae is not None else x.device
        with torch.inference_mode(False):
            measured = ordinary_copy(measurement).to(image_device, torch.float32)
            x = x.clone()

        def render(latent):
            return renderer(latent.to(image_device) if vae is None else latent)

        s_in = x.new_ones([x.shape[0]])

        def denoise(latent, sigma):
            return model(latent.to(x.dtype), sigma * s_in, **extra_args)

        model_sampling = base_model.model_sampling
        noise_sampler = default_noise_sampler(x, seed=extra_args.get("seed"))

        def levels(sigma):
            found = noise_levels(model_sampling, sigma.to(x.device), type(base_model).__name__)
            return found.alpha, found.sigma

        def noise(like):
            return noise_sampler(None, None).to(like.device, like.dtype)

        with torch.inference_mode(False), torch.no_grad():  # leaving inference mode re-enables grad
            return daps_sample(
                x, sigmas, denoise=denoise, render=render, measurement=measured, levels=levels, noise=noise,
                settings=settings, sigma_min=float(model_sampling.sigma_min), callback=callback,
                check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
            )

    return sample


class DPSDAPSSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSDAPSSampler",
            display_name="DPS DAPS Sampler",
            category="DPS/sampling",
            description="Decoupled annealing posterior sampling (DAPS, Zhang et al. 2025) as a SAMPLER for "
                        "SamplerCustomAdvanced: at every noise level of the sigmas it estimates the clean image "
                        "with the model, draws a clean image that explains the measurement near that estimate "
                        "(Langevin steps through the VAE decoder) and re-noises it to the next level. No gradient "
                        "through the diffusion model; suits non-linear operators (phase retrieval) and latent models.",
            inputs=[
                measurement_input(), vae_input(),
                io.Int.Input("langevin_steps", default=20, min=0, max=1000,
                             tooltip="Langevin steps per noise level; each costs a decoder forward and backward "
                                     "(latent models). 10-20 usually suffices; 0 is plain sampling with the model."),
                io.Float.Input("step_size", default=0.5, min=0.01, max=1.0, step=0.01,
                               tooltip="Langevin step as a fraction of the stability limit, for any operator and "
                                       "noise level: smaller is more accurate, larger mixes faster."),
                io.Combo.Input("x0_estimate", options=list(ESTIMATES), default="denoiser (1 call)",
                               tooltip="How the clean image is estimated at each level: one denoiser call, or a "
                                       "few steps of the probability-flow ODE (sharper, costs that many calls)."),
            ],
            outputs=[io.Sampler.Output(display_name="sampler", tooltip="Connect to SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, measurement, langevin_steps, step_size, x0_estimate, vae=None) -> io.NodeOutput:
        if not isinstance(measurement, Measurement):
            raise ValueError(f"measurement: expected a DPS measurement (from a DPS measurement node), "
                             f"got {type(measurement).__name__}")
        if vae is not None and not isinstance(vae, comfy.sd.VAE):
            raise ValueError(f"vae: expected a VAE, got {type(vae).__name__}")
        if x0_estimate not in ESTIMATES:
            raise ValueError(f"x0_estimate: expected one of {', '.join(ESTIMATES)}, got {x0_estimate!r}")
        settings = DAPSSettings(langevin_steps=int(langevin_steps), step_size=float(step_size),
                                ode_steps=ESTIMATES[x0_estimate])
        return io.NodeOutput(comfy.samplers.KSAMPLER(daps_function(measurement, vae, settings)))


NODES = [DPSDAPSSampler]
