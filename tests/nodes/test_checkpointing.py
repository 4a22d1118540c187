"""Gradient checkpointing during guidance (nodes/checkpointing.py): it changes no result, it really
recomputes the blocks it checkpoints, and "auto" turns it on exactly when the step would not fit
in free memory with the margin (speed first).

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
from comfyui_dps.nodes import checkpointing  # noqa: E402
from comfyui_dps.nodes.checkpointing import CheckpointPolicy, checkpoint_needed, decoder_bytes_per_latent_pixel  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402
from comfyui_dps.nodes.inference_mode import autograd_ready  # noqa: E402

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
    layers = [layer for block in checkpointing.checkpoint_blocks(module) for layer in block.modules()
              if not list(layer.children()) and any(True for _ in layer.parameters(recurse=False))]
    handles = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in layers]
    return calls, handles


def test_rule():
    mib = 2**20
    fraction = checkpointing.CHECKPOINT_MEMORY_FRACTION
    assert 0.5 <= fraction < 1
    assert not checkpoint_needed(0.99 * fraction * 1000 * mib, free_bytes=1000 * mib)
    assert checkpoint_needed(1.01 * fraction * 1000 * mib, free_bytes=1000 * mib)
    assert not checkpoint_needed(0, free_bytes=0)


class Patcher:
    """Stands in for a ModelPatcher in the policy's free-memory query (newer ComfyUI has one)."""

    def __init__(self, free):
        self.free = free

    def get_free_memory(self, device):
        return self.free


def test_the_policy_asks_the_model_patcher_for_free_memory_when_it_can():
    policy = CheckpointPolicy(Patcher(free=123), vae=None, through_model=True)
    assert policy.free_memory(torch.device("cpu")) == 123
    # Pixel models, "dps": what the model keeps is counted during the first call; before it, nothing.
    x = torch.zeros(2, 3, 8, 8)
    assert policy.saved_bytes(x) == 0 and policy.wants_model_count(x)
    policy.record_model_bytes(x, 1000)
    assert policy.saved_bytes(x) == 1000 and not policy.wants_model_count(x)
    assert policy.decide(x) == checkpointing.Decision(model=True, decoder=False)  # 1000 > 0.75 * 123
    policy.model_patcher.free = 10**6
    assert policy.decide(x) == checkpointing.Decision(model=False, decoder=False)
    policy.memory_was_short()  # after an out-of-memory error: always
    assert policy.decide(x) == checkpointing.Decision(model=True, decoder=False)


def test_settings_force_the_parts_a_step_differentiates(monkeypatch):
    x = torch.zeros(1, 3, 8, 8)
    for setting, through_model, expected in [(True, True, (True, False)), (True, False, (False, False)),
                                             (False, True, (False, False)), ("decoder", True, (False, False))]:
        monkeypatch.setattr(checkpointing, "GRADIENT_CHECKPOINTING", setting)
        decision = CheckpointPolicy(Patcher(free=0), vae=None, through_model=through_model).decide(x)
        assert (decision.model, decision.decoder) == expected, setting


@pytest.mark.parametrize("vae_kind", list(VAES))
@pytest.mark.parametrize("mode", ["dps", "fast"])
def test_checkpointing_changes_no_result(vae_kind, mode, monkeypatch):
    model, vae, measurement = setup(vae_kind)
    results = {}
    for setting in (False, True):
        monkeypatch.setattr(checkpointing, "GRADIENT_CHECKPOINTING", setting)
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
        monkeypatch.setattr(checkpointing, "GRADIENT_CHECKPOINTING", setting)
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
def test_auto_checkpoints_only_when_the_step_would_not_fit(vae_kind, mode, monkeypatch):
    """With "auto", checkpointing turns on once what the step keeps for backward (the decoder's
    activations, from the probe, plus in "dps" the diffusion model's, counted during the first call)
    passes the chosen share of free memory, and never below it."""
    model, vae, measurement = setup(vae_kind)
    monkeypatch.setattr(checkpointing, "GRADIENT_CHECKPOINTING", "auto")
    latent = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    autograd_ready(vae.first_stage_model)  # as the renderer does before the first guided call
    with torch.inference_mode(False):
        per_pixel = decoder_bytes_per_latent_pixel(vae.first_stage_model, latent)
    assert per_pixel > 0
    calls, policies = {}, {}
    for fraction, expected in [(float("inf"), False), (1e-12, True)]:
        monkeypatch.setattr(checkpointing, "CHECKPOINT_MEMORY_FRACTION", fraction)
        decoder_calls, handles = block_calls(vae.first_stage_model)
        try:
            _, patch = sample(model, vae, measurement, mode, steps=1)
        finally:
            for handle in handles:
                handle.remove()
        policy = patch.checkpointing
        assert policy.through_model is (mode == "dps")
        assert policy.decide(latent) == checkpointing.Decision(model=expected and mode == "dps", decoder=expected)
        calls[expected], policies[expected] = len(decoder_calls), policy
    # Every count includes the new patch's probe (two tiny decodes); only the recomputation differs.
    assert calls[False] < calls[True], calls
    # The decoder's share is the probe's slope times the latent's pixels.
    if mode == "fast":
        assert policies[False].saved_bytes(latent) == pytest.approx(per_pixel * (SIZE // 8) ** 2)
    else:  # the model's activations were counted in the uncheckpointed run, and add to the decoder's
        counted = policies[False]._model_bytes[tuple(latent.shape)]
        assert counted > 0
        assert policies[False].saved_bytes(latent) == pytest.approx(per_pixel * (SIZE // 8) ** 2 + counted)
        assert not policies[True]._model_bytes  # a checkpointed call counts nothing


def test_saved_bytes_counts_each_storage_once_and_changes_no_gradient():
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    with checkpointing.SavedBytes().counting() as saved:
        y = x * x  # saves x twice: one storage
        z = y[:500].sin()  # saves a view of y: y's storage, counted whole
    assert saved.total == 2 * 1000 * 8
    (gradient,) = torch.autograd.grad(z.sum(), x)
    expected = torch.zeros_like(x)
    expected[:500] = (torch.cos(x * x) * 2 * x)[:500].detach()
    torch.testing.assert_close(gradient, expected)
