"""What every guidance method shares (dps/guidance/core.py), against hand-computed values."""

import torch

from comfyui_dps.dps.guidance import core
from comfyui_dps.dps.guidance.core import (GuidanceTrace, at_least_float32, bounded, corrected, per_sample,
                                           posterior_scale, prior_covariance_scale)


def test_posterior_scale_is_sigma_squared_over_alpha_and_zero_where_alpha_vanishes():
    sigma = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(posterior_scale(sigma, alpha), torch.tensor([4.0, 0.5, 0.0], dtype=torch.float64))


def test_prior_covariance_scale_is_r_t_squared():
    sigma = torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64)
    alpha = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(prior_covariance_scale(sigma, alpha), torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64))


def test_per_sample_broadcasts_scalars_and_batches():
    like = torch.zeros(3, 2, 4, 4)
    assert per_sample(torch.tensor(2.0), like).shape == (3, 1, 1, 1)
    torch.testing.assert_close(per_sample(torch.tensor([1.0, 2.0, 3.0]), like).reshape(-1), torch.tensor([1.0, 2.0, 3.0]))
    assert per_sample(torch.tensor([1.0], dtype=torch.float16), like).dtype == torch.float32


def test_at_least_float32_promotes_half_and_keeps_double():
    assert at_least_float32(torch.zeros(1, dtype=torch.bfloat16)).dtype == torch.float32
    assert at_least_float32(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64


def test_bounded_zeroes_non_finite_values_and_caps_each_sample_alone():
    denoised = torch.ones(2, 1, 2, 2)  # RMS 1: the cap is MAX_CORRECTION_RATIO * (1 + 1)
    correction = torch.stack([torch.full((1, 2, 2), 0.5), torch.full((1, 2, 2), 100.0)])
    correction[0, 0, 0, 0] = float("nan")
    out = bounded(correction, denoised)
    assert out[0, 0, 0, 0] == 0 and torch.equal(out[0].flatten()[1:], torch.full((3,), 0.5))
    limit = core.MAX_CORRECTION_RATIO * 2
    torch.testing.assert_close(out[1].pow(2).mean().sqrt(), torch.tensor(limit))


def test_corrected_subtracts_records_the_trace_and_keeps_the_denoised_dtype():
    denoised = torch.full((2, 1, 2, 2), 0.25, dtype=torch.float16)
    correction = torch.full((2, 1, 2, 2), 0.125, dtype=torch.float32)
    trace = GuidanceTrace()
    out = corrected(denoised, correction, sigma=torch.tensor([3.0, 3.0]), residual=torch.tensor([1.5, 2.5]), trace=trace)
    assert out.dtype == torch.float16 and torch.equal(out, torch.full_like(denoised, 0.125))
    assert trace.sigmas == [3.0] and trace.residuals == [[1.5, 2.5]]
    assert corrected(denoised, correction, sigma=torch.tensor(1.0), residual=torch.tensor([0.0]), trace=None).shape == (2, 1, 2, 2)
