"""Random camera-shake kernels (camera_shake.py): normalised, thin, reproducible by seed."""

import pytest
import torch

import comfyui_dps.dps.operators as ops


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_shake_kernel_is_a_normalised_nonnegative_path(seed):
    k = ops.camera_shake_kernel(61, 0.5, seed)
    assert k.shape == (61, 61) and k.dtype == torch.float64
    assert (k >= 0).all() and k.sum().item() == pytest.approx(1.0)
    support = (k > 1e-3 * k.max()).sum().item()
    assert 20 < support < 61 * 61 / 4  # a thin trail, neither a dot nor a blob
    torch.testing.assert_close(k, ops.camera_shake_kernel(61, 0.5, seed), rtol=0, atol=0)
    assert not torch.equal(k, ops.camera_shake_kernel(61, 0.5, seed + 10))


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(size=60), r"^size: expected an odd integer >= 3, got 60$"),
    (dict(size=1), r"^size: expected an odd integer >= 3"),
    (dict(intensity=1.5), r"^intensity: expected a number in \[0, 1\], got 1.5$"),
    (dict(seed=-2), r"^seed: expected an integer >= 0, got -2$"),
])
def test_camera_shake_parameters(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ops.camera_shake_kernel(**kwargs)
