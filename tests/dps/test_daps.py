"""The DAPS engine (dps/daps.py) on problems with closed-form answers: the Langevin steps target
N(x0_hat, r^2 I) * p(y | x0); the curvature estimate; whole runs on an exact Gaussian prior (pure torch,
eps-style levels) land near the exact posterior; batch independence; Poisson noise; settings checks."""

import pytest
import torch

from comfyui_dps.dps.daps import DAPSSettings, curvature, daps_sample, langevin
from comfyui_dps.dps.measurement import simulate
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise
from comfyui_dps.dps.operators import PhaseRetrieval, SuperResolution

NOISE = 0.05
SHAPE = (1, 4, 4)


def render(x):
    return (x + 1) / 2


def dense(operator, shape):
    n = torch.Size(shape).numel()
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return operator(basis).reshape(n, -1).T


def gaussian_target(x0_hat, r2, operator, y):
    """Mean and covariance of N(x0_hat, r2 I) * N(y; A (x + 1) / 2, NOISE^2 I)."""
    matrix = dense(operator, SHAPE) / 2
    offset = matrix @ torch.ones(matrix.shape[1], dtype=torch.float64)
    precision = torch.eye(matrix.shape[1], dtype=torch.float64) / r2 + matrix.T @ matrix / NOISE**2
    cov = torch.linalg.inv(precision)
    mean = cov @ (x0_hat.reshape(-1).double() / r2 + matrix.T @ (y.reshape(-1).double() - offset) / NOISE**2)
    return mean, cov


def measurement_of(truth, operator=None, noise=None):
    return simulate(render(truth), operator or SuperResolution(2, "average"), noise or GaussianNoise(NOISE), seed=1)


@pytest.mark.parametrize("r2", [0.5, 0.01])
def test_langevin_targets_the_product_of_the_prior_term_and_the_likelihood(r2):
    torch.manual_seed(0)
    truth = torch.rand(1, *SHAPE) * 2 - 1
    measurement = measurement_of(truth)
    x0_hat = torch.rand(1, *SHAPE) - 0.5
    count = 4000
    chains = x0_hat.expand(count, *SHAPE).clone()
    lipschitz = curvature(chains[:1], render, measurement, torch.randn_like).expand(count)
    settings = DAPSSettings(langevin_steps=300, step_size=0.1)
    r2_tensor = torch.full((count, 1, 1, 1), r2)
    samples, _ = langevin(chains, r2_tensor, lipschitz, render, measurement, settings, torch.randn_like)
    mean, cov = gaussian_target(x0_hat, r2, measurement.operator, measurement.y)
    flat = samples.reshape(count, -1).double()
    std = cov.diagonal().sqrt()
    assert ((flat.mean(0) - mean).abs() / std).max() < 0.15
    ratio = flat.var(0) / cov.diagonal()
    assert ratio.min() > 0.85 and ratio.max() < 1.2  # step 0.1 of the limit: within a few per cent


def test_curvature_is_the_largest_eigenvalue_for_a_linear_operator():
    truth = torch.rand(2, *SHAPE) * 2 - 1
    measurement = measurement_of(truth)
    matrix = dense(measurement.operator, SHAPE) / 2
    exact = torch.linalg.eigvalsh(matrix.T @ matrix / NOISE**2).max()
    found = curvature(truth, render, measurement, torch.randn_like)
    assert found.shape == (2,) and torch.allclose(found.double(), exact.expand(2), rtol=0.02)


def test_curvature_is_finite_for_phase_retrieval():
    truth = torch.rand(1, 1, 8, 8) * 2 - 1
    measurement = simulate(render(truth), PhaseRetrieval(2.0), GaussianNoise(NOISE), seed=1)
    found = curvature(truth, render, measurement, torch.randn_like)
    # |FFT_ortho| has Jacobian norm 1: the curvature is about RENDER_SCALE^2 / NOISE^2 = 100.
    assert 50 < float(found) < 200


class ExactPrior:
    """x0 ~ N(mean, cov) on SHAPE with correlated pixels, and its exact denoiser for x = x0 + sigma eps."""

    def __init__(self):
        n = torch.Size(SHAPE).numel()
        ys, xs = torch.meshgrid(torch.arange(SHAPE[1]), torch.arange(SHAPE[2]), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], 1).double()
        self.cov = 0.09 * torch.exp(-torch.cdist(pos, pos) ** 2 / 4) + 1e-3 * torch.eye(n, dtype=torch.float64)
        self.mean = torch.linspace(-0.2, 0.2, n, dtype=torch.float64)
        self.n = n

    def sample(self, seed):
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(self.n, generator=generator, dtype=torch.float64)
        return (self.mean + torch.linalg.cholesky(self.cov) @ z).reshape(1, *SHAPE).float()

    def denoise(self, x, sigma):
        gain = self.cov @ torch.linalg.inv(self.cov + sigma**2 * torch.eye(self.n, dtype=torch.float64))
        flat = x.reshape(x.shape[0], -1).double()
        return (self.mean + (flat - self.mean) @ gain.T).reshape(x.shape).to(x.dtype)


def schedule(levels=30):
    return (torch.linspace(14.6 ** (1 / 7), 0.03 ** (1 / 7), levels) ** 7).tolist() + [0.0]


def eps_levels(sigma):
    return torch.ones_like(sigma), sigma


def test_a_whole_run_lands_near_the_exact_posterior():
    prior = ExactPrior()
    measurement = measurement_of(prior.sample(5))
    matrix = dense(measurement.operator, SHAPE) / 2
    offset = matrix @ torch.ones(prior.n, dtype=torch.float64)
    gram = matrix @ prior.cov @ matrix.T + NOISE**2 * torch.eye(matrix.shape[0], dtype=torch.float64)
    gain = prior.cov @ matrix.T @ torch.linalg.inv(gram)
    post_mean = prior.mean + gain @ (measurement.y.reshape(-1).double() - offset - matrix @ prior.mean)
    torch.manual_seed(0)
    sigmas = schedule()
    x = torch.randn(1000, *SHAPE) * sigmas[0]
    samples = daps_sample(x, sigmas, denoise=prior.denoise, render=render, measurement=measurement,
                          levels=eps_levels, noise=torch.randn_like)
    flat = samples.reshape(1000, -1).double()
    distance = (flat.mean(0) - post_mean).norm() / (prior.mean - post_mean).norm()
    residual = measurement.normalized_residual(render(samples)).mean()
    assert distance < 0.15 and 0.75 < residual < 1.25


def test_each_sample_is_independent_of_its_batch_mates():
    prior = ExactPrior()
    measurement = measurement_of(prior.sample(5))  # batch 1: broadcast over the batch

    def run(batch, seeds):
        generators = [torch.Generator().manual_seed(s) for s in seeds]

        def noise(like):  # one stream per sample, whatever the batch
            return torch.stack([torch.randn(like.shape[1:], generator=g) for g in generators]).to(like.dtype)

        sigmas = schedule(8)
        x = torch.stack([torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + s)) for s in seeds])
        return daps_sample(x * sigmas[0], sigmas, denoise=prior.denoise, render=render, measurement=measurement,
                           levels=eps_levels, noise=noise, settings=DAPSSettings(langevin_steps=5))[:batch]

    alone = run(1, [3])
    together = run(3, [3, 4, 5])
    assert torch.allclose(alone[0], together[0], atol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_poisson_noise_is_explained():
    prior = ExactPrior()
    truth = prior.sample(5)
    measurement = measurement_of(truth, noise=PoissonNoise(100.0))
    torch.manual_seed(0)
    sigmas = schedule(20)
    x0 = torch.randn(8, *SHAPE) * sigmas[0]
    samples = daps_sample(x0, sigmas, denoise=prior.denoise, render=render, measurement=measurement,
                          levels=eps_levels, noise=torch.randn_like)
    residual = measurement.normalized_residual(render(samples))
    assert torch.isfinite(samples).all() and float(residual.mean()) < 1.5


def test_callback_and_interrupt_see_every_level():
    prior = ExactPrior()
    measurement = measurement_of(prior.sample(5))
    seen, checks = [], []
    sigmas = schedule(5)
    daps_sample(torch.randn(1, *SHAPE) * sigmas[0], sigmas, denoise=prior.denoise, render=render,
                measurement=measurement, levels=eps_levels, noise=torch.randn_like,
                settings=DAPSSettings(langevin_steps=2), callback=lambda info: seen.append(info["i"]),
                check_interrupt=lambda: checks.append(1))
    assert seen == list(range(5)) and len(checks) == 5 * (1 + 2)


@pytest.mark.parametrize("field, value, message", [
    ("langevin_steps", -1, "langevin_steps: expected an integer >= 0"),
    ("step_size", 0.0, r"step_size: expected a number in \(0, 1\]"),
    ("step_size", 1.5, r"step_size: expected a number in \(0, 1\]"),
    ("ode_steps", 0, "ode_steps: expected an integer >= 1"),
])
def test_settings_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        DAPSSettings(**{field: value})
