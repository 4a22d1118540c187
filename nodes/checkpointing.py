"""Gradient checkpointing during guidance: when to use it, and how.

Speed first: a guided step keeps the activations of the decoder and (for methods that go through
the model, such as "dps") of the diffusion model for its backward pass. Checkpointing keeps only
each block's input and recomputes the rest during backward: about one more forward pass. It is
used only when the step would not fit in free memory otherwise, never to save memory that is
there to spend.

GRADIENT_CHECKPOINTING: "auto" follows that rule; True / False force it on / off for the parts a
step differentiates; "decoder" checkpoints the decoder only. Gradients are the same either way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.utils.checkpoint

import comfy.model_management

GRADIENT_CHECKPOINTING = "auto"

#: The share of free memory a step's saved activations may take before "auto" checkpoints: the
#: rest is the margin for the backward's own buffers (gradients as large as the largest
#: activations) and for what other code allocates meanwhile.
CHECKPOINT_MEMORY_FRACTION = 0.75


@dataclass(frozen=True)
class Decision:
    model: bool
    decoder: bool


def checkpoint_needed(saved_bytes: float, free_bytes: float) -> bool:
    """The "auto" rule: the activations a step keeps for backward do not fit in free memory with
    the margin."""
    return saved_bytes > CHECKPOINT_MEMORY_FRACTION * free_bytes


def _weighted_leaves(module: torch.nn.Module, counts: dict) -> int:
    """Layers with parameters below (and including) `module`, memoised in `counts`."""
    if module not in counts:
        children = list(module.children())
        own = 1 if not children and any(p is not None for p in module._parameters.values()) else 0
        counts[module] = own + sum(_weighted_leaves(child, counts) for child in children)
    return counts[module]


def checkpoint_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The lowest sub-modules of `module` holding at least two weighted layers: the residual and
    attention blocks of LDM decoders and UNets, the conv stacks of TAESD's blocks."""
    counts = {}
    return [m for m in module.modules() if m is not module and _weighted_leaves(m, counts) >= 2
            and all(_weighted_leaves(child, counts) < 2 for child in m.children())]


def _snapshot(value):
    """Dicts passed to a block (ComfyUI's transformer_options) are updated in place as the model
    runs (the current block index, ...): the recomputation must see them as they were."""
    return dict(value) if isinstance(value, dict) else value


@contextlib.contextmanager
def checkpointed(blocks):
    """Within the context every block in `blocks` runs under torch.utils.checkpoint when autograd
    records (its inner activations are recomputed during backward instead of kept)."""
    patched = []
    try:
        for block in blocks:
            own = vars(block).get("forward")  # an instance-level forward, if the block had one
            forward = block.forward

            def run(*args, _forward=forward, **kwargs):
                if not torch.is_grad_enabled():
                    return _forward(*args, **kwargs)
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


class SavedBytes:
    """Counts the memory autograd keeps for backward inside the context: each storage once, however
    many ops save it or views of it (counting every save overestimated SD1.5's UNet at 512 px by half,
    15.7 against 10.4 GiB, and checkpointed a step that fitted)."""

    def __init__(self):
        self.total = 0
        self._seen = set()

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = (tensor.device, storage.data_ptr())
        if key not in self._seen:  # saved tensors stay alive, so no two share an address
            self._seen.add(key)
            self.total += storage.nbytes()
        # Detached: returning the tensor itself would tie an op's saved output to its own grad_fn
        # (a reference cycle that only the garbage collector frees).
        return tensor.detach()

    @contextlib.contextmanager
    def counting(self):
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda packed: packed):
            yield self


def decoder_bytes_per_latent_pixel(decoder: torch.nn.Module, like: torch.Tensor) -> float:
    """Bytes the decoder keeps for backward per latent pixel, for latents like `like` (channels,
    device, dtype), from two tiny decodes (4x4 and 8x8 latents; the difference removes anything of
    fixed size). The slope from 4x4/8x8 matches the one from 16x16/32x32 within 2% for TAESD and an
    SD-ddconfig AutoencoderKL."""
    saved = []
    for side in (4, 8):
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            # Keep nothing: this graph is never differentiated.

        with torch.inference_mode(False), torch.enable_grad(), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda packed: packed):
            probe = torch.zeros((1, *like.shape[1:-2], side, side), device=like.device, dtype=like.dtype,
                                requires_grad=True)
            decoder.decode(probe)
        saved.append(total)
    return max(saved[1] - saved[0], 0) / (8 * 8 - 4 * 4)


class CheckpointPolicy:
    """Decides, before each guided call, which parts to checkpoint (see GRADIENT_CHECKPOINTING).

    What a step keeps: the decoder's activations, estimated from a probe per latent shape; the
    diffusion model's, counted during the first call at each input shape that ran without
    checkpointing (before that counted, the decoder's figure stands in for them, the two being of
    the same order for SD-family models). After an out-of-memory error the caller calls
    `memory_was_short`, and every later step is checkpointed."""

    def __init__(self, model_patcher, vae, through_model: bool, autoencoder=None):
        """autoencoder: the module the renderer decodes with (Renderer.autoencoder; None without a VAE)."""
        self.model_patcher = model_patcher
        self.vae = vae
        self.autoencoder = autoencoder
        self.through_model = through_model
        self.short_of_memory = False
        self._decoder_per_pixel = {}
        self._model_bytes = {}
        self._model_blocks = None
        self._decoder_blocks = None

    def model_blocks(self) -> list[torch.nn.Module]:
        if self._model_blocks is None:
            self._model_blocks = checkpoint_blocks(self.model_patcher.model.diffusion_model)
        return self._model_blocks

    def decoder_blocks(self) -> list[torch.nn.Module]:
        if self._decoder_blocks is None:
            self._decoder_blocks = [] if self.vae is None else checkpoint_blocks(self.autoencoder)
        return self._decoder_blocks

    def decide(self, x: torch.Tensor) -> Decision:
        setting = GRADIENT_CHECKPOINTING
        if setting == "decoder":
            return Decision(model=False, decoder=self.vae is not None)
        if setting != "auto":
            return Decision(model=bool(setting) and self.through_model, decoder=bool(setting) and self.vae is not None)
        on = self.short_of_memory or checkpoint_needed(self.saved_bytes(x), self.free_memory(x.device))
        return Decision(model=on and self.through_model, decoder=on and self.vae is not None)

    def saved_bytes(self, x: torch.Tensor) -> float:
        """The activations a step from x keeps for backward (estimated as the class says)."""
        decoder = 0.0
        if self.vae is not None:
            like = torch.empty((0, *x.shape[1:]), device=self.vae.device, dtype=self.vae.vae_dtype)
            key = (like.device, like.dtype, tuple(x.shape[1:-2]))
            if key not in self._decoder_per_pixel:
                self._decoder_per_pixel[key] = decoder_bytes_per_latent_pixel(self.autoencoder, like)
            decoder = self._decoder_per_pixel[key] * x.shape[0] * x.shape[-2] * x.shape[-1]
        if not self.through_model:
            return decoder
        return decoder + self._model_bytes.get(tuple(x.shape), decoder)

    def wants_model_count(self, x: torch.Tensor) -> bool:
        return self.through_model and tuple(x.shape) not in self._model_bytes

    def record_model_bytes(self, x: torch.Tensor, saved: int) -> None:
        self._model_bytes[tuple(x.shape)] = saved

    def free_memory(self, device) -> float:
        """Free memory on `device`; the model patcher's own query where it has one (newer ComfyUI
        asks callers to use it under Dynamic VRAM)."""
        query = getattr(self.model_patcher, "get_free_memory", None)
        if callable(query):
            try:
                return query(device)
            except TypeError:  # another signature than the one we know: ask ComfyUI directly
                pass
        return comfy.model_management.get_free_memory(device)

    def memory_was_short(self) -> None:
        self.short_of_memory = True
