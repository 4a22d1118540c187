"""Posterior sampling through ComfyUI's own samplers, checked against an exact Gaussian posterior.

The prior is an analytic Gaussian wrapped as a real ComfyUI diffusion model (EPS, V_PREDICTION
and FLOW families). With a linear operator and Gaussian noise the posterior is Gaussian and known.
1. Plumbing: the exact likelihood correction, injected through the same patch DPSGuidance uses,
   must make stock samplers draw from the exact posterior.
2. DPS itself (our step rule) on the same problem: residuals at the noise level, mean near the
   posterior mean, variance not collapsed.
The problems, the sampling helper and the exact correction live in testkit/posterior_problems.py
(scripts/posterior_report.py draws the README's tables from the same ones).
"""

import pytest

from testkit.host import load_pack

load_pack()

from testkit.posterior_problems import DPS_OPERATORS, draw, exact_correction, make_problem  # noqa: E402

from comfyui_dps.dps.operators import SuperResolution  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    return make_problem((3, 4, 4), SuperResolution(2, "average"))


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["eps", "v_prediction", "flow"])
@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m", "uni_pc"])
def test_exact_likelihood_correction_samples_the_exact_posterior(problem, model_type, sampler):
    prior, measurement, matrix, offset, y, post_mean, post_cov = problem
    count = 3000
    samples, _ = draw(prior, measurement, model_type, sampler, count, steps=60,
                      guidance=exact_correction(prior, matrix, offset, y))
    post_std = post_cov.diagonal().sqrt()
    mean_error = ((samples.mean(0) - post_mean).abs() / post_std).max().item()
    variance_ratio = samples.var(0) / post_cov.diagonal()
    # Monte Carlo: the mean's standard error is post_std / sqrt(3000) = 0.018 post_std; the rest
    # is the sampler's discretisation error at 60 steps.
    assert mean_error < 0.15, mean_error
    assert 0.7 < variance_ratio.min().item() and variance_ratio.max().item() < 1.3, variance_ratio
    # And the posterior is not the prior: the prior mean is many posterior deviations away.
    assert ((prior.mean - post_mean).abs() / post_std).max().item() > 3


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["eps", "flow"])
@pytest.mark.parametrize("operator_name", list(DPS_OPERATORS))
def test_dps_fits_the_noise_level_and_approaches_the_posterior_mean(model_type, operator_name):
    """Our DPS step rule at the default strength 1 (no tuning) on a 192-pixel Gaussian problem.

    Measured when written (500 samples, 50 steps, eps): residual 0.90 / 0.88 of the noise level
    (exact posterior samples: 0.95 / 0.94), sample mean 6% / 18% of the prior's distance from the
    posterior mean, per-pixel variance 0.62 / 0.55 of the exact posterior's."""
    prior, measurement, matrix, offset, y, post_mean, post_cov = make_problem(
        (3, 8, 8), DPS_OPERATORS[operator_name](), correlation=2.0)
    samples, patch = draw(prior, measurement, model_type, "euler_ancestral", 500, steps=50)
    images = ((samples + 1) / 2).float().reshape(-1, *prior.shape)
    residual = measurement.normalized_residual(images)
    assert 0.75 < residual.mean().item() < 1.25, residual.mean()
    distance = (samples.mean(0) - post_mean).norm().item()
    prior_distance = (prior.mean - post_mean).norm().item()
    assert distance < 0.3 * prior_distance, (distance, prior_distance)
    variance_ratio = (samples.var(0) / post_cov.diagonal()).mean().item()
    assert variance_ratio > 0.3, variance_ratio
    assert len(patch.trace.residuals) == 50
