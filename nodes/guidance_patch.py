"""Glue between ComfyUI's sampling and `dps.guidance`: a PREDICT_NOISE wrapper on a model clone.

Every ComfyUI sampler consumes the CFG-combined denoised estimate that PREDICT_NOISE returns, so
replacing it by the posterior denoiser makes any sampler, scheduler and sampler node sample from
p(x | y). ComfyUI runs nodes under torch.inference_mode(): see `autograd_ready` for how the
weights are made usable by autograd.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.utils.checkpoint

import comfy.model_management
import comfy.patcher_extension

from ..dps.guidance import GUIDANCE_MODES, GuidanceTrace, at_least_float32

WRAPPER_KEY = "comfyui_dps_guidance"


def _made_in_inference_mode(tensor: torch.Tensor) -> bool:
    """True for inference tensors, and for tensors created as such whose .data was later
    replaced (Module.to() does that): those report is_inference() False yet still have no
    version counter, so autograd cannot save them either."""
    if tensor.is_inference():
        return True
    try:
        tensor._version  # noqa: B018
    except RuntimeError:
        return True
    return False


def _ordinary_alias(tensor: torch.Tensor) -> torch.Tensor:
    """An ordinary tensor with `tensor`'s values. For plain strided tensors it shares their memory
    (no copy): a fresh tensor set to the same storage, offset, sizes and strides has a version
    counter of its own, which is all autograd needs to save it. Anything else is copied."""
    data = tensor.data
    if type(data) is not torch.Tensor or data.layout != torch.strided or data.device.type == "meta":
        return data.clone()
    alias = torch.empty(0, dtype=data.dtype, device=data.device)
    return alias.set_(data.untyped_storage(), data.storage_offset(), data.size(), data.stride())


def autograd_ready(module: torch.nn.Module) -> int:
    """Replace every inference-mode parameter/buffer of `module` by an ordinary tensor with the
    same values, in place, so that autograd may save it for backward.

    Loader nodes create weights under inference mode, and such tensors cannot be saved for
    backward. Each replacement shares the memory of the tensor it replaces, so the first call
    neither copies nor allocates, and later calls find nothing to do; ComfyUI re-creates weights
    when it re-patches a model (LoRA), so this is checked on every call. Returns how many were
    replaced.
    """
    replaced = 0
    with torch.inference_mode(False), torch.no_grad():
        for submodule in module.modules():
            for name, param in list(submodule._parameters.items()):
                if param is not None and _made_in_inference_mode(param):
                    submodule._parameters[name] = torch.nn.Parameter(_ordinary_alias(param), requires_grad=False)
                    replaced += 1
                elif param is not None and param.requires_grad:
                    param.requires_grad_(False)  # input gradients only: never weight gradients
            for name, buffer in list(submodule._buffers.items()):
                if buffer is not None and _made_in_inference_mode(buffer):
                    submodule._buffers[name] = _ordinary_alias(buffer)
                    replaced += 1
    return replaced


def ordinary_copy(measurement):
    """A copy of a measurement whose tensors are ordinary (not inference-mode) tensors.

    Tensors made inside nodes are inference tensors, and the operator's masks or kernels are saved
    for backward. The input object itself is never touched (ComfyUI caches node outputs)."""
    with torch.inference_mode(False):
        return copy.deepcopy(measurement)


def noise_coefficients(model_sampling, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) of x_t = alpha_t x0 + sigma_t eps for this model family, per sample.

    Read off the family's own noise_scaling, so EPS / V_PREDICTION (alpha = 1) and flow models
    (alpha = 1 - sigma) are handled by ComfyUI's definition rather than by a list of classes."""
    sigma = sigma.reshape(-1).float()
    ones = torch.ones(sigma.shape[0], 1, 1, 1, device=sigma.device)
    zeros = torch.zeros_like(ones)
    alpha = model_sampling.noise_scaling(sigma, zeros.clone(), ones.clone()).reshape(-1)
    scale = model_sampling.noise_scaling(sigma, ones.clone(), zeros.clone()).reshape(-1)
    return alpha, scale


#: Gradient checkpointing during guidance, of the decoder's blocks and (in "dps" mode) of the
#: diffusion model's: "auto" turns it on for both when the activations the decoder alone would keep
#: for the backward pass exceed CHECKPOINT_MEMORY_FRACTION of the device's free memory, and in "dps"
#: mode also when the activations of the whole backward exceed CHECKPOINT_WEIGHT_FRACTION of the
#: weights in use (diffusion model + decoder); True / False force it on / off for both; "decoder"
#: checkpoints the decoder only. It trades about one more forward pass for keeping only each
#: block's input instead of its activations; gradients are unchanged.
#: Why the weights: plain sampling's peak is mostly weights, while a "dps" step holds the diffusion
#: model's and the decoder's activations at once, of the same order as each other (SD1.5 at 512 px,
#: float32: 5.5 and 6.3 GB beside 3.6 GB of weights; bench/results.md, section 5), counted here as
#: twice the decoder's. Past the weights, the step would need more than twice plain sampling's
#: memory. "fast" exists for speed: it is checkpointed only when memory is short.
GRADIENT_CHECKPOINTING = "auto"
CHECKPOINT_MEMORY_FRACTION = 0.5
CHECKPOINT_WEIGHT_FRACTION = 1.0


def checkpoint_needed(saved_bytes: float, weight_bytes: float, free_bytes: float, through_model: bool) -> bool:
    """The "auto" rule (see GRADIENT_CHECKPOINTING): `saved_bytes` is what the decoder would keep
    for backward; `through_model` says the backward also goes through the diffusion model ("dps")."""
    if saved_bytes > CHECKPOINT_MEMORY_FRACTION * free_bytes:
        return True
    return through_model and 2 * saved_bytes > CHECKPOINT_WEIGHT_FRACTION * weight_bytes


def tensor_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of `modules` (shared tensors counted once)."""
    seen, total = set(), 0
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def _weighted_leaves(module: torch.nn.Module, counts: dict) -> int:
    """Layers with parameters below (and including) `module`, memoised in `counts`."""
    if module not in counts:
        children = list(module.children())
        own = 1 if not children and any(p is not None for p in module._parameters.values()) else 0
        counts[module] = own + sum(_weighted_leaves(child, counts) for child in children)
    return counts[module]


def checkpoint_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The lowest sub-modules of `module` holding at least two weighted layers: the residual and
    attention blocks of LDM decoders, the conv stacks of TAESD's blocks."""
    counts = {}
    return [m for m in module.modules() if m is not module and _weighted_leaves(m, counts) >= 2
            and all(_weighted_leaves(child, counts) < 2 for child in m.children())]


def _snapshot(value):
    """Dicts passed to a block (ComfyUI's transformer_options) are updated in place as the model
    runs (the current block index, ...): the recomputation must see them as they were."""
    return dict(value) if isinstance(value, dict) else value


@contextlib.contextmanager
def checkpointed(blocks):
    """Within the context every block in `blocks` runs under torch.utils.checkpoint (its inner
    activations are recomputed during backward instead of kept)."""
    patched = []
    try:
        for block in blocks:
            own = vars(block).get("forward")  # an instance-level forward, if the block had one
            forward = block.forward

            def run(*args, _forward=forward, **kwargs):
                args = tuple(_snapshot(a) for a in args)
                kwargs = {k: _snapshot(v) for k, v in kwargs.items()}
                return torch.utils.checkpoint.checkpoint(_forward, *args, use_reentrant=False,
                                                         preserve_rng_state=False, **kwargs)

            block.forward = run  # instance attribute: nn.Module.__call__ uses it
            patched.append((block, own))
        yield
    finally:
        for block, own in patched:
            if own is None:
                del block.forward
            else:
                block.forward = own


class Renderer:
    """Maps a denoised latent (model space) to the image [B, C, H, W] in [0, 1] that the
    operator sees: through the VAE decoder for latent models, (x + 1) / 2 for pixel models."""

    def __init__(self, model_patcher, vae=None, through_model: bool = True):
        self.base_model = model_patcher.model
        self.vae = vae
        self.through_model = through_model  # whether the backward also goes through the diffusion model
        self._blocks = None
        self._bytes_per_latent_pixel = {}
        self._weight_bytes = None

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return (at_least_float32(latent) + 1) / 2
        vae_latent = self.base_model.process_latent_out(latent)
        decoder = self.vae.first_stage_model
        vae_latent = vae_latent.to(self.vae.device, self.vae.vae_dtype)
        if vae_latent.requires_grad and torch.is_grad_enabled() and self.checkpointing(vae_latent, "decoder"):
            with checkpointed(self.blocks()):
                decoded = decoder.decode(vae_latent)
        else:
            decoded = decoder.decode(vae_latent)
        if decoded.ndim != 4:
            raise ValueError(f"vae: expected an image VAE that decodes to [B, C, H, W], got {tuple(decoded.shape)}")
        # Not clamped: clamping would zero the gradient wherever the estimate leaves [0, 1].
        return (at_least_float32(decoded) + 1) / 2

    def blocks(self) -> list[torch.nn.Module]:
        if self._blocks is None:
            self._blocks = checkpoint_blocks(self.vae.first_stage_model)
        return self._blocks

    def checkpointing(self, vae_latent: torch.Tensor, part: str) -> bool:
        """Whether to checkpoint `part` ("decoder" or "model") for a backward pass from a latent
        of this shape, device and dtype (see GRADIENT_CHECKPOINTING)."""
        if GRADIENT_CHECKPOINTING != "auto":
            return GRADIENT_CHECKPOINTING == part if isinstance(GRADIENT_CHECKPOINTING, str) \
                else bool(GRADIENT_CHECKPOINTING)
        if self.vae is None:
            return False
        pixels = vae_latent.shape[0] * vae_latent.shape[-2] * vae_latent.shape[-1]
        needed = self.saved_bytes_per_latent_pixel(vae_latent) * pixels
        if self._weight_bytes is None:
            self._weight_bytes = tensor_bytes(self.base_model.diffusion_model, self.vae.first_stage_model)
        free = comfy.model_management.get_free_memory(vae_latent.device)
        return checkpoint_needed(needed, self._weight_bytes, free, self.through_model)

    def saved_bytes_per_latent_pixel(self, vae_latent: torch.Tensor) -> float:
        """Bytes the decoder keeps for backward per latent pixel, measured once per device and
        dtype from two tiny decodes (4x4 and 8x8 latents; the difference removes the weights and
        anything else of fixed size). The slope from 4x4/8x8 matches the one from 16x16/32x32
        within 2% for TAESD and an SD-ddconfig AutoencoderKL."""
        key = (vae_latent.device, vae_latent.dtype, vae_latent.shape[1:-2])
        if key not in self._bytes_per_latent_pixel:
            saved = []
            for side in (4, 8):
                probe = torch.zeros((1, *vae_latent.shape[1:-2], side, side), device=vae_latent.device,
                                    dtype=vae_latent.dtype, requires_grad=True)
                total = 0

                def pack(tensor):
                    nonlocal total
                    total += tensor.numel() * tensor.element_size()
                    # Keep nothing: this graph is never differentiated, and holding a tensor that
                    # an op saved of its own output would make a reference cycle (a leak).

                with torch.autograd.graph.saved_tensors_hooks(pack, lambda packed: packed):
                    self.vae.first_stage_model.decode(probe)
                saved.append(total)
            self._bytes_per_latent_pixel[key] = max(saved[1] - saved[0], 0) / (8 * 8 - 4 * 4)
        return self._bytes_per_latent_pixel[key]

    def prepare(self) -> None:
        if self.vae is not None:
            autograd_ready(self.vae.first_stage_model)

    def output_size(self, latent_shape) -> tuple[int, int]:
        ratio = 1 if self.vae is None else self.vae.spacial_compression_decode()
        return latent_shape[-2] * ratio, latent_shape[-1] * ratio


def check_sizes(measurement, renderer: Renderer, latent_shape, name: str = "latent_image") -> None:
    """Raise a clear error when the latent does not render to the size the measurement explains."""
    height, width = renderer.output_size(latent_shape)
    want_h, want_w = measurement.image_size
    if (height, width) != (want_h, want_w):
        ratio = 1 if renderer.vae is None else renderer.vae.spacial_compression_decode()
        if want_h % ratio or want_w % ratio:
            raise ValueError(
                f"measurement: its image size {want_w}x{want_h} is not a multiple of the VAE's scale {ratio}, so "
                f"no latent renders to it; crop or pad the measured image to a multiple of {ratio}"
            )
        raise ValueError(
            f"{name}: a {latent_shape[-1]}x{latent_shape[-2]} latent renders to {width}x{height} pixels, "
            f"but the measurement explains {want_w}x{want_h} images: use a {want_w // ratio}x{want_h // ratio} "
            f"latent (the 'DPS Empty Latent' node makes one)"
        )
    batch, measured = latent_shape[0], measurement.y.shape[0]
    if measured not in (1, batch):
        raise ValueError(
            f"{name}: batch {batch} does not match the measurement's batch {measured} "
            "(a measurement of batch 1 serves any batch; otherwise the batches must be equal)"
        )


class GuidancePatch:
    """The PREDICT_NOISE wrapper. One instance per patched model; it keeps a trace of residuals."""

    def __init__(self, model_patcher, measurement, mode: str, strength: float, vae=None, guidance=None):
        if mode not in GUIDANCE_MODES and guidance is None:
            raise ValueError(f"guidance_mode: expected one of {sorted(GUIDANCE_MODES)}, got {mode!r}")
        if not (strength >= 0 and strength < float("inf")):
            raise ValueError(f"guidance_strength: expected a finite number >= 0, got {strength}")
        self.measurement = ordinary_copy(measurement)
        self.guidance = guidance or GUIDANCE_MODES[mode]
        self.strength = float(strength)
        self.renderer = Renderer(model_patcher, vae, through_model=self.guidance is not GUIDANCE_MODES["fast"])
        self.model_sampling = model_patcher.get_model_object("model_sampling")
        self.base_model = model_patcher.model
        self.trace = GuidanceTrace()
        self._on_device = {}
        self._checked_shape = None
        self._model_blocks = None

    def model_blocks(self) -> list[torch.nn.Module]:
        if self._model_blocks is None:
            self._model_blocks = checkpoint_blocks(self.base_model.diffusion_model)
        return self._model_blocks

    def _as_vae_latent(self, x: torch.Tensor) -> torch.Tensor:
        """An empty stand-in with the shape, device and dtype the decoder will see for x."""
        if self.renderer.vae is None:
            return x
        vae = self.renderer.vae
        return torch.zeros((), device=vae.device, dtype=vae.vae_dtype).expand(x.shape)

    def measurement_on(self, device) -> object:
        if device not in self._on_device:
            with torch.inference_mode(False):
                self._on_device[device] = to_device(self.measurement, device)
        return self._on_device[device]

    def __call__(self, executor, x, sigma, model_options, seed):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self._checked_shape != tuple(x.shape):
            check_sizes(self.measurement, self.renderer, x.shape)
            self._checked_shape = tuple(x.shape)
        if self.strength == 0:
            return executor(x, sigma, model_options, seed)
        autograd_ready(self.base_model)
        self.renderer.prepare()
        alpha, scale = noise_coefficients(self.model_sampling, sigma)

        def denoise(x_in):
            if x_in.requires_grad and torch.is_grad_enabled() and self.renderer.checkpointing(
                    self._as_vae_latent(x_in), "model"):
                with checkpointed(self.model_blocks()):
                    return executor(x_in, sigma, model_options, seed)
            return executor(x_in, sigma, model_options, seed)

        image_device = self.renderer.vae.device if self.renderer.vae is not None else x.device
        return self.guidance(
            x, scale, alpha, denoise, self.renderer, self.measurement_on(torch.device(image_device)),
            self.strength, self.trace,
        )


def to_device(obj, device):
    """Deep copy with every tensor moved to `device` (measurements hold operators and noise)."""
    memo = {}
    clone = copy.deepcopy(obj, memo)

    def move(value):
        if torch.is_tensor(value):
            return value.to(device)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(move(v) for v in value)
        if hasattr(value, "__dict__") and not isinstance(value, type):
            for key, item in vars(value).items():
                object.__setattr__(value, key, move(item))
            return value
        return value

    return move(clone)


def guided_model(model_patcher, measurement, mode: str, strength: float, vae=None, guidance=None):
    """A clone of `model_patcher` whose sampling follows the posterior; returns (clone, patch)."""
    patch = GuidancePatch(model_patcher, measurement, mode, strength, vae, guidance)
    patched = model_patcher.clone()
    patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY, patch)
    if vae is not None:
        patched.set_additional_models(WRAPPER_KEY, [vae.patcher])
    return patched, patch
