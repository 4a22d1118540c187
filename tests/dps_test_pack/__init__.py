"""A test-only ComfyUI node pack: small real models and tensor probes for server tests.

It is linked into the test server's custom_nodes beside ComfyUI-DPS; it never ships."""

import hashlib
import json
import os
import pathlib
import sys

import torch
from safetensors.torch import save_file

import folder_paths

# The server imports this pack through a link in its custom_nodes: the repository root (for
# testkit, shared with the tests) is not on its path.
ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from .probes import NODE_CLASS_MAPPINGS as PROBE_NODES  # noqa: E402
from testkit.tiny_models import MODEL_TYPES, pixel_space_vae, tiny_conditioning, tiny_kl_vae, tiny_taesd_vae, tiny_unet  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TinyModel:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_type": (list(MODEL_TYPES),),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            "dtype": (list(DTYPES),),
        }, "optional": {"pixel_space": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "build"
    CATEGORY = "DPS tests"

    def build(self, model_type, seed, dtype, pixel_space=False):
        return (tiny_unet(model_type, seed, DTYPES[dtype], pixel=pixel_space),)


class TinyVAE:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"kind": (["taesd", "kl", "pixel"],), "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "build"
    CATEGORY = "DPS tests"

    def build(self, kind, seed):
        if kind == "pixel":
            return (pixel_space_vae(),)
        return ((tiny_taesd_vae if kind == "taesd" else tiny_kl_vae)(seed),)


class TinyConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "build"
    CATEGORY = "DPS tests"

    def build(self, seed):
        return (tiny_conditioning(seed),)


class Pattern:
    """A smooth deterministic test picture (IMAGE [B, H, W, 3])."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 64, "min": 8, "max": 4096}),
            "height": ("INT", {"default": 64, "min": 8, "max": 4096}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "build"
    CATEGORY = "DPS tests"

    def build(self, width, height, seed, batch_size):
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.rand(batch_size, 3, max(height // 8, 2), max(width // 8, 2), generator=generator)
        image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
        return (image.clamp(0, 1).permute(0, 2, 3, 1).contiguous(),)


def tensor_digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().cpu().contiguous().float().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


class SaveTensor:
    """Saves a LATENT's samples or an IMAGE exactly (safetensors) and reports its digest."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"filename_prefix": ("STRING", {"default": "dps_test"})},
                "optional": {"latent": ("LATENT",), "image": ("IMAGE",)}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "DPS tests"

    def save(self, filename_prefix, latent=None, image=None):
        tensor = latent["samples"] if latent is not None else image
        folder = folder_paths.get_output_directory()
        name = f"{filename_prefix}.safetensors"
        save_file({"tensor": tensor.detach().cpu().contiguous().clone()}, os.path.join(folder, name))
        info = {"filename": name, "digest": tensor_digest(tensor), "shape": list(tensor.shape),
                "finite": bool(torch.isfinite(tensor).all())}
        return {"ui": {"tensors": [info], "text": [json.dumps(info)]}}


NODE_CLASS_MAPPINGS = {
    "DPSTestTinyModel": TinyModel,
    "DPSTestTinyVAE": TinyVAE,
    "DPSTestConditioning": TinyConditioning,
    "DPSTestPattern": Pattern,
    "DPSTestSaveTensor": SaveTensor,
    **PROBE_NODES,
}
