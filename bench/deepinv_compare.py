"""Our DPS (ComfyUI's sampler + the pack's PREDICT_NOISE guidance) against deepinv's DPS on an
analytic Gaussian prior, where the exact posterior is known.

Both sides use the same prior, the same exact denoiser E[x0 | x_t] (tests/dps_test_pack/
gaussian_prior.py), the same operator, noise, measurement and number of denoiser calls, and start
from their own defaults: ours at guidance strength 1, deepinv's DPS at its default weight (1.0,
"norm" guidance, DDPM solver on the VP schedule). Reported: wall time per denoiser call and the
distance of the sample mean of a batch to the exact posterior mean.

Used by bench/run_all.py and by tests/nodes/test_dps_vs_deepinv.py.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from bench.common import load_pack

load_pack()

import comfy.model_patcher  # noqa: E402
import comfy.sample  # noqa: E402
import deepinv  # noqa: E402
from testkit.gaussian_prior import GaussianPrior, gaussian_prior_model, image_posterior  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import GaussianBlur, RandomInpainting, SuperResolution  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402

NOISE = 0.05
OPERATORS = {
    "blur": lambda: GaussianBlur(5, 1.0),
    "inpainting": lambda: RandomInpainting(0.7, seed=1),
    "super-resolution": lambda: SuperResolution(2, "average"),
}


@dataclass
class Problem:
    prior: GaussianPrior
    operator: object
    measurement: object
    post_mean: torch.Tensor  # exact posterior mean over the prior's flattened x (in [-1, 1] units)
    prior_distance: float  # |prior mean - posterior mean|

    def distance(self, samples: torch.Tensor) -> float:
        """|sample mean - exact posterior mean| for samples [B, ...] in the prior's x units."""
        return (samples.reshape(samples.shape[0], -1).double().mean(0) - self.post_mean).norm().item()


def make_problem(operator_name: str = "blur", shape=(3, 8, 8), correlation: float = 2.0) -> Problem:
    """The 192-pixel Gaussian problem of tests/nodes/test_posterior_sampling.py (same seeds)."""
    prior = GaussianPrior(shape=shape, seed=0, correlation=correlation)
    operator = OPERATORS[operator_name]()
    truth = prior.sample(1, seed=5)
    measurement = simulate(((truth + 1) / 2).float(), operator, GaussianNoise(NOISE), seed=7)
    _, _, post_mean, _ = image_posterior(prior, operator, measurement.y, NOISE)
    return Problem(prior, operator, measurement, post_mean, (prior.mean - post_mean).norm().item())


# ----------------------------------------------------------------------------------------------
# Ours: ComfyUI's sampler with the pack's guidance

def ours(problem: Problem, calls: int, count: int, seed: int = 0, sampler: str = "euler_ancestral",
         scheduler: str = "karras", strength: float = 1.0):
    """(samples [count, ...] in x units, denoiser calls made, seconds) for `calls` sampler steps
    of a one-call-per-step sampler. Runs under inference_mode like a ComfyUI node."""
    with torch.inference_mode():
        # On the CPU even where ComfyUI would pick a GPU: the prior's matrices live there.
        cpu = torch.device("cpu")
        model = comfy.model_patcher.ModelPatcher(gaussian_prior_model(problem.prior, "eps").model,
                                                 load_device=cpu, offload_device=cpu)
        patched, patch = guided_model(model, problem.measurement, "dps", strength)
        latent = torch.zeros(count, *problem.prior.shape)
        noise = comfy.sample.prepare_noise(latent, seed)
        cond = [[torch.zeros(1, 1, 1), {}]]
        start = time.perf_counter()
        out = comfy.sample.sample(patched, noise, calls, 1.0, sampler, scheduler, cond, cond, latent,
                                  disable_pbar=True, seed=seed)
        seconds = time.perf_counter() - start
    return out.clone(), len(patch.trace.sigmas), seconds


# ----------------------------------------------------------------------------------------------
# deepinv: its DPS with a deepinv Denoiser wrapping the same exact denoiser

class ExactGaussianDenoiser(deepinv.models.Denoiser):
    """The prior's exact E[x0 | x0 + sigma eps] as a deepinv Denoiser: images in [0, 1] = (x + 1) / 2,
    so x = 2 image - 1 and sigma_x = 2 sigma. Counts its calls."""

    def __init__(self, prior: GaussianPrior):
        super().__init__()
        self.prior = prior
        self.calls = 0

    def forward(self, x, sigma, **kwargs):
        self.calls += 1
        sigma = self._handle_sigma(sigma, batch_size=x.shape[0], ndim=1, device=x.device, dtype=torch.float64)
        denoised = self.prior.denoiser(2 * x.double() - 1, torch.ones_like(sigma), 2 * sigma)
        return ((denoised + 1) / 2).to(x.dtype)


class OperatorPhysics(deepinv.physics.LinearPhysics):
    """Our operator (exact adjoint) as deepinv physics, with deepinv's Gaussian noise model."""

    def __init__(self, operator, noise_sigma: float):
        super().__init__(A=operator.forward, A_adjoint=operator.adjoint,
                         noise_model=deepinv.physics.GaussianNoise(sigma=noise_sigma))


def deepinv_steps_for(calls: int) -> int:
    """deepinv's DPS with DDPM makes num_steps - 1 denoiser calls (none at t = 0): checked below."""
    return calls + 1


def theirs(problem: Problem, calls: int, count: int, seed: int = 0, **dps_options):
    """(samples [count, ...] in x units, denoiser calls made, seconds) of deepinv.sampling.DPS at its
    defaults except num_steps (chosen for `calls` denoiser calls)."""
    denoiser = ExactGaussianDenoiser(problem.prior)
    physics = OperatorPhysics(problem.operator, NOISE)
    generator = torch.Generator().manual_seed(seed)
    sampler = deepinv.sampling.DPS(denoiser, num_steps=deepinv_steps_for(calls), rng=generator, **dps_options)
    y = problem.measurement.y.double()
    start = time.perf_counter()
    images = sampler(y, physics, x_init=(count, *problem.prior.shape), seed=seed)
    seconds = time.perf_counter() - start
    return (2 * images.detach() - 1), denoiser.calls, seconds


def compare(operator_name: str = "blur", calls: int = 100, count: int = 300, seed: int = 0, repeats: int = 1) -> dict:
    """Both methods on one problem: distances, calls, and the median time per call over `repeats`
    interleaved runs of each after one warm-up run of each, which also gives the samples (with
    repeats=0, the times of that first run)."""
    problem = make_problem(operator_name)
    our_samples, our_calls, our_first = ours(problem, calls, count, seed)
    their_samples, their_calls, their_first = theirs(problem, calls, count, seed)
    if our_calls != calls or their_calls != calls:
        raise RuntimeError(f"denoiser calls differ: ours {our_calls}, deepinv {their_calls}, wanted {calls}")
    our_times, their_times = ([], []) if repeats else ([our_first / calls], [their_first / calls])
    for _ in range(repeats):
        our_times.append(ours(problem, calls, count, seed)[2] / calls)
        their_times.append(theirs(problem, calls, count, seed)[2] / calls)
    return {
        "operator": operator_name,
        "calls": calls,
        "samples": count,
        "prior_distance": problem.prior_distance,
        "ours_distance": problem.distance(our_samples),
        "deepinv_distance": problem.distance(their_samples),
        "ours_monte_carlo_error": monte_carlo_error(our_samples),
        "deepinv_monte_carlo_error": monte_carlo_error(their_samples),
        "ours_ms_per_call": 1e3 * statistics.median(our_times),
        "deepinv_ms_per_call": 1e3 * statistics.median(their_times),
    }


def steps_to_converge(operator_name: str = "blur", steps=(10, 20, 50, 100, 200, 1000), count: int = 300,
                      seed: int = 0, tolerance: float = 0.1) -> dict:
    """Our DPS at each step count: distance to the exact posterior mean, and the fewest steps whose
    distance is within `tolerance` (relative) of the largest step count's."""
    problem = make_problem(operator_name)
    distances, errors = {}, {}
    for n in steps:
        samples, _, _ = ours(problem, n, count, seed)
        distances[n] = problem.distance(samples)
        errors[n] = monte_carlo_error(samples)
    reference = distances[max(steps)]

    def close(n):
        return abs(distances[n] - reference) <= tolerance * reference

    from_on = [n for n in sorted(steps) if all(close(m) for m in steps if m >= n)]
    return {"operator": operator_name, "samples": count, "prior_distance": problem.prior_distance,
            "distances": distances, "monte_carlo_errors": errors, "reference_steps": max(steps),
            "tolerance": tolerance, "first_within_tolerance": min(n for n in steps if close(n)),
            "steps_within_tolerance": from_on[0]}


def monte_carlo_error(samples: torch.Tensor) -> float:
    """Standard error of the sample mean's distance from sampling alone: sqrt(sum of the per-pixel
    sample variances / number of samples)."""
    flat = samples.reshape(samples.shape[0], -1).double()
    return (flat.var(0).sum() / flat.shape[0]).sqrt().item()
