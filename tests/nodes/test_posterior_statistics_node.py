"""DPS Posterior Statistics (nodes/posterior_statistics_node.py): mean and standard deviation
against numpy on known batches, the heat map's stated scale, residuals, inputs untouched, errors."""

import numpy as np
import pytest
import torch

from testkit.host import load_pack

load_pack()

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes.posterior_statistics_node import RAMP, DPSPosteriorStatistics, heat_map  # noqa: E402


def batch(count=5, seed=0):
    return torch.rand(count, 8, 8, 3, generator=torch.Generator().manual_seed(seed))


def test_mean_and_spread_match_numpy_and_inputs_are_untouched():
    samples = batch()
    before = samples.clone()
    mean, heat, text = DPSPosteriorStatistics.execute(samples).args
    assert torch.equal(samples, before)
    array = samples.numpy().astype(np.float64)
    np.testing.assert_allclose(mean[0].numpy(), array.mean(axis=0), rtol=1e-5, atol=1e-6)
    spread = np.sqrt(array.var(axis=0, ddof=1).mean(axis=-1))
    assert mean.shape == (1, 8, 8, 3) and heat.shape == (1, 8, 8, 3)
    assert f"max {spread.max():.4f}" in text and f"pale yellow = {spread.max():.4f}" in text
    # Automatic scale: the most uncertain pixel is the top of the ramp, the least is the darkest one.
    top = np.unravel_index(spread.argmax(), spread.shape)
    torch.testing.assert_close(heat[0, top[0], top[1]], RAMP[-1])


def test_a_fixed_heat_scale_is_stated_and_saturates():
    samples = torch.stack([torch.zeros(4, 4, 3), torch.ones(4, 4, 3)])  # std 0.707 everywhere
    _, heat, text = DPSPosteriorStatistics.execute(samples, 0.1).args
    assert "pale yellow = 0.1000 or more" in text
    torch.testing.assert_close(heat[0], RAMP[-1].expand(4, 4, 3))
    same = samples[:1].expand(3, -1, -1, -1)
    _, heat, _ = DPSPosteriorStatistics.execute(same, 0.1).args
    torch.testing.assert_close(heat[0], RAMP[0].expand(4, 4, 3))


def test_the_ramp_is_ordered_in_lightness():
    values = torch.linspace(0, 1, 11).reshape(1, 1, 11)
    colours = heat_map(values, 1.0)[0]
    lightness = (0.2126 * colours[0] + 0.7152 * colours[1] + 0.0722 * colours[2])[0]
    assert (lightness[1:] > lightness[:-1]).all()


def test_the_report_gives_the_residual_of_the_mean_and_of_each_sample():
    truth = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    measurement = simulate(truth, SuperResolution(2, "average"), GaussianNoise(0.05), seed=2)
    samples = (truth + 0.02 * torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    comfy_samples = samples.permute(0, 2, 3, 1).contiguous()
    _, _, text = DPSPosteriorStatistics.execute(comfy_samples, 0.0, measurement).args
    expected_mean = measurement.normalized_residual(samples.mean(0, keepdim=True))[0].item()
    assert f"Residual of the mean against the measurement: {expected_mean:.3f}" in text
    assert text.count(",") >= 3 and "Residuals of the samples" in text


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="samples: expected a batch of at least 2"):
        DPSPosteriorStatistics.execute(batch(1))
    with pytest.raises(ValueError, match="heat_scale"):
        DPSPosteriorStatistics.execute(batch(), float("nan"))
    truth = torch.rand(1, 3, 16, 16)
    measurement = simulate(truth, SuperResolution(2, "average"), GaussianNoise(0.05), seed=2)
    with pytest.raises(ValueError, match="image: size 8x8"):
        DPSPosteriorStatistics.execute(batch(), 0.0, measurement)
