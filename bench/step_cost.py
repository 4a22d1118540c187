"""Per-step cost of guidance against plain sampling, and its floor, through ComfyUI's samplers.

A step is timed the way ComfyUI runs it: comfy.sample.sample_custom inside torch.inference_mode()
with a sampler (comfy.samplers.KSAMPLER) that takes Euler steps and times each one: the model
call (CFGGuider -> PREDICT_NOISE wrappers -> our guidance -> apply_model) plus the update. The
plain step uses the unpatched ModelPatcher, the guided steps a clone from
nodes.guidance_patch.guided_model; all share one BaseModel whose weights were made in inference
mode. cfg is 1 (a single conditioning batch), so the UNet runs on batch 1 in every configuration.

The floor, timed alone in the same interleaved rounds: the diffusion network's forward plus a
backward to its input only (weights frozen, requires_grad False), and the decoder's forward plus
a backward to its input, on ordinary tensors outside inference mode.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch

from bench.common import MemoryBaseline, interleaved, sync
from bench.models import VAES, conditioning, parameter_count, sd_like_unet

import comfy.sample  # noqa: E402  (loaded by bench.models)
import comfy.samplers  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes import checkpointing  # noqa: E402
from comfyui_dps.nodes.checkpointing import checkpoint_blocks, checkpointed, decoder_bytes_per_latent_pixel  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402
from comfyui_dps.nodes.inference_mode import autograd_ready  # noqa: E402
from comfyui_dps.nodes.renderer import Renderer  # noqa: E402

SIGMAS = (2.0, 1.5)  # one Euler step in the middle of SD1.5's range (0.03 .. 14.6)


def timing_sampler(record: list):
    """A KSAMPLER taking Euler steps, appending each step's seconds to `record`."""

    @torch.no_grad()
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = {} if extra_args is None else extra_args
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            sync()
            start = time.perf_counter()
            denoised = model(x, sigmas[i] * s_in, **extra_args)
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
            sync()
            record.append(time.perf_counter() - start)
        return x

    return comfy.samplers.KSAMPLER(sample)


def with_checkpointing(setting, fn, *args):
    """fn(*args) with checkpointing.GRADIENT_CHECKPOINTING set to `setting` (restored after)."""
    saved = checkpointing.GRADIENT_CHECKPOINTING
    checkpointing.GRADIENT_CHECKPOINTING = setting
    try:
        return fn(*args)
    finally:
        checkpointing.GRADIENT_CHECKPOINTING = saved


def record_decisions(patch) -> list:
    """The decisions (model, decoder, estimated saved bytes, free bytes) the patch's checkpointing
    policy takes from now on under the default setting ("auto"), one per guided call, appended to
    the returned list. Calls with the setting forced (the "checkpointed" rows share the patch) are
    not recorded."""
    policy, decisions = patch.checkpointing, []
    decide = policy.decide

    def recording(x):
        decision = decide(x)
        if checkpointing.GRADIENT_CHECKPOINTING == "auto":
            decisions.append({"model": decision.model, "decoder": decision.decoder,
                              "saved_bytes": policy.saved_bytes(x), "free_bytes": policy.free_memory(x.device)})
        return decision

    policy.decide = recording  # an instance attribute: the patch calls policy.decide(x)
    return decisions


def summarise(decisions: list) -> dict:
    """What the default chose over a configuration's calls: checkpointing of the model / decoder if
    any call chose it, the last call's estimate of the saved activations (the UNet's counted by
    then), the least free memory seen; None if the configuration made no guided call."""
    if not decisions:
        return None
    return {"model": any(d["model"] for d in decisions), "decoder": any(d["decoder"] for d in decisions),
            "saved_bytes": decisions[-1]["saved_bytes"], "free_bytes": min(d["free_bytes"] for d in decisions),
            "calls": len(decisions)}


class StepBench:
    """Models built once (in inference mode), problems per latent size."""

    def __init__(self, dev: torch.device, baseline: MemoryBaseline, vae_names=tuple(VAES), full_size=False):
        self.device = dev
        self.baseline = baseline
        self.unet = sd_like_unet(full_size=full_size)
        self.vaes = {name: VAES[name](full_size=full_size) for name in vae_names}
        self.cond = conditioning()
        self.decisions = {}
        self.info = {
            "unet_parameters": parameter_count(self.unet.model.diffusion_model),
            "decoder_parameters": {name: parameter_count(self._decoder(vae)) for name, vae in self.vaes.items()},
        }

    @staticmethod
    def _decoder(vae):
        model = vae.first_stage_model
        return getattr(model, "taesd_decoder", None) or getattr(model, "decoder", model)

    # ------------------------------------------------------------------------------------------
    def workaround_cost(self, later_calls: int = 5) -> dict:
        """What autograd_ready costs: the first call (copies every inference weight once) and
        later calls (a walk over the modules that finds nothing to do). Must run first."""
        out = {}
        targets = {"UNet (BaseModel)": self.unet.model}
        targets.update({f"{name} (first_stage_model)": vae.first_stage_model for name, vae in self.vaes.items()})
        for label, module in targets.items():
            replaced = []
            first_seconds = None

            def first(module=module, replaced=replaced):
                nonlocal first_seconds
                start = time.perf_counter()
                replaced.append(autograd_ready(module))
                first_seconds = time.perf_counter() - start

            before = self.baseline.current()
            peak, _ = self.baseline.peak(first)
            after = self.baseline.current()
            later = []
            for _ in range(later_calls):
                start = time.perf_counter()
                assert autograd_ready(module) == 0
                later.append(time.perf_counter() - start)
            weights = sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
            out[label] = {
                "tensors_replaced": replaced[0],
                "weight_bytes": weights,
                "first_call_s": first_seconds,
                "later_call_s": sorted(later)[len(later) // 2],
                "memory_in_use_before": before,
                "memory_in_use_after": after,
                "peak_during_first_call": peak,
            }
        return out

    # ------------------------------------------------------------------------------------------
    def problem(self, latent: int):
        """4x bicubic super-resolution of a random picture of 8 * latent pixels, noise 0.05,
        made in inference mode as the measurement nodes make it."""
        with torch.inference_mode():
            generator = torch.Generator().manual_seed(latent)
            picture = torch.rand(1, 3, 8 * latent, 8 * latent, generator=generator)
            return simulate(picture, SuperResolution(4, "bicubic"), GaussianNoise(0.05), seed=1)

    def _run(self, patcher, latent: int):
        record = []
        with torch.inference_mode():
            shape = (1, 4, latent, latent)
            latent_image = torch.zeros(shape)
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            sigmas = torch.tensor(SIGMAS)
            comfy.sample.sample_custom(patcher, noise, 1.0, timing_sampler(record), sigmas, self.cond, self.cond,
                                       latent_image, disable_pbar=True, seed=0)
        return record

    def _unet_floor(self, latent: int):
        model = self.unet.model
        net = model.diffusion_model
        dtype = model.get_dtype()
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(1, 4, latent, latent, generator=generator).to(self.device, dtype)
        grad = torch.randn(1, 4, latent, latent, generator=generator).to(self.device, dtype)
        t = torch.tensor([500.0], device=self.device)
        context = self.cond[0][0].clone().to(self.device, dtype)

        def run():
            with torch.inference_mode(False), torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                out = net(x_in, t, context=context)
                torch.autograd.grad(out, x_in, grad)

        return run

    def _decoder_floor(self, vae, latent: int):
        generator = torch.Generator().manual_seed(2)
        z = torch.randn(1, 4, latent, latent, generator=generator).to(vae.device, vae.vae_dtype)
        grad = torch.randn(1, 3, 8 * latent, 8 * latent, generator=generator).to(vae.device, vae.vae_dtype)
        decoder = vae.first_stage_model

        def run():
            with torch.inference_mode(False), torch.enable_grad():
                z_in = z.detach().requires_grad_(True)
                out = decoder.decode(z_in)
                torch.autograd.grad(out, z_in, grad)

        return run

    def configurations(self, latent: int, modes=("dps", "fast"), floors: bool = True, vae_names=None,
                       checkpointed=()) -> dict:
        """name -> callable (returning the step seconds it measured, or None to be wall-timed).
        Modes in `checkpointed` are also run with gradient checkpointing forced on (the UNet's
        blocks in "dps" mode, and the decoder's)."""
        measurement = self.problem(latent)
        calls = {"plain step": lambda: self._run(self.unet, latent)}
        for name in vae_names or self.vaes:
            vae = self.vaes[name]
            for mode in modes:
                patched, patch = guided_model(self.unet, measurement, mode, 1.0, vae=vae)
                calls[f"{mode} step, {name}"] = lambda patched=patched: self._run(patched, latent)  # the default
                self.decisions[f"{mode} step, {name}"] = record_decisions(patch)
                if mode in checkpointed:
                    calls[f"{mode} step, {name}, checkpointed"] = lambda patched=patched: with_checkpointing(
                        True, self._run, patched, latent)
            if floors:
                calls[f"decoder fwd+input-bwd, {name}"] = self._decoder_floor(vae, latent)
        if floors:
            calls["UNet fwd+input-bwd"] = self._unet_floor(latent)
        return calls

    def measure(self, latent: int, repeats: int, warmup: int = 1, **options) -> dict:
        """Median seconds (interleaved) and peak memory of each configuration at one latent size.
        The memory of each configuration is taken on its first (warm-up) call."""
        self.decisions = {}
        calls = self.configurations(latent, **options)
        memory, first_call = {}, {}
        for name, fn in calls.items():
            outcome = {}

            def run(fn=fn, outcome=outcome):
                start = time.perf_counter()
                outcome["result"] = fn()
                sync()
                outcome["wall"] = time.perf_counter() - start

            peak, before = self.baseline.peak(run)
            memory[name] = {"peak": peak, "in_use_before": before}
            result = outcome["result"]
            first_call[name] = result if isinstance(result, list) else [outcome["wall"]]
        medians, samples = interleaved(calls, repeats, warmup=max(warmup - 1, 0)) if repeats else ({}, {})
        auto = {name: summarise(decisions) for name, decisions in self.decisions.items()}
        return {"latent": latent, "pixels": (8 * latent) ** 2, "seconds": medians, "samples": samples,
                "memory": memory, "first_call": first_call, "auto_checkpointing": auto}

    def guided_difference(self, latent: int = 16) -> dict:
        """Largest difference between one guided Euler step ("dps") with and without gradient
        checkpointing of the UNet and the decoder, per decoder (0 when nothing changes)."""
        measurement = self.problem(latent)
        out = {}
        for name, vae in self.vaes.items():
            patched, _ = guided_model(self.unet, measurement, "dps", 1.0, vae=vae)
            results = []
            for setting in (False, True):
                def run(patched=patched):
                    with torch.inference_mode():
                        noise = torch.randn(1, 4, latent, latent, generator=torch.Generator().manual_seed(0))
                        return comfy.sample.sample_custom(patched, noise, 1.0, timing_sampler([]), torch.tensor(SIGMAS),
                                                          self.cond, self.cond, torch.zeros_like(noise),
                                                          disable_pbar=True, seed=0).clone()
                results.append(with_checkpointing(setting, run))
            out[name] = (results[0] - results[1]).abs().max().item()
        return out

    def probe_cost(self) -> dict:
        """Seconds and bytes per latent pixel of the one-off probe behind the default's estimate of
        the decoder's saved activations (two small decodes with autograd), per decoder, and the
        largest difference checkpointing makes to the decoder's input gradients."""
        out = {}
        for name, vae in self.vaes.items():
            like = torch.empty((0, 4, 32, 32), device=vae.device, dtype=vae.vae_dtype)
            start = time.perf_counter()
            per_pixel = decoder_bytes_per_latent_pixel(vae.first_stage_model, like)
            out[name] = {"seconds": time.perf_counter() - start, "saved_bytes_per_latent_pixel": per_pixel,
                         "checkpointed_gradient_max_difference": self._checkpointed_difference(vae)}
        return out

    def _checkpointed_difference(self, vae, latent: int = 16) -> float:
        """Largest difference between the decoder gradients with and without checkpointing."""
        renderer = Renderer(self.unet, vae)
        blocks = checkpoint_blocks(vae.first_stage_model)
        generator = torch.Generator().manual_seed(3)
        z = torch.randn(1, 4, latent, latent, generator=generator)
        weights = torch.randn(1, 3, 8 * latent, 8 * latent, generator=generator)
        gradients = []
        for on in (False, True):
            with torch.inference_mode(False), torch.enable_grad():
                with checkpointed(blocks) if on else contextlib.nullcontext():
                    z_in = z.clone().requires_grad_(True)
                    image = renderer(z_in)
                    (gradient,) = torch.autograd.grad((image * weights.to(image.device, image.dtype)).sum(), z_in)
                gradients.append(gradient)
        return (gradients[0] - gradients[1]).abs().max().item()


def fit_exponent(xs, ys) -> float:
    """Least-squares slope of log y against log x."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)
