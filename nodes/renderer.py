"""Model space <-> the image the operator sees, for guidance methods (`dps.guidance.core.Renderer`).

Latent models render through the VAE's decoder (and encode through its encoder); pixel models
render x in [-1, 1] as (x + 1) / 2. Not clamped: clamping would zero the gradient wherever the
estimate leaves [0, 1].
"""

from __future__ import annotations

import torch

from ..dps.guidance import at_least_float32
from ..dps.guidance.core import PixelRenderer
from .dynamic_vram import non_dynamic
from .inference_mode import autograd_ready


class Renderer:
    """Maps a denoised latent (model space) [B, c, h, w] to the image [B, C, H, W] in [0, 1] that the
    operator sees, and back with `encode`."""

    def __init__(self, model_patcher, vae=None):
        self.base_model = model_patcher.model
        self.vae = vae
        # The VAE's weights are differentiated too: under Dynamic VRAM, through its non-dynamic delegate,
        # whose module is the one to call (today's ComfyUI: vae.patcher.model is vae.first_stage_model).
        self.vae_patcher = None if vae is None else non_dynamic(vae.patcher, "vae")
        self.autoencoder = None if vae is None else self.vae_patcher.model
        self._pixels = PixelRenderer()

    @property
    def affine(self) -> bool:
        """Pixel models render by (x + 1) / 2 (see dps.guidance.core.Renderer)."""
        return self.vae is None

    @property
    def data_range(self) -> tuple[float, float] | None:
        """Pixel models' images live in [-1, 1] (see dps.guidance.core.Renderer); latents have no bound."""
        return (-1.0, 1.0) if self.vae is None else None

    @property
    def scale(self) -> int:
        """Image pixels per latent pixel along each side."""
        return 1 if self.vae is None else self.vae.spacial_compression_decode()

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return self._pixels(latent)
        vae_latent = self.base_model.process_latent_out(latent).to(self.vae.device, self.vae.vae_dtype)
        decoded = self.autoencoder.decode(vae_latent)
        if decoded.ndim != 4:
            raise ValueError(f"vae: expected an image VAE that decodes to [B, C, H, W], got {tuple(decoded.shape)}")
        return (at_least_float32(decoded) + 1) / 2

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The model-space latent of an image in [0, 1] (the VAE encoder's mode for latent models),
        at least float32, on the VAE's device."""
        if self.vae is None:
            return self._pixels.encode(image)
        encoder = self.autoencoder
        if not hasattr(encoder, "encode"):
            raise ValueError("vae: this VAE has no encoder, so a latent cannot be made from an image")
        pixels = (image * 2 - 1).to(self.vae.device, self.vae.vae_dtype)
        encoded = encoder.encode(pixels)
        if isinstance(encoded, tuple):  # (latent, regulariser log) when asked for; the latent is the mode
            encoded = encoded[0]
        return self.base_model.process_latent_in(at_least_float32(encoded))

    def prepare(self) -> None:
        """Make the decoder's weights usable by autograd (see nodes/inference_mode.py)."""
        if self.vae is not None:
            autograd_ready(self.autoencoder)

    def output_size(self, latent_shape) -> tuple[int, int]:
        return latent_shape[-2] * self.scale, latent_shape[-1] * self.scale
