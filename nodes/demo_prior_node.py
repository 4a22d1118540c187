"""Load DPS Demo Prior: the small bundled pixel-space diffusion prior, as MODEL + VAE + CONDITIONING."""

import pathlib

import torch
from comfy_api.latest import io

from . import demo_prior

# The loaded prior, kept for the life of the process: {path: (mtime, ModelPatcher, VAE)}.
_CACHE = {}


def cached_demo_prior(path=demo_prior.DEFAULT_PATH):
    """(ModelPatcher, VAE), loaded once per process (again only if the file changes)."""
    key = str(path)
    mtime = pathlib.Path(path).stat().st_mtime_ns
    hit = _CACHE.get(key)
    if hit is None or hit[0] != mtime:
        # Load outside inference mode, so the weights are ordinary tensors that DPS can
        # differentiate through (ComfyUI runs every node under torch.inference_mode()).
        with torch.inference_mode(False):
            patcher, vae = demo_prior.load_demo_prior(path)
        hit = _CACHE[key] = (mtime, patcher, vae)
    return hit[1], hit[2]


class DPSLoadDemoPrior(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSLoadDemoPrior",
            display_name="Load DPS Demo Prior",
            category="DPS/models",
            description=(
                "Loads the small diffusion prior bundled with ComfyUI-DPS (about 7 M parameters, "
                "pixel space, trained on public-domain / CC0 photographs from scikit-image) so DPS "
                "can be tried without downloading a model. It is a weak prior of natural-image "
                "texture, not a generator of scenes: use it for restoration demos at 64 to 256 px "
                "(sides a multiple of 16). For real work load a Stable Diffusion checkpoint instead."
            ),
            inputs=[],
            outputs=[
                io.Model.Output(
                    display_name="model",
                    tooltip="The demo diffusion model (ComfyUI UNet, v-prediction, standard SD "
                            "noise schedule) working directly on RGB pixels.",
                ),
                io.Vae.Output(
                    display_name="vae",
                    tooltip="ComfyUI's pixel-space conversion VAE: encode/decode only rescale "
                            "between IMAGE [0, 1] and the model's [-1, 1] pixels.",
                ),
                io.Conditioning.Output(
                    display_name="conditioning",
                    tooltip="An empty conditioning (the model takes no text): connect it to both "
                            "positive and negative of the sampler; keep cfg at 1.0.",
                ),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        patcher, vae = cached_demo_prior()
        return io.NodeOutput(patcher.clone(), vae, demo_prior.empty_conditioning())


NODES = [DPSLoadDemoPrior]
