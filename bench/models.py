"""ComfyUI's own UNetModel, TAESD and AutoencoderKL in SD1.5-like shapes scaled to fit a small
machine, built as ComfyUI's loader nodes build them: under torch.inference_mode(), so every
weight is an inference tensor until the guidance makes it usable by autograd.

SD1.5 for reference: UNet model_channels 320, channel_mult [1, 2, 4, 4], 2 res blocks per level,
attention (8 heads, context 768) at the three highest-resolution levels and the middle block;
VAE decoder ch 128, ch_mult [1, 2, 4, 4], 2 (+1) res blocks per level, attention in its middle
block. Here: the same UNet layout with model_channels 64 (1/5 of the channels, about 1/23 of the
weights: 36.6M parameters) and attention only at the two lower-resolution levels that have it in
SD1.5 (levels 1 and 2) plus the middle block, so that 1024x1024 images stay affordable on a CPU;
the real TAESD architecture (ComfyUI's class, random weights); an AutoencoderKL with SD's ddconfig
at ch 32 (1/4 of the channels; GroupNorm(32) allows no fewer). Weights are random (deterministic):
speed and memory do not depend on their values.
"""

from __future__ import annotations

import torch

from bench.common import load_pack

load_pack()

import comfy.latent_formats  # noqa: E402
import comfy.ldm.models.autoencoder  # noqa: E402
import comfy.model_base  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.supported_models_base  # noqa: E402
import comfy.taesd.taesd  # noqa: E402
from testkit.tiny_models import _initialise  # noqa: E402

CONTEXT_DIM = 768
TOKENS = 77
MODEL_CHANNELS = 64


class SDLikeUNetConfig(comfy.supported_models_base.BASE):
    unet_config = {
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": MODEL_CHANNELS,
        "channel_mult": [1, 2, 4, 4],
        "num_res_blocks": [2, 2, 2, 2],
        # SD1.5: [1, 1, 1, 1, 1, 1, 0, 0] / [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]; here level 0 has none.
        "transformer_depth": [0, 0, 1, 1, 1, 1, 0, 0],
        "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "transformer_depth_middle": 1,
        "context_dim": CONTEXT_DIM,
        "use_linear_in_transformer": False,
        "use_spatial_transformer": True,
        "adm_in_channels": None,
        "image_size": 32,
        "legacy": False,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }
    unet_extra_config = {"num_heads": 8, "num_head_channels": -1}
    latent_format = comfy.latent_formats.SD15
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]


#: SD1.5's own UNet layout at full width (860M parameters), for the full-size memory check.
SD15_UNET = dict(
    SDLikeUNetConfig.unet_config, model_channels=320,
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],  # popped from the end: level 3 first
)


def sd_like_unet(dtype: torch.dtype = torch.float32, seed: int = 0, full_size: bool = False):
    """A ModelPatcher around ComfyUI's UNetModel (EPS, SD1.5 latent format), weights made in
    inference mode; scaled down unless `full_size` (SD1.5's own layout and width)."""
    with torch.inference_mode():
        unet_config = SD15_UNET if full_size else SDLikeUNetConfig.unet_config
        config = SDLikeUNetConfig(dict(unet_config, dtype=dtype))
        load_device = comfy.model_management.get_torch_device()
        model = comfy.model_base.BaseModel(config, model_type=comfy.model_base.ModelType.EPS, device=load_device)
        _initialise(model.diffusion_model, seed)
        model.diffusion_model.to(dtype)
        offload_device = comfy.model_management.unet_offload_device()
        return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def conditioning(seed: int = 0, dtype: torch.dtype = torch.float32):
    """[[context (1, 77, 768), {}]], made in inference mode like a text encoder node's output."""
    with torch.inference_mode():
        generator = torch.Generator().manual_seed(seed)
        return [[torch.randn(1, TOKENS, CONTEXT_DIM, generator=generator).to(dtype), {}]]


KL_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
    "ch": 32, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}


def _state_dict(module: torch.nn.Module, seed: int) -> dict:
    with torch.inference_mode(False):
        _initialise(module, seed)
        return {k: v.detach().clone() for k, v in module.state_dict().items()}


def taesd_vae(seed: int = 0, full_size: bool = False):
    """comfy.sd.VAE detected as TAESD from a state dict (the real architecture at its real size,
    whatever `full_size` says), loaded in inference mode as VAELoader does."""
    sd = _state_dict(comfy.taesd.taesd.TAESD(), seed)
    with torch.inference_mode():
        return comfy.sd.VAE(sd=sd)


def kl_vae(seed: int = 0, full_size: bool = False):
    """comfy.sd.VAE around ComfyUI's AutoencoderKL with SD's ddconfig at ch 32 (SD's own ch 128
    if `full_size`), loaded in inference mode."""
    ddconfig = dict(KL_DDCONFIG, ch=128) if full_size else KL_DDCONFIG
    sd = _state_dict(comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=ddconfig, embed_dim=4), seed)
    config = {"target": "comfy.ldm.models.autoencoder.AutoencoderKL",
              "params": {"ddconfig": ddconfig, "embed_dim": 4}}
    with torch.inference_mode():
        return comfy.sd.VAE(sd=sd, config=config)


VAES = {"TAESD": taesd_vae, "AutoencoderKL": kl_vae}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
