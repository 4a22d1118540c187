"""Our DPS against deepinv's DPS (`make bench`, section 3).

(a) Accuracy at equal denoiser calls on the exact Gaussian problems, deepinv at its best step
    weight over a log grid: testkit/deepinv_problem.py (shared with
    tests/nodes/test_dps_vs_deepinv.py), re-exported here as `compare` and `steps_to_converge`.
(b) Seconds per step with the same real network: the bench's SD-like UNet (bench/models.py,
    36.6M parameters, EPS) as the denoiser of both. Ours: ComfyUI's sampler (comfy.sample.sample,
    euler) inside torch.inference_mode() with the pack's guidance in "dps" mode and no VAE (the
    operator sees the 4-channel latent as an image, (x + 1) / 2), so the step is the UNet's forward
    plus a backward to its input, as in deepinv. deepinv 0.5.0: deepinv.sampling.DPS (DDPM solver,
    VP schedule, its float64 state) with a deepinv Denoiser calling the same BaseModel's
    apply_model (ComfyUI's input scaling and timestep lookup, then the UNet), outside inference
    mode as a plain PyTorch user runs it. Both on the same measurement (4x bicubic
    super-resolution of a random 4-channel picture, noise 0.05). A step = the time from one call of
    the UNet to the next (forward, backward, update, and whatever each sampler does between them),
    read from a forward pre-hook on the UNet, so both sides are timed by the same clock at the
    same place. Runs of both are interleaved (bench.common.interleaved); the ratio is of medians
    measured in the same run.

Per-call time against an analytic denoiser is not measured any more: around a denoiser that costs
nothing, ComfyUI's sampler plumbing dominates, and the pack must not bypass ComfyUI.
"""

from __future__ import annotations

import time

import torch

from bench.common import interleaved, load_pack, sync

load_pack()

import comfy.model_management  # noqa: E402
import comfy.sample  # noqa: E402
import deepinv  # noqa: E402
from testkit.deepinv_problem import OperatorPhysics, compare, steps_to_converge  # noqa: E402,F401

from bench.models import conditioning, parameter_count, sd_like_unet  # noqa: E402
from bench.step_cost import autograd_ready, with_checkpointing  # noqa: E402
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402

NOISE = 0.05


class UNetDenoiser(deepinv.models.Denoiser):
    """A ComfyUI BaseModel (EPS) as a deepinv Denoiser on images in [0, 1] = (x + 1) / 2: the model
    space is x = 2 image - 1 with sigma_x = 2 sigma."""

    def __init__(self, base_model, context: torch.Tensor):
        super().__init__()
        self.base_model = base_model
        self.context = context

    def forward(self, x, sigma, **kwargs):
        sigma = self._handle_sigma(sigma, batch_size=x.shape[0], ndim=1, device=x.device, dtype=x.dtype)
        denoised = self.base_model.apply_model(2 * x - 1, 2 * sigma, c_crossattn=self.context)
        return (denoised + 1) / 2


class StepTimer:
    """Start times of the UNet's calls (forward pre-hook); `steps()` gives the time from each call
    to the next (a run of n calls gives n - 1 steps; what a sampler does after its last call, or
    before its first, is not a step)."""

    def __init__(self, module: torch.nn.Module):
        self.starts = []
        module.register_forward_pre_hook(self._start)

    def _start(self, module, args):
        sync()
        self.starts.append(time.perf_counter())

    def reset(self):
        self.starts = []

    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]


class StepRace:
    """The UNet built once; one problem per latent size; `measure` times both samplers."""

    def __init__(self, dev: torch.device):
        self.device = dev
        self.unet = sd_like_unet()
        self.base_model = self.unet.model
        self.timer = StepTimer(self.base_model.diffusion_model)
        self.cond = conditioning()
        with torch.inference_mode(False):
            self.context = self.cond[0][0].clone().to(dev)  # an ordinary tensor, as deepinv's user has
        self.info = {"unet_parameters": parameter_count(self.base_model.diffusion_model)}

    def problem(self, latent: int, inference: bool = True):
        """The measurement, made in inference mode as the measurement nodes make it (ours), or
        outside it as a plain PyTorch user makes it (deepinv); the same values either way."""
        with torch.inference_mode(inference):
            generator = torch.Generator().manual_seed(latent)
            picture = torch.rand(1, 4, latent, latent, generator=generator)
            return simulate(picture, SuperResolution(4, "bicubic"), GaussianNoise(NOISE), seed=1)

    def _timed(self, run, steps: int) -> list[float]:
        self.timer.reset()
        run()
        if len(self.timer.starts) != steps:
            raise RuntimeError(f"{len(self.timer.starts)} UNet calls in a run of {steps} steps")
        return self.timer.steps()

    def configurations(self, latent: int, steps: int) -> dict:
        measurement = self.problem(latent)
        patched, _ = guided_model(self.unet, measurement, "dps", 1.0)

        def ours():
            with torch.inference_mode():
                latent_image = torch.zeros(1, 4, latent, latent)
                noise = comfy.sample.prepare_noise(latent_image, 0)
                comfy.sample.sample(patched, noise, steps, 1.0, "euler", "karras", self.cond, self.cond, latent_image,
                                    disable_pbar=True, seed=0)

        comfy.model_management.load_models_gpu([self.unet])
        autograd_ready(self.base_model)  # what ours does on its first call; deepinv needs it too
        denoiser = UNetDenoiser(self.base_model, self.context)
        plain = self.problem(latent, inference=False)
        y = plain.y.to(self.device)
        physics = OperatorPhysics(plain.operator, NOISE)

        def theirs():
            sampler = deepinv.sampling.DPS(denoiser, num_steps=steps + 1, device=self.device,
                                           rng=torch.Generator(self.device).manual_seed(0))
            sampler(y, physics, x_init=(1, 4, latent, latent), seed=0)

        # No gradient checkpointing on our side: deepinv has none, and the step must do the same work.
        return {"ours": lambda: with_checkpointing(False, self._timed, ours, steps),
                "deepinv": lambda: self._timed(theirs, steps)}

    def measure(self, latent: int, steps: int, repeats: int) -> dict:
        calls = self.configurations(latent, steps)
        medians, samples = interleaved(calls, repeats, warmup=1)
        return {"latent": latent, "steps_per_run": steps, "repeats": repeats, "seconds": medians,
                "samples": samples, "ratio": medians["ours"] / medians["deepinv"]}


def step_time(dev: torch.device, latents=(32, 64), steps: int = 4, repeats: int = 3) -> dict:
    """Seconds per DPS step, ours and deepinv's, with the SD-like UNet at each latent size: runs of
    `steps` UNet calls (steps - 1 timed steps each), `repeats` runs of each side interleaved after
    one warm-up run of each."""
    race = StepRace(dev)
    return {"models": race.info, "sizes": {latent: race.measure(latent, steps, repeats) for latent in latents}}
