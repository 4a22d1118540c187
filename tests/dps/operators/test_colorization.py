"""Colourisation (colorization.py): BT.601 luma, its pictures, and deepinv's Decolorize."""

import pytest
import torch
from operator_cases import image, like

import comfyui_dps.dps.operators as ops


def test_colorization_luma_and_picture_conversions():
    op = ops.Colorization()
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2).double()
    torch.testing.assert_close(op(x), torch.full((1, 1, 2, 2), 0.299, dtype=torch.float64))
    rgb = image(batch=1, seed=6)
    torch.testing.assert_close(op.measurement_from_image(rgb), op(rgb))
    grey = image(batch=1, channels=1, seed=7)
    assert op.measurement_from_image(grey) is grey
    assert op.measurement_to_image(grey).shape == (1, 3, 24, 24)
    # The grey picture is an exact preimage of its luma (weights sum to 1).
    torch.testing.assert_close(op(grey.expand(-1, 3, -1, -1)), grey)


def test_colorization_needs_rgb():
    with pytest.raises(ValueError, match=r"^image: expected 3 colour channels \(RGB\), got 1$"):
        ops.Colorization()(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"image: expected a picture \[B, 1 or 3, H, W\]"):
        ops.Colorization().measurement_from_image(torch.zeros(1, 4, 4, 4))


def test_colorization_matches_deepinv_decolorize(deepinv):
    # deepinv's default "rec601" uses MATLAB's rounded (0.2989, 0.5870, 0.1140) renormalised to
    # sum 1, 4e-5 away from the BT.601 (0.299, 0.587, 0.114) we use; so we give deepinv our
    # weights. It stores them in float32: agreement to ~1e-7.
    x = image(batch=2, seed=11)
    y = like(ops.Colorization()(x), seed=12)
    theirs = deepinv.physics.Decolorize(srf=[0.299, 0.587, 0.114])
    torch.testing.assert_close(ops.Colorization()(x), theirs(x).double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ops.Colorization().adjoint(y), theirs.A_adjoint(y).double(), rtol=0, atol=1e-6)
