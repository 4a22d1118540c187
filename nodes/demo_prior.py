"""The bundled demo diffusion prior: a small pixel-space UNet that runs as a real ComfyUI MODEL.

No Stable Diffusion weights ship with this pack, so it carries a small prior of its own
(`models/demo_prior.safetensors`, trained by `scripts/train_demo_prior.py` on public-domain /
CC0 photographs from scikit-image) so that a newcomer can see DPS work without downloads.

The network is ComfyUI's own `UNetModel` (comfy.ldm.modules.diffusionmodules.openaimodel)
without transformer blocks, so it takes no text context and is fully convolutional. A thin
subclass (`PaddedUNetModel`, same weights) reflect-pads inputs to a multiple of the downsampling
factor (16) and to at least the training crop size, so any image size works. It is wrapped in ComfyUI's
`BaseModel` with the standard discrete schedule (ModelSamplingDiscrete, SD's linear betas), so
every stock sampler and scheduler drives it. Pixel space: 3 channels in [-1, 1]; the latent
format is `ChromaRadiance` (identity) and the VAE is ComfyUI's pixel-space conversion VAE.

This module is shared with the training script (which imports it from the pack without registering
the nodes), so the model definition used for training and for loading cannot drift apart.
"""

import json
import pathlib

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.supported_models_base
import comfy.utils
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from ..dps.operators import padding

# comfy.sd and comfy.model_patcher are imported where used: the training script needs only the
# model definition, and comfy.sd pulls in the text encoders (transformers) as well.

# Where the pack keeps its weights.
DEFAULT_PATH = pathlib.Path(__file__).resolve().parents[1] / "models" / "demo_prior.safetensors"

# The UNet has no cross-attention, so the conditioning tensor is never read. KSampler still
# needs one, shaped (batch, tokens, dim): this is its (arbitrary, tiny) last dimension.
CONTEXT_DIM = 1

# The architecture the shipped weights were trained with (the header of the file is the
# authority when loading; this is the default for training).
DEFAULT_UNET_CONFIG = {
    "image_size": 64,  # unused by the network (fully convolutional); required argument
    "in_channels": 3,
    "out_channels": 3,
    "model_channels": 32,
    "num_res_blocks": 2,
    "channel_mult": [1, 2, 3, 4, 4],
    "transformer_depth": [0] * 10,
    "transformer_depth_output": [0] * 15,
    "transformer_depth_middle": -1,  # middle block: one residual block, no attention
    "use_spatial_transformer": False,
    "context_dim": None,
    "num_heads": -1,
    "num_head_channels": 32,
    "use_scale_shift_norm": True,
    "resblock_updown": False,
    "adm_in_channels": None,
    "use_linear_in_transformer": False,
}

# Images smaller than this (per side) are reflect-padded up to it before the UNet and cropped
# after: the net was trained on 128 px crops, and on smaller inputs its zero-padded deepest
# levels (4x4 at 64 px) gave the x0 estimate a dark bias worth 3-4 dB (measured at 64 px).
DEFAULT_MIN_SIZE = 128

MODEL_TYPES = {
    "eps": comfy.model_base.ModelType.EPS,
    "v_prediction": comfy.model_base.ModelType.V_PREDICTION,
}


def _reflect(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflection padding by (top, bottom, left, right): torch's native kernel where one reflection
    covers the pad, the engine's index map (any width) otherwise. Both give the same values; the
    native kernel is faster and sums gradients in the order the demo's figures were measured with
    (DPS samples follow the gradient's rounding: the index map changed the test sample's residual
    from 1.32 to 3.15 times the noise)."""
    top, bottom, left, right = pads
    h, w = x.shape[-2:]
    if max(top, bottom) < h and max(left, right) < w:
        return torch.nn.functional.pad(x, (left, right, top, bottom), mode="reflect")
    return padding.pad(x, pads, "reflect")


class PaddedUNetModel(UNetModel):
    """ComfyUI's UNetModel that takes any image size: the input is reflect-padded to a multiple
    of the downsampling factor and to at least `min_size` per side, and the output cropped back.
    Same parameters (and state-dict keys) as UNetModel."""

    def __init__(self, *args, min_size=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.min_size = min_size
        self.size_multiple = 2 ** (len(self.channel_mult) - 1)

    def forward(self, x, *args, **kwargs):
        h, w = x.shape[-2:]
        m = self.size_multiple
        target_h = max(self.min_size, -(-h // m) * m)
        target_w = max(self.min_size, -(-w // m) * m)
        target_h, target_w = -(-target_h // m) * m, -(-target_w // m) * m
        if (target_h, target_w) == (h, w):
            return super().forward(x, *args, **kwargs)
        ph, pw = target_h - h, target_w - w
        top, left = ph // 2, pw // 2
        out = super().forward(_reflect(x, (top, ph - top, left, pw - left)), *args, **kwargs)
        return out[..., top:top + h, left:left + w]


class DemoPriorConfig(comfy.supported_models_base.BASE):
    """ComfyUI model config of the demo prior (never auto-detected: built explicitly)."""

    unet_config = {}  # filled per instance
    unet_extra_config = {}  # heads are set in the unet config itself
    latent_format = comfy.latent_formats.ChromaRadiance
    sampling_settings = {}  # ModelSamplingDiscrete defaults: SD linear betas, 1000 steps
    # fp32 only: the prior is small, and DPS differentiates through it.
    supported_inference_dtypes = [torch.float32]
    # Scales ComfyUI's activation-memory estimate (which assumes 8x-downsampled latents).
    memory_usage_factor = 0.05

    def inpaint_model(self):
        return False


def full_unet_config(unet_config: dict) -> dict:
    """Fill in the list-valued fields that depend on the number of levels and blocks."""
    cfg = dict(DEFAULT_UNET_CONFIG)
    cfg.update(unet_config)
    levels = len(cfg["channel_mult"])
    blocks = cfg["num_res_blocks"]
    cfg["transformer_depth"] = [0] * (levels * blocks)
    cfg["transformer_depth_output"] = [0] * (levels * (blocks + 1))
    cfg["channel_mult"] = list(cfg["channel_mult"])
    return cfg


def downsampling_factor(unet_config: dict) -> int:
    """The UNet's total downsampling (PaddedUNetModel pads other sizes up to a multiple)."""
    return 2 ** (len(unet_config["channel_mult"]) - 1)


def build_model(unet_config: dict, model_type: str = "v_prediction", device=None,
                dtype=torch.float32, operations=None, min_size: int = 0) -> comfy.model_base.BaseModel:
    """A ComfyUI BaseModel of the demo prior's architecture (weights uninitialised).

    min_size: inputs smaller than this per side are reflect-padded up to it (0: only up to a
    multiple of the downsampling factor). Training uses 0; loading uses the file's value."""
    config = DemoPriorConfig(full_unet_config(unet_config))
    config.set_inference_dtype(dtype, None)
    if operations is not None:
        config.custom_operations = operations

    def unet(**kwargs):
        return PaddedUNetModel(min_size=min_size, **kwargs)

    return comfy.model_base.BaseModel(config, model_type=MODEL_TYPES[model_type], device=device, unet_model=unet)


def init_weights(model: comfy.model_base.BaseModel, zero_out: bool = True) -> None:
    """PyTorch default initialisation (comfy.ops skips it). With zero_out, each residual
    branch's last conv and the output conv start at zero (the usual diffusion-UNet init)."""
    net = model.diffusion_model
    for m in net.modules():
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm):
            if isinstance(m, base):
                base.reset_parameters(m)
                break
    if not zero_out:
        return
    zero = [net.out[-1]] + [blk.out_layers[-1] for blk in net.modules() if hasattr(blk, "out_layers")]
    with torch.no_grad():
        for conv in zero:
            conv.weight.zero_()
            if conv.bias is not None:
                conv.bias.zero_()


def read_header(path) -> dict:
    """The safetensors header metadata (a dict of strings) of a weights file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def pixel_space_vae():
    """ComfyUI's pixel-space conversion VAE: IMAGE in [0, 1] <-> latent in [-1, 1]."""
    import comfy.sd

    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


def empty_conditioning() -> list:
    """An unconditional CONDITIONING, usable as both positive and negative for this model."""
    return [[torch.zeros(1, 1, CONTEXT_DIM), {}]]


def load_demo_prior(path=DEFAULT_PATH):
    """Load the demo prior: returns (ModelPatcher, pixel-space VAE). safetensors only."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demo prior weights not found: {path}")
    meta = read_header(path)
    if "dps.unet_config" not in meta:
        raise ValueError(f"{path} has no 'dps.unet_config' in its header: not a DPS demo prior")
    unet_config = json.loads(meta["dps.unet_config"])
    model_type = meta.get("dps.model_type", "v_prediction")
    min_size = int(meta.get("dps.min_size", DEFAULT_MIN_SIZE))

    import comfy.model_patcher

    sd = comfy.utils.load_torch_file(str(path), safe_load=True)
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    model = build_model(unet_config, model_type, device=offload_device, min_size=min_size)
    model.diffusion_model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    model.eval()
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    return patcher, pixel_space_vae()
