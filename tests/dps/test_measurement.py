"""Measurement (measurement.py): batch pairing, residuals and their noise-level statistics, true
gradients, simulation, and moving to another device or dtype."""

import dataclasses

import pytest
import torch

import comfyui_dps.dps.operators as ops
from comfyui_dps.dps.measurement import Measurement, simulate
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise


def _image(batch=1, size=(32, 32), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=g, dtype=dtype)


def test_image_size_is_derived_from_the_operator_or_kept_when_given():
    y = torch.zeros(1, 3, 8, 6)
    assert Measurement(y, ops.SuperResolution(4), GaussianNoise(0.1)).image_size == (32, 24)
    assert Measurement(y, ops.PhaseRetrieval(2.0), GaussianNoise(0.1)).image_size == (4, 3)
    assert Measurement(y, ops.GaussianBlur(3, 1.0), GaussianNoise(0.1), image_size=(8, 6)).image_size == (8, 6)


def test_batch_one_serves_every_image_and_batch_n_pairs_item_by_item():
    op = ops.GaussianBlur(5, 1.0)
    x = _image(batch=3, seed=1)
    y1 = op(_image(seed=2))
    r = Measurement(y1, op, GaussianNoise(0.1)).residual(x)
    assert r.shape == (3, 3, 32, 32)
    torch.testing.assert_close(r, y1 - op(x))
    y3 = op(_image(batch=3, seed=3))
    r3 = Measurement(y3, op, GaussianNoise(0.1)).residual(x)
    for i in range(3):
        torch.testing.assert_close(r3[i], y3[i] - op(x[i : i + 1])[0])


@pytest.mark.parametrize(("y_batch", "image_batch"), [(2, 3), (3, 1), (4, 2)])
def test_other_batch_pairings_raise_naming_both_sizes(y_batch, image_batch):
    m = Measurement(torch.zeros(y_batch, 3, 16, 16), ops.GaussianBlur(3, 1.0), GaussianNoise(0.1))
    pattern = rf"^measurement batch size {y_batch} does not match the image batch size {image_batch}"
    for method in (m.residual, m.chi2, m.normalized_residual, m.whitened_residual):
        with pytest.raises(ValueError, match=pattern):
            method(torch.zeros(image_batch, 3, 16, 16))


def test_image_size_mismatch_raises_with_sizes_as_width_x_height():
    m = Measurement(torch.zeros(1, 3, 8, 12), ops.SuperResolution(4), GaussianNoise(0.1))  # images 32 high, 48 wide
    expected = r"^image: size 24x16 \(width x height\) does not match the measurement's image size 48x32$"
    with pytest.raises(ValueError, match=expected):
        m.residual(torch.zeros(1, 3, 16, 24))


@pytest.mark.parametrize("bad", [torch.zeros(8, 8), "y", None])
def test_y_must_be_a_batched_tensor(bad):
    with pytest.raises(ValueError, match=r"^measurement: expected a tensor \[B, \.\.\., h, w\]"):
        Measurement(bad, ops.Colorization(), GaussianNoise(0.1))


@pytest.mark.parametrize(
    ("operator", "noise"),
    [
        (ops.SuperResolution(4), GaussianNoise(0.05)),
        (ops.GaussianBlur(9, 2.0), GaussianNoise(0.02)),
        (ops.FourierUndersampling(4, 0.08, 1), GaussianNoise(0.05)),
        (ops.Colorization(), PoissonNoise(200.0)),
        (ops.RandomInpainting(0.5, 2), GaussianNoise(0.05)),
        (ops.GaussianBlur(5, 1.0), PoissonNoise(50.0)),
        (ops.PhaseRetrieval(2.0), GaussianNoise(0.05)),
    ],
)
def test_normalized_residual_is_one_at_the_truth_and_larger_elsewhere(operator, noise):
    truth = _image(batch=2, size=(64, 64), seed=4)
    m = simulate(truth, operator, noise, seed=5)
    at_truth = m.normalized_residual(truth)
    assert at_truth.shape == (2,)
    # Gaussian: exact law, ~1 +- 1/sqrt(2n). Poisson: std is estimated from the noisy y itself
    # (and zero-photon pixels get one photon's worth), so allow a few percent.
    tol = 0.03 if isinstance(noise, GaussianNoise) else 0.08
    torch.testing.assert_close(at_truth, torch.ones(2, dtype=torch.float64), rtol=0, atol=tol)
    assert (m.normalized_residual(_image(batch=2, size=(64, 64), seed=6)) > 1.3).all()


def test_poisson_elements_that_are_always_dark_add_nothing_to_chi2():
    # Missing pixels are measured as exactly 0 photons whatever the image: their whitened
    # residual is exactly 0, so with half the pixels missing the normalized residual at the
    # truth falls well below 1 (about sqrt(1/2) times the kept pixels' value, which is a bit
    # above 1 because std is estimated from the noisy y).
    truth = _image(batch=1, size=(64, 64), seed=4)
    op = ops.RandomInpainting(0.5, 2)
    m = simulate(truth, op, PoissonNoise(50.0), seed=5)
    missing = op.mask(64, 64).bool().expand(1, 3, 64, 64)
    w = m.whitened_residual(torch.rand_like(truth))
    assert (w[missing] == 0).all() and (w[~missing] != 0).any()
    assert 0.6 < m.normalized_residual(truth).item() < 0.85


def test_whitened_residual_chi2_and_counts_for_complex_measurements():
    op = ops.FourierUndersampling(4, 0.08, 1)
    truth = _image(size=(16, 16), seed=7)
    m = simulate(truth, op, GaussianNoise(0.1), seed=8)
    assert m.y.is_complex() and m.num_elements == 2 * 3 * 16 * 16
    x = _image(size=(16, 16), seed=9)
    w = m.whitened_residual(x)
    assert w.shape == (1, 3, 16, 16, 2) and not w.is_complex()
    torch.testing.assert_close(w, torch.view_as_real(m.y - op(x)) / 0.1)
    torch.testing.assert_close(m.chi2(x), (w**2).sum().reshape(1))
    torch.testing.assert_close(m.normalized_residual(x), (m.chi2(x) / m.num_elements).sqrt())


def test_poisson_whitening_uses_the_per_element_std():
    op = ops.GaussianBlur(3, 1.0)
    noise = PoissonNoise(30.0)
    m = simulate(_image(seed=10), op, noise, seed=11)
    x = _image(seed=12)
    torch.testing.assert_close(m.whitened_residual(x), (m.y - op(x)) / noise.std(m.y))


@pytest.mark.parametrize(
    ("operator", "noise"),
    [
        (ops.SuperResolution(2), GaussianNoise(0.05)),
        (ops.FourierUndersampling(4, 0.1, 0), GaussianNoise(0.05)),
        (ops.GaussianBlur(5, 1.0), PoissonNoise(50.0)),
        (ops.PhaseRetrieval(2.0), GaussianNoise(0.05)),
    ],
)
def test_gradcheck_chi2_through_the_operator(operator, noise):
    # Finite differences (float64) agree with autograd: the gradient DPS follows is the true one.
    truth = _image(batch=1, size=(8, 8), seed=5)
    m = simulate(truth, operator, noise, seed=1)
    x = _image(batch=2, size=(8, 8), seed=6).requires_grad_()
    assert torch.autograd.gradcheck(m.chi2, (x,), atol=1e-5, rtol=1e-4, fast_mode=True)


def test_simulate_is_reproducible_detached_and_leaves_the_image_alone():
    op, noise = ops.GaussianBlur(5, 1.0), GaussianNoise(0.05)
    truth = _image(seed=16).requires_grad_()
    before = truth.detach().clone()
    m = simulate(truth, op, noise, seed=3)
    torch.testing.assert_close(m.y, noise.sample(op(truth.detach()), 3), rtol=0, atol=0)
    assert not m.y.requires_grad and m.image_size == (32, 32)
    torch.testing.assert_close(truth.detach(), before, rtol=0, atol=0)
    torch.testing.assert_close(simulate(truth, op, noise, seed=3).y, m.y, rtol=0, atol=0)


def test_measurement_is_frozen_and_keeps_y_untouched():
    y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    before = y.clone()
    m = Measurement(y, ops.GaussianBlur(3, 1.0), GaussianNoise(0.1))
    assert m.y is y  # stored as given
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.y = torch.zeros(1)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    m.residual(x), m.chi2(x), m.normalized_residual(x), m.whitened_residual(x)
    torch.testing.assert_close(y, before, rtol=0, atol=0)


def test_mixed_dtypes_follow_the_image():
    op = ops.GaussianBlur(3, 1.0)
    m = Measurement(torch.rand(1, 3, 8, 8, dtype=torch.float32), op, GaussianNoise(0.1))
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    chi2 = m.chi2(x)
    assert chi2.dtype == torch.float64
    chi2.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("noise", ["gaussian", None, 0.1, object()])
def test_noise_must_be_a_noise_model(noise):
    with pytest.raises(ValueError, match=r"^noise: expected a noise model \(GaussianNoise or PoissonNoise\), got "
                                         + type(noise).__name__ + "$"):
        Measurement(torch.zeros(1, 3, 8, 8), ops.GaussianBlur(3, 1.0), noise)


def test_any_noise_model_whitens_by_its_own_std():
    class Doubled(GaussianNoise):
        def std(self, y):
            return 2 * super().std(y)

    y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    op = ops.GaussianBlur(3, 1.0)
    m = Measurement(y, op, Doubled(0.1))
    torch.testing.assert_close(m.chi2(x), ((y - op(x)) ** 2).sum().reshape(1) / 0.2**2)


@pytest.mark.parametrize(
    ("operator", "noise"),
    [
        (ops.GaussianBlur(9, 2.0), GaussianNoise(0.05)),
        (ops.Inpainting(torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) > 0.5), PoissonNoise(50.0)),
        (ops.FourierUndersampling(4, 0.1, 0), GaussianNoise(0.05)),  # complex y
        (ops.Composition(ops.GaussianBlur(5, 1.0), ops.SuperResolution(2)), GaussianNoise(0.05)),
    ],
)
def test_to_moves_y_operator_and_noise_and_leaves_the_original(operator, noise):
    m = simulate(_image(size=(16, 16), seed=17), operator, noise, seed=18)
    y, kind = m.y, m.y.dtype
    moved = m.to("meta")
    assert moved is not m and moved.operator is not m.operator and moved.noise is noise  # noise is immutable
    assert moved.y.device.type == "meta" and moved.y.dtype == kind and moved.image_size == m.image_size
    x = _image(batch=2, size=(16, 16), seed=19)
    assert moved.chi2(x.to("meta")).shape == (2,)
    assert m.y is y and y.device.type == "cpu" and m.chi2(x).device.type == "cpu"
    # In float32 the moved measurement gives the same bits as the original does on float32 images.
    single = m.to(dtype=torch.float32)
    assert single.y.dtype == (torch.complex64 if kind == torch.complex128 else torch.float32)
    torch.testing.assert_close(single.chi2(x.float()), m.chi2(x.float()), rtol=0, atol=0)
