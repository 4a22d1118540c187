"""On a GPU: guidance gives the same result whether the model's weights are fully loaded or offloaded
(cast to the GPU per operation, as ComfyUI does for models larger than free VRAM, and as Dynamic VRAM
does for every model). A weight buffer reused before the backward pass has run would change the
gradient, and so the samples. Skipped without CUDA; `scripts/gpu_check.sh` runs it on a lent GPU."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from testkit.host import load_pack  # noqa: E402

load_pack()

import comfy.model_management  # noqa: E402
import comfy.sample  # noqa: E402
from testkit.tiny_models import tiny_conditioning, tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402

SIZE = 64


def run(mode, vram_state, monkeypatch):
    """Two guided euler steps with ComfyUI loading the model in `vram_state`."""
    comfy.model_management.unload_all_models()
    monkeypatch.setattr(comfy.model_management, "vram_state", vram_state)
    with torch.inference_mode():
        model = tiny_unet("eps", seed=0)
        vae = tiny_taesd_vae(seed=0)
        picture = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
        measurement = simulate(picture, SuperResolution(4, "bicubic"), GaussianNoise(0.05), seed=2)
    patched, patch = guided_model(model, measurement, mode, 1.0, vae)
    cond = tiny_conditioning(0)
    noise = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out = comfy.sample.sample(patched, noise, 2, 1.0, "euler", "normal", cond, cond, torch.zeros_like(noise),
                                  disable_pbar=True, seed=0)
    offloaded = any(getattr(m, "comfy_cast_weights", False) and m.weight is not None and m.weight.device.type == "cpu"
                    for m in model.model.diffusion_model.modules() if hasattr(m, "weight"))
    return out.float().cpu(), patch.trace.residuals, offloaded


@pytest.mark.parametrize("mode", ["dps", "fast"])
def test_offloaded_weights_give_the_same_guidance_as_loaded_ones(mode, monkeypatch):
    loaded, residuals, offloaded = run(mode, comfy.model_management.VRAMState.NORMAL_VRAM, monkeypatch)
    assert not offloaded
    streamed, streamed_residuals, offloaded = run(mode, comfy.model_management.VRAMState.NO_VRAM, monkeypatch)
    assert offloaded, "the NO_VRAM load kept every weight on the GPU: the test would prove nothing"
    torch.testing.assert_close(streamed, loaded, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.tensor(streamed_residuals), torch.tensor(residuals), rtol=1e-4, atol=1e-6)
