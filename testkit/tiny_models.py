"""Small real ComfyUI models for tests: ComfyUI's own UNet, model-sampling and VAE classes in a
tiny configuration, with deterministic weights (no downloads)."""

from __future__ import annotations

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models_base
import comfy.taesd.taesd

MODEL_TYPES = {
    "eps": comfy.model_base.ModelType.EPS,
    "v_prediction": comfy.model_base.ModelType.V_PREDICTION,
    "flow": comfy.model_base.ModelType.FLOW,
}
CONTEXT_DIM = 32


class TinyUNetConfig(comfy.supported_models_base.BASE):
    unet_config = {
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 32,
        "channel_mult": [1, 2],
        "num_res_blocks": [1, 1],
        "transformer_depth": [1, 1],
        "transformer_depth_output": [1, 1, 1, 1],
        "transformer_depth_middle": 1,
        "context_dim": CONTEXT_DIM,
        "use_linear_in_transformer": True,
        "use_spatial_transformer": True,
        "adm_in_channels": None,
        "image_size": 32,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }
    unet_extra_config = {"num_heads": -1, "num_head_channels": 16}
    latent_format = comfy.latent_formats.SD15
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.float32, torch.float16, torch.bfloat16]


def _initialise(module: torch.nn.Module, seed: int) -> None:
    """comfy.ops leaves weights uninitialised (torch.empty): give every tensor a fixed value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # in whatever mode the module was built (loaders build in inference mode)
        for name, tensor in module.named_parameters():
            if tensor.ndim >= 2:
                fan_in = tensor[0].numel()
                values = torch.randn(tensor.shape, generator=generator) / fan_in**0.5
            elif "norm" in name and name.endswith("weight"):
                values = torch.ones(tensor.shape)
            else:
                values = torch.randn(tensor.shape, generator=generator) * 0.02
            tensor.copy_(values.to(tensor.dtype))


class TinyPixelUNetConfig(TinyUNetConfig):
    """The same UNet in pixel space: 3 channels, images in [-1, 1] (ComfyUI's ChromaRadiance format)."""

    unet_config = dict(TinyUNetConfig.unet_config, in_channels=3, out_channels=3)
    latent_format = comfy.latent_formats.ChromaRadiance


def tiny_unet(model_type: str = "eps", seed: int = 0, dtype: torch.dtype = torch.float32, pixel: bool = False):
    """A ModelPatcher around ComfyUI's UNetModel (~1M parameters; 4 latent channels, or 3 in
    pixel space)."""
    config_class = TinyPixelUNetConfig if pixel else TinyUNetConfig
    config = config_class(dict(config_class.unet_config, dtype=dtype))
    if model_type == "flow":
        config.sampling_settings = {"shift": 3.0, "multiplier": 1000}
    model = comfy.model_base.BaseModel(config, model_type=MODEL_TYPES[model_type], device="cpu")
    _initialise(model.diffusion_model, seed)
    model.diffusion_model.to(dtype)
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def tiny_conditioning(seed: int = 0, tokens: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, CONTEXT_DIM, generator=generator), {}]]


def pixel_space_vae():
    """ComfyUI's identity 'VAE' for pixel-space models (what VAELoader's pixel_space option gives)."""
    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


def tiny_taesd_vae(seed: int = 0):
    """A comfy.sd.VAE detected as TAESD (8x down-scaling, 4 latent channels), random weights."""
    torch.manual_seed(seed)
    with torch.inference_mode(False):
        taesd = comfy.taesd.taesd.TAESD()
        _initialise(taesd, seed)
        sd = {k: v.detach().clone() for k, v in taesd.state_dict().items()}
    return comfy.sd.VAE(sd=sd)


TINY_KL_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3,
    "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
}


def tiny_kl_vae(seed: int = 0):
    """A small AutoencoderKL (ComfyUI's own class, 8x down-scaling), random weights."""
    import comfy.ldm.models.autoencoder

    with torch.inference_mode(False):
        model = comfy.ldm.models.autoencoder.AutoencoderKL(
            ddconfig=TINY_KL_DDCONFIG, embed_dim=4
        )
        _initialise(model, seed)
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return comfy.sd.VAE(sd=sd, config={"target": "comfy.ldm.models.autoencoder.AutoencoderKL", "params": {"ddconfig": TINY_KL_DDCONFIG, "embed_dim": 4}})
