"""The exact-posterior problems of the posterior-sampling checks, shared by
tests/nodes/test_posterior_sampling.py and scripts/posterior_report.py (the README's tables).

A Gaussian prior over small RGB images (testkit.gaussian_prior), a linear operator, Gaussian noise
of standard deviation NOISE on the [0, 1] image scale: the posterior is Gaussian and known.
`draw` samples it through ComfyUI's own sampler with the pack's guidance patch (the one DPSGuidance
uses); `exact_correction` is a guidance that makes that patch exact.

Needs the ComfyUI host and the pack loaded (testkit.host.load_pack), which importing this does.
"""

from __future__ import annotations

import torch

from .host import load_pack

load_pack()

import comfy.sample  # noqa: E402

from comfyui_dps.dps.guidance import GuidanceMethod  # noqa: E402
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import GaussianBlur, RandomInpainting, SuperResolution  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402

from .gaussian_prior import GaussianPrior, gaussian_prior_model, image_posterior, linear_posterior  # noqa: E402

NOISE = 0.05
SCHEDULERS = {"eps": "karras", "v_prediction": "karras", "flow": "simple"}

#: The operators of the DPS check on 3x8x8 images (section 2 of the README's check).
DPS_OPERATORS = {"blur": lambda: GaussianBlur(5, 1.0), "inpainting": lambda: RandomInpainting(0.7, seed=1)}
#: The same and super-resolution, for the comparison with deepinv (bench/deepinv_compare.py).
OPERATORS = {**DPS_OPERATORS, "super-resolution": lambda: SuperResolution(2, "average")}


def make_problem(shape, operator, correlation=1.5):
    """(prior, measurement, B, c, y [m], exact posterior mean [n], covariance [n, n]) for a
    measurement y = A (truth + 1) / 2 + noise = B truth + c + noise of one prior sample (seeds fixed)."""
    prior = GaussianPrior(shape=shape, seed=0, correlation=correlation)
    truth = prior.sample(1, seed=5)
    measurement = simulate(((truth + 1) / 2).float(), operator, GaussianNoise(NOISE), seed=7)
    matrix, offset, post_mean, post_cov = image_posterior(prior, operator, measurement.y, NOISE)
    return prior, measurement, matrix, offset, measurement.y.reshape(-1).double(), post_mean, post_cov


def draw(prior, measurement, model_type, sampler, count, steps, mode="dps", strength=1.0, guidance=None, seed=0,
         scheduler=None, device=None):
    """(samples [count, n] float64 in the prior's x units, the GuidancePatch) from `count` runs of
    ComfyUI's `sampler` at `steps` steps with the pack's guidance. `device`: the model's load device
    (default ComfyUI's; the prior's matrices live on the CPU)."""
    model = gaussian_prior_model(prior, model_type, device=device)
    patched, patch = guided_model(model, measurement, mode, strength, guidance=guidance)
    latent = torch.zeros(count, *prior.shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    cond = [[torch.zeros(1, 1, 1), {}]]
    out = comfy.sample.sample(patched, noise, steps, 1.0, sampler, scheduler or SCHEDULERS[model_type], cond, cond,
                              latent, disable_pbar=True, seed=seed)
    return out.reshape(count, -1).double(), patch


def exact_correction(prior, matrix, offset, y):
    """A test-only guidance: the exact E[x0 | x_t, y] - E[x0 | x_t] for this Gaussian problem
    (finite at alpha = 0, where it equals the prior's own posterior shift)."""

    def guidance(*, x, sigma, alpha, denoise, render, measurement, strength, trace):
        denoised = denoise(x)
        mean_t, cov_t = prior.conditional(x, float(alpha.reshape(-1)[0]), float(sigma.reshape(-1)[0]))
        post_t, _ = linear_posterior(mean_t, cov_t, matrix, offset, y, NOISE)
        return denoised + (post_t - mean_t).reshape(x.shape).to(denoised.dtype)

    return GuidanceMethod("exact", guidance, through_model=False, needs_linear=True,
                          description="the exact posterior denoiser of this Gaussian problem (tests only)")
