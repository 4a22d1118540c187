"""DPS Keep Measured Pixels (nodes/keep_measured_node.py): measured pixels come back exactly (feather
0) or blended only near holes, holes are untouched, the report's PSNRs, inputs untouched, errors."""

import math

import pytest
import torch

from testkit.host import load_pack

load_pack()

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import Inpainting, RandomInpainting, SuperResolution  # noqa: E402
from comfyui_dps.nodes.keep_measured_node import DPSKeepMeasuredPixels, paste_weight  # noqa: E402


def box_case(size=16):
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(1, 3, size, size, generator=generator)
    mask = torch.zeros(size, size)
    mask[4:10, 5:11] = 1  # 1 = missing
    measurement = simulate(truth, Inpainting(mask), GaussianNoise(0.0), seed=1)
    restored = (truth + 0.05 * torch.randn(2, 3, size, size, generator=generator)).clamp(0, 1)
    return truth, mask, measurement, restored.permute(0, 2, 3, 1).contiguous()


def test_feather_zero_pastes_every_measured_pixel_and_leaves_holes_alone():
    truth, mask, measurement, restored = box_case()
    before = restored.clone()
    out, text = DPSKeepMeasuredPixels.execute(restored, measurement, 0).args
    assert torch.equal(restored, before)
    kept = (mask == 0)
    torch.testing.assert_close(out[:, kept], truth.permute(0, 2, 3, 1)[0][kept].expand(2, -1, -1))
    assert torch.equal(out[:, ~kept], restored[:, ~kept])
    assert "inf dB after" in text


def test_feathering_blends_only_near_a_hole():
    truth, mask, measurement, restored = box_case()
    out, text = DPSKeepMeasuredPixels.execute(restored, measurement, 3).args
    far = torch.ones(16, 16, dtype=torch.bool)
    far[1:13, 2:14] = False  # more than 3 pixels from the hole
    torch.testing.assert_close(out[:, far], truth.permute(0, 2, 3, 1)[0][far].expand(2, -1, -1))
    edge = (4, 4)  # kept, next to the hole: a blend strictly between the two
    assert not torch.equal(out[:, edge[0], edge[1]], restored[:, edge[0], edge[1]])
    assert torch.equal(out[:, 6, 7], restored[:, 6, 7])  # inside the hole
    before, after = [float(v) for v in text.split("measurement ")[1].replace(" dB before,", "").split(" dB")[0].split()]
    assert after > before


def test_the_paste_weight_ramps_with_distance_to_the_hole():
    keep = torch.ones(1, 1, 1, 9)
    keep[..., 0] = 0
    weight = paste_weight(keep, 4)[0, 0, 0]
    torch.testing.assert_close(weight, torch.tensor([0, 0.25, 0.5, 0.75, 1, 1, 1, 1, 1]))


def test_the_report_gives_the_before_psnr_of_the_kept_region():
    truth, mask, measurement, restored = box_case()
    _, text = DPSKeepMeasuredPixels.execute(restored, measurement, 0).args
    kept = (mask == 0)
    error = (restored.permute(0, 3, 1, 2)[..., kept] - truth[..., kept]).square().mean().item()
    assert f"{-10 * math.log10(error):.2f} dB before" in text


def test_random_masks_and_bad_input():
    truth = torch.rand(1, 3, 8, 8)
    measurement = simulate(truth, RandomInpainting(0.5, seed=0), GaussianNoise(0.0), seed=1)
    out, _ = DPSKeepMeasuredPixels.execute(torch.zeros(1, 8, 8, 3), measurement, 0).args
    keep = measurement.operator.keep_weights(truth)[0, 0].bool()
    torch.testing.assert_close(out[0][keep], truth.permute(0, 2, 3, 1)[0][keep])
    sr = simulate(truth, SuperResolution(2, "average"), GaussianNoise(0.0), seed=1)
    with pytest.raises(ValueError, match="measurement: expected an inpainting measurement"):
        DPSKeepMeasuredPixels.execute(torch.zeros(1, 8, 8, 3), sr, 0)
    with pytest.raises(ValueError, match="image: size 4x4"):
        DPSKeepMeasuredPixels.execute(torch.zeros(1, 4, 4, 3), measurement, 0)
