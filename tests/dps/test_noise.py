"""Noise models (noise.py): the sampled noise has the stated law, seeds reproduce it, the std
agrees with it, and every model is an immutable NoiseModel."""

import dataclasses
import math

import pytest
import torch

from comfyui_dps.dps.noise import SIGMA_FLOOR, GaussianNoise, NoiseModel, PoissonNoise


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


def test_gaussian_std_is_sigma_in_the_real_dtype_of_y():
    y = _clean(shape=(1, 2, 3, 3), dtype=torch.float32)
    std = GaussianNoise(0.2).std(y)
    assert std.dim() == 0 and std.dtype == torch.float32 and std.item() == pytest.approx(0.2)


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


def test_poisson_rejects_complex_measurements():
    y = torch.zeros(1, 1, 2, 2, dtype=torch.complex64)
    for call in (lambda: PoissonNoise(10.0).sample(y, 0), lambda: PoissonNoise(10.0).std(y)):
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


# --- the NoiseModel protocol --------------------------------------------------------------

def test_noise_model_is_abstract():
    with pytest.raises(TypeError):
        NoiseModel()

    class NoStd(NoiseModel):
        level = 1.0

        def sample(self, clean_y, seed):
            return clean_y

        def describe(self):
            return "none"

    with pytest.raises(TypeError, match="std"):
        NoStd()


@pytest.mark.parametrize("noise", [GaussianNoise(0.1), PoissonNoise(20.0)])
def test_models_are_immutable_noise_models_that_move_as_themselves(noise):
    assert isinstance(noise, NoiseModel)
    field = dataclasses.fields(noise)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(noise, field, 1.0)
    assert noise.to("meta") is noise and noise.to(dtype=torch.float32) is noise
    with pytest.raises(ValueError, match=r"^dtype: expected a real floating dtype"):
        noise.to(dtype=torch.int64)
    # They compute with the tensors they are given: on another device, there.
    y = torch.rand(1, 1, 2, 2, device="meta")
    assert noise.std(y).device.type == "meta"
