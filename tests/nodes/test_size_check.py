"""The size rule between a latent and a measurement (nodes/size_check.py) and its messages."""

import pytest
import torch

from comfyui_dps.dps.measurement import Measurement
from comfyui_dps.dps.noise import GaussianNoise
from comfyui_dps.dps.operators import SuperResolution

from testkit.host import load_pack

load_pack()

from comfyui_dps.nodes.size_check import check_sizes  # noqa: E402


def measurement(batch=1, side=16):
    return Measurement(torch.rand(batch, 3, side, side), SuperResolution(4, "average"), GaussianNoise(0.05))


def test_a_latent_that_renders_to_the_measured_size_passes():
    check_sizes(measurement(), 8, (2, 4, 8, 8))  # 8x8 latent at scale 8 -> 64x64 = 4 x 16
    check_sizes(measurement(batch=2), 8, (2, 4, 8, 8))
    check_sizes(measurement(), 1, (1, 3, 64, 64))


def test_a_wrong_latent_size_says_which_latent_to_use():
    with pytest.raises(ValueError, match=r"latent_image: a 6x8 latent renders to 48x64 pixels, but the measurement "
                                         r"explains 64x64 images: use a 8x8 latent"):
        check_sizes(measurement(), 8, (1, 4, 8, 6))


def test_an_image_size_the_vae_cannot_reach_says_crop_or_pad():
    odd = Measurement(torch.rand(1, 3, 15, 15), SuperResolution(4, "average"), GaussianNoise(0.05))  # 60x60
    with pytest.raises(ValueError, match="measurement: its image size 60x60 is not a multiple of the VAE's scale 8"):
        check_sizes(odd, 8, (1, 4, 8, 8))


def test_batches_must_match_unless_the_measurement_has_one():
    with pytest.raises(ValueError, match="latent_image: batch 3 does not match the measurement's batch 2"):
        check_sizes(measurement(batch=2), 8, (3, 4, 8, 8))
