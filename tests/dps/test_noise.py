"""Noise models: the sampled noise has the stated law, seeds reproduce it, and the std and
likelihood agree with it."""

import math

import pytest
import torch

from comfyui_dps.dps.noise import SIGMA_FLOOR, GaussianNoise, PoissonNoise


def _clean(shape=(4, 3, 64, 64), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


# --- Gaussian -----------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.5])
def test_gaussian_noise_mean_and_std(sigma):
    clean = _clean()
    n = (GaussianNoise(sigma).sample(clean, seed=1) - clean).flatten()  # 49152 samples
    # Standard errors: mean sigma/sqrt(N) ~ 0.0045 sigma, std ~ sigma/sqrt(2N) ~ 0.0032 sigma.
    assert abs(n.mean().item()) < 5 * sigma / math.sqrt(n.numel())
    assert n.std().item() == pytest.approx(sigma, rel=0.02)
    # Roughly normal: 68.3% within one sigma, 95.4% within two.
    assert (n.abs() < sigma).double().mean().item() == pytest.approx(0.6827, abs=0.01)
    assert (n.abs() < 2 * sigma).double().mean().item() == pytest.approx(0.9545, abs=0.005)


def test_gaussian_noise_is_independent_across_elements_and_seeds():
    clean = torch.zeros(1, 1, 128, 128, dtype=torch.float64)
    a = GaussianNoise(1.0).sample(clean, seed=3).flatten()
    b = GaussianNoise(1.0).sample(clean, seed=4).flatten()
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.03
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1].item()) < 0.03  # neighbours


def test_complex_gaussian_noise_has_sigma_on_each_part():
    clean = torch.zeros(2, 1, 96, 96, dtype=torch.complex128)
    n = GaussianNoise(0.2).sample(clean, seed=5)
    assert n.dtype == torch.complex128
    assert n.real.std().item() == pytest.approx(0.2, rel=0.03)
    assert n.imag.std().item() == pytest.approx(0.2, rel=0.03)
    assert abs(torch.corrcoef(torch.stack([n.real.flatten(), n.imag.flatten()]))[0, 1].item()) < 0.03
    assert GaussianNoise(0.2).std(n).dtype == torch.float64


@pytest.mark.parametrize("noise", [GaussianNoise(0.1), PoissonNoise(20.0)])
def test_seeds_reproduce_and_differ(noise):
    clean = _clean(shape=(2, 3, 16, 16))
    a, b, c = noise.sample(clean, 7), noise.sample(clean, 7), noise.sample(clean, 8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("noise", [GaussianNoise(0.1), GaussianNoise(0.0), PoissonNoise(20.0)])
def test_sampling_never_modifies_the_clean_measurement(noise):
    clean = _clean(shape=(2, 3, 8, 8))
    before = clean.clone()
    noisy = noise.sample(clean, 1)
    torch.testing.assert_close(clean, before, rtol=0, atol=0)
    assert noisy.data_ptr() != clean.data_ptr()


def test_float32_samples_keep_their_dtype():
    clean = _clean(shape=(1, 3, 8, 8), dtype=torch.float32)
    assert GaussianNoise(0.1).sample(clean, 0).dtype == torch.float32
    assert PoissonNoise(10.0).sample(clean, 0).dtype == torch.float32


def test_zero_sigma_is_a_clean_copy_and_uses_the_floor():
    clean = _clean(shape=(1, 1, 4, 4))
    noise = GaussianNoise(0.0)
    torch.testing.assert_close(noise.sample(clean, 1), clean, rtol=0, atol=0)
    assert noise.std(clean).item() == pytest.approx(SIGMA_FLOOR)
    nll = noise.negative_log_likelihood(clean + 0.01, clean)
    assert torch.isfinite(nll).all()
    assert nll.item() == pytest.approx(16 * 0.01**2 / (2 * SIGMA_FLOOR**2))


def test_gaussian_nll_formula_batch_broadcast_and_complex():
    y = _clean(shape=(1, 2, 3, 3))
    pred = _clean(shape=(4, 2, 3, 3), seed=1)
    nll = GaussianNoise(0.2).negative_log_likelihood(pred, y)
    assert nll.shape == (4,)
    expected = ((y - pred) ** 2).flatten(1).sum(1) / (2 * 0.04)
    torch.testing.assert_close(nll, expected)
    yc, pc = torch.complex(y, 2 * y), torch.complex(pred, pred)
    expected_c = ((y - pred) ** 2 + (2 * y - pred) ** 2).flatten(1).sum(1) / (2 * 0.04)
    torch.testing.assert_close(GaussianNoise(0.2).negative_log_likelihood(pc, yc), expected_c)


# --- Poisson ------------------------------------------------------------------------------

@pytest.mark.parametrize("photons", [5.0, 50.0, 1000.0])
def test_poisson_noise_follows_the_photon_count_law(photons):
    # Many draws of one intensity: mean = intensity, variance = intensity / photon_count, and
    # photon_count * y are integers.
    for level in (0.1, 0.6):
        clean = torch.full((1, 1, 200, 200), level, dtype=torch.float64)
        y = PoissonNoise(photons).sample(clean, seed=int(level * 10)).flatten()
        counts = y * photons
        torch.testing.assert_close(counts, counts.round(), rtol=0, atol=1e-9)
        se_mean = math.sqrt(level / photons / y.numel())
        assert abs(y.mean().item() - level) < 5 * se_mean
        assert y.var().item() == pytest.approx(level / photons, rel=0.05)


def test_poisson_clamps_negative_intensities_to_zero_photons():
    clean = torch.tensor([[[[-0.5, 0.0]]]], dtype=torch.float64)
    assert PoissonNoise(10.0).sample(clean, 0).eq(0).all()


def test_poisson_std():
    noise = PoissonNoise(100.0)
    y = torch.tensor([[[[0.0, 0.0025, 0.25, 1.0]]]], dtype=torch.float64)
    # sqrt(max(y, 1/100) / 100): dark pixels count as one photon.
    expected = torch.tensor([[[[0.01, 0.01, 0.05, 0.1]]]], dtype=torch.float64)
    torch.testing.assert_close(noise.std(y), expected)


def test_poisson_nll_is_the_deviance_and_is_minimised_at_the_observation():
    noise = PoissonNoise(40.0)
    y = torch.poisson(40 * _clean(shape=(2, 1, 6, 6))) / 40
    pred = 0.05 + _clean(shape=(2, 1, 6, 6), seed=3)
    k, r = 40 * y, 40 * pred
    expected = (r - k + torch.xlogy(k, k) - k * torch.log(r)).flatten(1).sum(1)
    torch.testing.assert_close(noise.negative_log_likelihood(pred, y), expected)
    # Where r = k >= MIN_RATE the deviance is zero and stationary.
    k_pos = y.clamp_min(1 / 40)
    at_y = k_pos.clone().requires_grad_()
    nll = noise.negative_log_likelihood(at_y, k_pos)
    torch.testing.assert_close(nll, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-10)
    (grad,) = torch.autograd.grad(nll.sum(), at_y)
    torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-10)


def test_poisson_nll_below_min_rate_is_finite_convex_and_pushes_predictions_up():
    noise = PoissonNoise(10.0)
    y = torch.tensor([[[[0.0, 0.3]]]], dtype=torch.float64)
    preds = torch.linspace(-1.0, 0.2, 121, dtype=torch.float64)
    values = []
    for p in preds:
        pred = torch.full((1, 1, 1, 2), float(p), dtype=torch.float64, requires_grad=True)
        nll = noise.negative_log_likelihood(pred, y)
        (grad,) = torch.autograd.grad(nll.sum(), pred)
        assert torch.isfinite(nll).all() and torch.isfinite(grad).all()
        if p < 0:
            assert (grad < 0).all()  # descending the NLL raises negative predictions
        values.append(nll.item())
    second_differences = torch.tensor(values).diff().diff()
    assert (second_differences > -1e-9).all()  # convex along the line


def test_poisson_rejects_complex_measurements():
    y = torch.zeros(1, 1, 2, 2, dtype=torch.complex64)
    for call in (lambda: PoissonNoise(10.0).sample(y, 0), lambda: PoissonNoise(10.0).std(y),
                 lambda: PoissonNoise(10.0).negative_log_likelihood(y, y)):
        with pytest.raises(ValueError, match=r"^Poisson noise: .*complex measurement .*Gaussian noise"):
            call()


# --- parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("count", [0, -5, float("nan"), float("inf"), None])
def test_photon_count_must_be_positive(count):
    with pytest.raises(ValueError, match=r"^photon_count: expected a positive number, got"):
        PoissonNoise(count)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), "0.1"])
def test_gaussian_sigma_must_be_non_negative(sigma):
    with pytest.raises(ValueError, match=r"^sigma: expected a non-negative number, got"):
        GaussianNoise(sigma)


def test_sample_seed_is_validated():
    with pytest.raises(ValueError, match=r"^seed: expected an integer >= 0, got -1$"):
        GaussianNoise(0.1).sample(torch.zeros(1, 1, 2, 2), -1)


def test_names_levels_and_descriptions():
    g, p = GaussianNoise(0.05), PoissonNoise(200)
    assert (g.name, g.level, p.name, p.level) == ("Gaussian noise", 0.05, "Poisson noise", 200.0)
    assert "0.05" in g.describe() and "200" in p.describe()
    assert repr(g) == "GaussianNoise(sigma=0.05)" and repr(p) == "PoissonNoise(photon_count=200)"


def test_gradcheck_gaussian_nll():
    noise = GaussianNoise(0.1)
    y = _clean(shape=(2, 3, 4, 4), seed=1)
    pred = _clean(shape=(2, 3, 4, 4), seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: noise.negative_log_likelihood(p, y), (pred,))


@pytest.mark.parametrize("low", [0.0, -0.5])
def test_gradcheck_poisson_nll(low):
    # low = -0.5 puts predictions below zero: the quadratic continuation must be smooth too.
    noise = PoissonNoise(30.0)
    y = torch.poisson(30 * _clean(shape=(2, 3, 4, 4), seed=3)) / 30
    pred = (low + _clean(shape=(2, 3, 4, 4), seed=4)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: noise.negative_log_likelihood(p, y), (pred,))
