"""Gradient checkpointing during guidance (nodes/guidance_patch.py): it changes no result, it really
recomputes the blocks it checkpoints, and "auto" turns it on exactly when its rule says.

Models are ComfyUI's own UNet, TAESD and AutoencoderKL classes at tiny sizes, built in inference
mode as loader nodes build them, sampled through comfy.sample.sample."""

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

import comfy.model_management  # noqa: E402
import comfy.sample  # noqa: E402
from testkit.tiny_models import tiny_conditioning, tiny_kl_vae, tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes import guidance_patch  # noqa: E402
from comfyui_dps.nodes.guidance_patch import checkpoint_needed, guided_model, tensor_bytes  # noqa: E402

VAES = {"taesd": tiny_taesd_vae, "kl": tiny_kl_vae}
SIZE = 64  # image side; the latent is 8x8


def setup(vae_kind):
    with torch.inference_mode():
        model = tiny_unet("eps", seed=0)
        vae = VAES[vae_kind](seed=0)
        picture = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
        measurement = simulate(picture, SuperResolution(4, "bicubic"), GaussianNoise(0.05), seed=2)
    return model, vae, measurement


def sample(model, vae, measurement, mode="dps", steps=2):
    patched, patch = guided_model(model, measurement, mode, 1.0, vae)
    cond = tiny_conditioning(0)
    noise = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out = comfy.sample.sample(patched, noise, steps, 1.0, "euler", "normal", cond, cond,
                                  torch.zeros_like(noise), disable_pbar=True, seed=0)
    return out.clone(), patch


def block_calls(module: torch.nn.Module):
    """Counts forward calls of the weighted layers inside the checkpointable blocks of `module` (a
    list, appended to). The layers, not the blocks: a recomputation calls the block's forward
    method directly, but its layers through their hooks."""
    calls = []
    layers = [layer for block in guidance_patch.checkpoint_blocks(module) for layer in block.modules()
              if not list(layer.children()) and any(True for _ in layer.parameters(recurse=False))]
    handles = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in layers]
    return calls, handles


def test_rule():
    mib = 2**20
    # "dps": on once the decoder's activations, counted twice, pass the weights
    assert not checkpoint_needed(49 * mib, weight_bytes=100 * mib, free_bytes=1000 * mib, through_model=True)
    assert checkpoint_needed(51 * mib, weight_bytes=100 * mib, free_bytes=1000 * mib, through_model=True)
    # "fast": not for the weights, however large its activations
    assert not checkpoint_needed(400 * mib, weight_bytes=100 * mib, free_bytes=1000 * mib, through_model=False)
    # either: once they pass half the free memory
    assert checkpoint_needed(51 * mib, weight_bytes=10_000 * mib, free_bytes=100 * mib, through_model=False)
    assert checkpoint_needed(51 * mib, weight_bytes=10_000 * mib, free_bytes=100 * mib, through_model=True)
    assert not checkpoint_needed(0, weight_bytes=0, free_bytes=0, through_model=True)


def test_tensor_bytes_counts_shared_tensors_once():
    layer = torch.nn.Linear(10, 10)
    assert tensor_bytes(layer) == (100 + 10) * 4
    assert tensor_bytes(layer, layer, torch.nn.Sequential(layer)) == (100 + 10) * 4


@pytest.mark.parametrize("vae_kind", list(VAES))
@pytest.mark.parametrize("mode", ["dps", "fast"])
def test_checkpointing_changes_no_result(vae_kind, mode, monkeypatch):
    model, vae, measurement = setup(vae_kind)
    results = {}
    for setting in (False, True):
        monkeypatch.setattr(guidance_patch, "GRADIENT_CHECKPOINTING", setting)
        results[setting], patch = sample(model, vae, measurement, mode)
        assert len(patch.trace.sigmas) == 2
    assert torch.equal(results[False], results[True])


@pytest.mark.parametrize("vae_kind", list(VAES))
def test_checkpointed_blocks_are_recomputed_in_backward(vae_kind, monkeypatch):
    """Checkpointed, the layers of the decoder's and the UNet's blocks run again in backward (torch
    stops a recomputation early once it has what backward needs, so not every layer runs twice)."""
    model, vae, measurement = setup(vae_kind)
    counts = {}
    for setting in (False, True):
        monkeypatch.setattr(guidance_patch, "GRADIENT_CHECKPOINTING", setting)
        decoder_calls, handles = block_calls(vae.first_stage_model)
        unet_calls, more = block_calls(model.model.diffusion_model)
        try:
            sample(model, vae, measurement, "dps", steps=1)
        finally:
            for handle in handles + more:
                handle.remove()
        counts[setting] = (len(decoder_calls), len(unet_calls))
    assert min(counts[False]) > 0
    assert counts[True][0] > 1.3 * counts[False][0] and counts[True][1] > 1.3 * counts[False][1], counts


@pytest.mark.parametrize("vae_kind", list(VAES))
@pytest.mark.parametrize("mode", ["dps", "fast"])
def test_auto_follows_the_rule(vae_kind, mode, monkeypatch):
    """With "auto", checkpointing turns on once the activations the backward keeps (twice the
    decoder's in "dps") pass the chosen fraction of the weights in use, or half the free memory;
    "fast" only for the free memory."""
    model, vae, measurement = setup(vae_kind)
    monkeypatch.setattr(guidance_patch, "GRADIENT_CHECKPOINTING", "auto")
    renderer = guidance_patch.Renderer(model, vae)
    renderer.prepare()
    latent = torch.zeros(1, 4, SIZE // 8, SIZE // 8, requires_grad=True)
    with torch.inference_mode(False):
        saved = renderer.saved_bytes_per_latent_pixel(latent) * (SIZE // 8) ** 2
    weights = tensor_bytes(model.model.diffusion_model, vae.first_stage_model)
    assert saved > 0 and weights > 0
    free = comfy.model_management.get_free_memory(latent.device)
    settings = {  # (weight fraction, free-memory fraction) -> expected
        (1.01 * 2 * saved / weights, float("inf")): False,
        (0.99 * 2 * saved / weights, float("inf")): mode == "dps",
        (float("inf"), 0.5 * saved / free): True,  # (free memory moves: a wide margin)
    }
    calls = {}
    for (weight_fraction, memory_fraction), expected in settings.items():
        monkeypatch.setattr(guidance_patch, "CHECKPOINT_WEIGHT_FRACTION", weight_fraction)
        monkeypatch.setattr(guidance_patch, "CHECKPOINT_MEMORY_FRACTION", memory_fraction)
        decoder_calls, handles = block_calls(vae.first_stage_model)
        try:
            _, patch = sample(model, vae, measurement, mode, steps=1)
        finally:
            for handle in handles:
                handle.remove()
        assert patch.renderer.through_model is (mode == "dps")
        with torch.inference_mode(False):
            assert patch.renderer.checkpointing(latent, "decoder") is expected
        calls.setdefault(expected, set()).add(len(decoder_calls))
    # Every count includes the new patch's probe (two tiny decodes); only the recomputation differs.
    assert len(calls[False]) == len(calls[True]) == 1 and min(calls[False]) < min(calls[True]), calls
