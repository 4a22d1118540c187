"""Guidance under Dynamic VRAM (nodes/dynamic_vram.py).

On CPU, and in ComfyUI 0.3.75, no patcher is dynamic, so the delegate logic is checked with stand-ins
that follow upstream's protocol (`is_dynamic()`, `get_non_dynamic_delegate()`, ComfyUI 0.38), and the
real patchers are checked to pass through unchanged. The GPU half (gradients equal with weights fully
loaded and offloaded) is tests/nodes/test_offloaded_gradients.py."""

import pytest
import torch

from testkit.host import load_pack

load_pack()

from testkit.tiny_models import tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.nodes.dynamic_vram import is_dynamic, non_dynamic  # noqa: E402
from comfyui_dps.nodes.renderer import Renderer  # noqa: E402


class Static:
    def __init__(self, model=None):
        self.model = model

    def is_dynamic(self):
        return False


class Dynamic:
    def __init__(self, delegate):
        self.delegate = delegate

    def is_dynamic(self):
        return True

    def get_non_dynamic_delegate(self):
        if isinstance(self.delegate, Exception):
            raise self.delegate
        return self.delegate


def test_todays_patchers_are_used_as_they_are():
    with torch.inference_mode():
        model = tiny_unet("eps")
        vae = tiny_taesd_vae()
    assert not is_dynamic(model) and non_dynamic(model) is model
    assert non_dynamic(vae.patcher) is vae.patcher
    assert Renderer(model, vae).autoencoder is vae.first_stage_model


def test_a_dynamic_patcher_is_replaced_by_its_non_dynamic_delegate():
    delegate = Static(model=torch.nn.Identity())
    assert non_dynamic(Dynamic(delegate)) is delegate
    assert non_dynamic(object()) is not None  # no is_dynamic at all (older ComfyUI): used as it is


def test_a_delegate_comfyui_cannot_give_is_a_clear_error():
    failing = Dynamic(RuntimeError("Cannot create non-dynamic delegate: cached_patcher_init is not initialized."))
    with pytest.raises(ValueError, match="vae: it is loaded with ComfyUI's Dynamic VRAM.*--disable-dynamic-vram"):
        non_dynamic(failing, "vae")
    with pytest.raises(ValueError, match="model: ComfyUI's non-dynamic copy of it is still dynamic"):
        non_dynamic(Dynamic(Dynamic(None)))


def test_the_renderer_decodes_with_the_delegates_module():
    """Under Dynamic VRAM the VAE's delegate may hold a module of its own: that one is differentiated."""
    with torch.inference_mode():
        model = tiny_unet("eps")
        vae = tiny_taesd_vae()

    class Decoder(torch.nn.Module):
        def decode(self, latent):
            return torch.zeros(latent.shape[0], 3, latent.shape[-2] * 8, latent.shape[-1] * 8) - 1

    vae.patcher = Dynamic(Static(model=Decoder()))
    renderer = Renderer(model, vae)
    with torch.inference_mode(False):
        image = renderer(torch.zeros(1, 4, 2, 2))
    assert torch.equal(image, torch.zeros(1, 3, 16, 16))  # the stand-in's decode, not TAESD's
