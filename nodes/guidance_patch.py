"""The PREDICT_NOISE patch: guidance inside every ComfyUI sampler.

Every ComfyUI sampler consumes the CFG-combined denoised estimate that PREDICT_NOISE returns, so
replacing it by a guidance method's posterior denoiser (`dps.guidance`) makes any sampler,
scheduler and sampler node sample from p(x | y).
"""

from __future__ import annotations

import contextlib

import torch

import comfy.model_management
import comfy.patcher_extension

from ..dps.guidance import GuidanceMethod, GuidanceTrace, method
from .checkpointing import CheckpointPolicy, SavedBytes, checkpointed
from .dynamic_vram import non_dynamic
from .inference_mode import autograd_ready, ordinary_copy
from .noise_levels import noise_levels
from .renderer import Renderer
from .size_check import check_sizes

WRAPPER_KEY = "comfyui_dps_guidance"


class GuidancePatch:
    """The PREDICT_NOISE wrapper. One instance per patched model; it keeps a trace of residuals."""

    def __init__(self, model_patcher, measurement, mode: str, strength: float, vae=None,
                 guidance: GuidanceMethod | None = None, solver_steps: int | None = None):
        self.method = guidance or method(mode, measurement, pixel_model=vae is None)
        if solver_steps is not None and solver_steps < 0:
            raise ValueError(f"solver_steps: expected 0 (the mode's default) or more, got {solver_steps}")
        # 0 asks for the mode's own default (the node's widget default).
        self.solver_steps = solver_steps or None
        if not (strength >= 0 and strength < float("inf")):
            raise ValueError(f"guidance_strength: expected a finite number >= 0, got {strength}")
        self.method.check(measurement)
        self.measurement = ordinary_copy(measurement)
        self.strength = float(strength)
        self.renderer = Renderer(model_patcher, vae)
        self.checkpointing = CheckpointPolicy(model_patcher, vae, through_model=self.method.through_model,
                                              autoencoder=self.renderer.autoencoder)
        self.model_sampling = model_patcher.get_model_object("model_sampling")
        self.model_name = type(model_patcher.model).__name__
        self.base_model = model_patcher.model
        self.trace = GuidanceTrace()
        self._on_device = {}
        self._checked_shape = None

    def measurement_on(self, device, dtype):
        """The measurement where the rendered images will be, in their dtype (so that the operator's
        tensors are not converted at every call). Its tensors are ordinary ones (see __init__)."""
        if (device, dtype) not in self._on_device:
            with torch.inference_mode(False):
                self._on_device[device, dtype] = self.measurement.to(device, dtype)
        return self._on_device[device, dtype]

    def __call__(self, executor, x, sigma, model_options, seed):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self._checked_shape != tuple(x.shape):
            check_sizes(self.measurement, self.renderer.scale, x.shape)
            self._checked_shape = tuple(x.shape)
        if self.strength == 0:
            return executor(x, sigma, model_options, seed)
        autograd_ready(self.base_model)
        self.renderer.prepare()
        try:
            return self.guided(executor, x, sigma, model_options, seed)
        except comfy.model_management.OOM_EXCEPTION:
            if self.checkpointing.short_of_memory:
                raise
            # Speed first failed: the step did not fit. Free what it held and checkpoint from now on.
            self.checkpointing.memory_was_short()
            comfy.model_management.soft_empty_cache()
            return self.guided(executor, x, sigma, model_options, seed)

    def guided(self, executor, x, sigma, model_options, seed):
        levels = noise_levels(self.model_sampling, sigma, self.model_name)
        decision = self.checkpointing.decide(x)
        policy = self.checkpointing

        def denoise(x_in):
            if x_in.requires_grad and torch.is_grad_enabled() and not decision.model and policy.wants_model_count(x_in):
                with SavedBytes().counting() as saved:
                    denoised = executor(x_in, sigma, model_options, seed)
                policy.record_model_bytes(x_in, saved.total)
                return denoised
            return executor(x_in, sigma, model_options, seed)

        vae = self.renderer.vae
        image_device = torch.device(vae.device if vae is not None else x.device)
        image_dtype = torch.promote_types(vae.vae_dtype if vae is not None else x.dtype, torch.float32)
        with contextlib.ExitStack() as stack:
            if decision.model:
                stack.enter_context(checkpointed(policy.model_blocks()))
            if decision.decoder:
                stack.enter_context(checkpointed(policy.decoder_blocks()))
            return self.method.call(
                steps=self.solver_steps, x=x, sigma=levels.sigma, alpha=levels.alpha, denoise=denoise, render=self.renderer,
                measurement=self.measurement_on(image_device, image_dtype), strength=self.strength, trace=self.trace,
            )


def guided_model(model_patcher, measurement, mode: str, strength: float, vae=None,
                 guidance: GuidanceMethod | None = None, solver_steps: int | None = None):
    """A clone of `model_patcher` whose sampling follows the posterior; returns (clone, patch).
    `guidance`, a method not in the registry, replaces `mode` (tests use exact ones); `solver_steps`
    is passed to modes with an inner iteration (None or 0: their default)."""
    model_patcher = non_dynamic(model_patcher, "model")  # see nodes/dynamic_vram.py
    patch = GuidancePatch(model_patcher, measurement, mode, strength, vae, guidance, solver_steps)
    patched = model_patcher.clone()
    patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY, patch)
    if vae is not None:
        patched.set_additional_models(WRAPPER_KEY, [patch.renderer.vae_patcher])
    return patched, patch
