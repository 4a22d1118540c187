"""Inpainting (inpainting.py): fixed masks in ComfyUI's convention (1 = missing) with their
layouts and checks, and random pixel masks reproducible by seed; checked against deepinv."""

import pytest
import torch
from operator_cases import image

import comfyui_dps.dps.operators as ops


def test_inpainting_keeps_unmasked_pixels_and_weights_partial_ones():
    mask = torch.zeros(4, 4)
    mask[0, 0], mask[1, 1] = 1.0, 0.25
    x = image(batch=2, size=(4, 4), seed=5)
    y = ops.Inpainting(mask)(x)
    assert (y[..., 0, 0] == 0).all()
    torch.testing.assert_close(y[..., 1, 1], 0.75 * x[..., 1, 1])
    torch.testing.assert_close(y[..., 2:, :], x[..., 2:, :], rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4), (1, 1, 4, 4), (2, 4, 4), (2, 1, 4, 4)])
def test_inpainting_mask_layouts(shape):
    mask = (torch.arange(16.0).view(4, 4) % 3 == 0).float().expand(shape)
    y = ops.Inpainting(mask)(torch.ones(2, 3, 4, 4))
    torch.testing.assert_close(y, (1 - mask.reshape(-1, 1, 4, 4)).expand(2, 3, 4, 4))


def test_the_mask_is_a_private_copy():
    mask = torch.zeros(2, 2)
    op = ops.Inpainting(mask)
    mask[0, 0] = 1  # the caller edits its tensor afterwards
    assert op(torch.ones(1, 1, 2, 2)).eq(1).all()


def test_boolean_masks_are_accepted():
    y = ops.Inpainting(torch.tensor([[True, False]]))(torch.ones(1, 1, 1, 2))
    assert y.tolist() == [[[[0.0, 1.0]]]]


def test_random_inpainting_fraction_determinism_and_channel_sharing():
    op = ops.RandomInpainting(0.3, seed=7)
    m = op.mask(40, 50)
    assert m.sum().item() == round(0.3 * 2000)
    torch.testing.assert_close(ops.RandomInpainting(0.3, seed=7).mask(40, 50), m, rtol=0, atol=0)
    assert not torch.equal(ops.RandomInpainting(0.3, seed=8).mask(40, 50), m)
    y = op(torch.ones(2, 3, 40, 50))
    assert (y == y[:1, :1]).all()  # one mask for every channel and batch item
    assert ops.RandomInpainting(0.0, 1)(torch.ones(1, 1, 3, 3)).eq(1).all()


def test_random_inpainting_applies_its_mask():
    op = ops.RandomInpainting(0.5, seed=2)
    x = image(batch=1, size=(6, 10), seed=3)
    torch.testing.assert_close(op(x), x * (1 - op.mask(6, 10)), rtol=0, atol=0)


def test_inpainting_matches_deepinv_with_the_mask_inverted(deepinv):
    # deepinv's mask marks KEPT pixels (1 = kept); ComfyUI's, and ours, marks missing ones.
    keep = (torch.rand(24, 24, generator=torch.Generator().manual_seed(3)) > 0.4).double()
    x = image(batch=2, seed=10)
    theirs = deepinv.physics.Inpainting(img_size=(3, 24, 24), mask=keep)
    ours = ops.Inpainting(1 - keep)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.adjoint(x), theirs.A_adjoint(x), rtol=0, atol=1e-12)


# --- settings and sizes -------------------------------------------------------------------

def test_mask_size_mismatch_names_both_sizes():
    op = ops.Inpainting(torch.zeros(64, 64))
    with pytest.raises(ValueError, match=r"^mask: size 64x64 \(width x height\) does not match the image size 96x128 \(width x height\)$"):
        op(torch.zeros(1, 3, 128, 96))


def test_mask_batch_mismatch_names_both_batches():
    op = ops.Inpainting(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r"mask: batch size 2 does not match the image batch size 3"):
        op(torch.zeros(3, 3, 8, 8))


@pytest.mark.parametrize(
    "mask,pattern",
    [
        (torch.zeros(2, 3, 8, 8), r"mask: expected shape \[H, W\], \[B, H, W\] or \[B, 1, H, W\], got \(2, 3, 8, 8\)"),
        (torch.zeros(8), r"mask: expected shape"),
        (torch.full((4, 4), 1.5), r"mask: expected values in \[0, 1\], got values in \[1.5, 1.5\]"),
        (torch.full((4, 4), float("nan")), r"mask: expected finite values"),
        (torch.zeros(0, 4), r"mask: expected a non-empty mask"),
        ([[0, 1]], r"mask: expected a tensor, got list"),
    ],
)
def test_bad_masks(mask, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.Inpainting(mask)


@pytest.mark.parametrize("fraction", [1.0, -0.1, float("nan"), "half"])
def test_random_inpainting_fraction(fraction):
    with pytest.raises(ValueError, match=r"^missing_fraction: expected a number in \[0, 1\)"):
        ops.RandomInpainting(fraction, seed=0)


@pytest.mark.parametrize("seed", [-1, 1.5, 2**64])
def test_random_inpainting_seeds_must_be_non_negative_integers(seed):
    with pytest.raises(ValueError, match=r"^seed: expected an integer"):
        ops.RandomInpainting(0.5, seed=seed)
