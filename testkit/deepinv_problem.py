"""Our DPS against deepinv's DPS on the exact Gaussian problems, at equal denoiser calls, with
deepinv at its best step weight. Shared by tests/nodes/test_dps_vs_deepinv.py and
bench/deepinv_compare.py (`make bench`, section 3).

Both sides get the same prior and exact denoiser E[x0 | x_t] (testkit.gaussian_prior), the same
operator, noise and measurement (testkit.posterior_problems: 3x8x8 images, noise 0.05) and the same
number of denoiser calls. Ours: ComfyUI's own sampler (euler_ancestral, karras, EPS) through the
pack's guidance patch (`comfyui_dps.nodes.guidance_patch.guided_model`) at the default strength 1,
untuned. deepinv (0.5.0): `deepinv.sampling.DPS` (DDPM solver on the VP schedule), with its step
weight chosen on a log grid for each problem, for each of its two guidance forms ("norm", the
paper's, and "annealed"): at its default weight 1 the "norm" form barely moves the samples off the
prior, so a comparison at defaults says nothing.

Selection and report use different seeds: the weight is the one whose samples (seed
`select_seed`) come closest to the exact posterior mean; both sides are then reported on fresh
samples (seed `report_seed`), so the minimum over the grid does not flatter deepinv by picking the
luckiest draw (nor ours, which is not tuned at all).

Needs the ComfyUI host and the pack loaded (testkit.host.load_pack), which importing this does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import posterior_problems
from .gaussian_prior import GaussianPrior

import deepinv  # noqa: E402

NOISE = posterior_problems.NOISE
OPERATORS = posterior_problems.OPERATORS
SHAPE = (3, 8, 8)
CORRELATION = 2.0

#: Log grids (half decades) of deepinv's DPS weight, per guidance form. "norm" differentiates
#: lambda * |y - A D(x_t)|: a weight of order |y - A D| / noise^2 (a few hundred here) matches the
#: Gaussian likelihood, so its grid is centred there; "annealed" is on the likelihood's own scale (1).
WEIGHT_GRIDS = {
    "norm": [10 ** (k / 2) for k in range(-2, 9)],  # 0.1 .. 10^4, 11 values
    "annealed": [10 ** (k / 2) for k in range(-4, 5)],  # 0.01 .. 100, 9 values
}
#: How many half decades a grid is extended by, at most, when its best weight is at an edge.
MAX_EXTENSION = 6


@dataclass
class Problem:
    name: str
    prior: GaussianPrior
    operator: object
    measurement: object
    post_mean: torch.Tensor  # exact posterior mean over the prior's flattened x ([-1, 1] units)
    post_var: torch.Tensor  # its per-pixel variances
    prior_distance: float  # |prior mean - posterior mean|

    def accuracy(self, samples: torch.Tensor) -> dict:
        """How close samples [B, ...] (x units) come to the exact posterior: |sample mean - posterior
        mean| (absolute, over the prior's distance, and as the RMS over pixels in posterior
        standard deviations), the mean per-pixel variance ratio to the exact one, and the Monte Carlo
        error of that distance (sqrt of the summed per-pixel sample variances / number of samples)."""
        flat = samples.reshape(samples.shape[0], -1).double()
        error = flat.mean(0) - self.post_mean
        distance = error.norm().item()
        return {
            "distance": distance,
            "distance_over_prior": distance / self.prior_distance,
            "rms_error_in_post_std": (error**2 / self.post_var).mean().sqrt().item(),
            "variance_ratio": (flat.var(0) / self.post_var).mean().item(),
            "monte_carlo_error": (flat.var(0).sum() / flat.shape[0]).sqrt().item(),
        }


def make_problem(operator_name: str = "blur") -> Problem:
    """The 192-pixel problem of the DPS check in tests/nodes/test_posterior_sampling.py (same seeds)."""
    prior, measurement, _, _, _, post_mean, post_cov = posterior_problems.make_problem(
        SHAPE, OPERATORS[operator_name](), correlation=CORRELATION)
    return Problem(operator_name, prior, measurement.operator, measurement, post_mean, post_cov.diagonal().clone(),
                   (prior.mean - post_mean).norm().item())


# ----------------------------------------------------------------------------------------------
# Ours

def ours(problem: Problem, calls: int, count: int, seed: int = 0, sampler: str = "euler_ancestral",
         scheduler: str = "karras", strength: float = 1.0) -> tuple[torch.Tensor, int]:
    """(samples [count, ...] in x units, denoiser calls made) from `calls` steps of a one-call-per-step
    ComfyUI sampler with the pack's guidance, run as a ComfyUI node runs (inside inference mode), on
    the CPU where the prior's matrices live."""
    with torch.inference_mode():
        samples, patch = posterior_problems.draw(problem.prior, problem.measurement, "eps", sampler, count, calls,
                                                 strength=strength, seed=seed, scheduler=scheduler,
                                                 device=torch.device("cpu"))
        return samples.clone().reshape(count, *problem.prior.shape), len(patch.trace.sigmas)


# ----------------------------------------------------------------------------------------------
# deepinv

class ExactGaussianDenoiser(deepinv.models.Denoiser):
    """The prior's exact E[x0 | x0 + sigma eps] as a deepinv Denoiser on images in [0, 1] =
    (x + 1) / 2 (so x = 2 image - 1 and sigma_x = 2 sigma). Counts its calls."""

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
    """One of our operators (exact adjoint) as deepinv physics, with deepinv's Gaussian noise model."""

    def __init__(self, operator, noise_sigma: float):
        super().__init__(A=operator.forward, A_adjoint=operator.adjoint,
                         noise_model=deepinv.physics.GaussianNoise(sigma=noise_sigma))


def deepinv_steps_for(calls: int) -> int:
    """deepinv's DPS with its DDPM solver makes num_steps - 1 denoiser calls (none at t = 0);
    `theirs` checks the count."""
    return calls + 1


def theirs(problem: Problem, calls: int, count: int, seed: int = 0, weight: float = 1.0,
           guidance: str = "norm") -> tuple[torch.Tensor, int]:
    """(samples [count, ...] in x units, denoiser calls made) of deepinv.sampling.DPS at `weight`
    and `guidance`, otherwise its defaults, with num_steps chosen for `calls` denoiser calls."""
    denoiser = ExactGaussianDenoiser(problem.prior)
    physics = OperatorPhysics(problem.operator, NOISE)
    sampler = deepinv.sampling.DPS(denoiser, num_steps=deepinv_steps_for(calls), weight=weight, guidance=guidance,
                                   rng=torch.Generator().manual_seed(seed))
    images = sampler(problem.measurement.y.double(), physics, x_init=(count, *problem.prior.shape), seed=seed)
    return 2 * images.detach() - 1, denoiser.calls


def _score(accuracy: dict) -> float:
    """What the grid minimises: the distance to the exact posterior mean (a diverged run: inf)."""
    value = accuracy["distance"]
    return value if math.isfinite(value) else math.inf


def weight_search(problem: Problem, calls: int, count: int, seed: int, guidance: str,
                  grid=None, max_extension: int = MAX_EXTENSION, refine: bool = True) -> dict:
    """deepinv's distance at every weight of the log grid for `guidance`; while the best weight is
    at an edge of the grid, the grid is extended there by one half decade (at most `max_extension`
    times); then (`refine`) the weights a quarter decade either side of the best are tried too.
    Returns every weight tried with its accuracy, the best weight and whether it is at an edge of
    what was tried."""
    grid = sorted(grid or WEIGHT_GRIDS[guidance])
    results = {}

    def evaluate(weight):
        samples, made = theirs(problem, calls, count, seed, weight=weight, guidance=guidance)
        if made != calls:
            raise RuntimeError(f"deepinv made {made} denoiser calls, wanted {calls}")
        results[weight] = problem.accuracy(samples)

    for weight in grid:
        evaluate(weight)
    extended = 0
    while True:
        weights = sorted(results)
        best = min(weights, key=lambda w: _score(results[w]))
        at_low, at_high = best == weights[0], best == weights[-1]
        if not (at_low or at_high) or extended >= max_extension:
            break
        evaluate(best / math.sqrt(10) if at_low else best * math.sqrt(10))
        extended += 1
    if refine and not (at_low or at_high):  # quarter decades either side of the best
        for weight in (best / 10**0.25, best * 10**0.25):
            evaluate(weight)
        best = min(results, key=lambda w: _score(results[w]))
    weights = sorted(results)
    return {"guidance": guidance, "weights": weights, "results": [results[w] for w in weights],
            "best_weight": best, "best": results[best], "extended_by": extended,
            "best_at_edge": best in (weights[0], weights[-1])}


def compare(operator_name: str = "blur", calls: int = 100, count: int = 300, select_seed: int = 0,
            report_seed: int = 1, guidances=("norm", "annealed"), grids=None) -> dict:
    """Ours (default strength 1) against deepinv at the best weight of each guidance form, same
    denoiser calls: the weight is chosen on samples of `select_seed`, and both sides are reported
    on fresh samples of `report_seed`."""
    problem = make_problem(operator_name)
    searches = {g: weight_search(problem, calls, count, select_seed, g, grid=(grids or {}).get(g))
                for g in guidances}
    best_guidance = min(searches, key=lambda g: _score(searches[g]["best"]))
    our_samples, our_calls = ours(problem, calls, count, seed=report_seed)
    if our_calls != calls:
        raise RuntimeError(f"ours made {our_calls} denoiser calls, wanted {calls}")
    reported = {}
    for guidance, search in searches.items():
        samples, made = theirs(problem, calls, count, report_seed, weight=search["best_weight"], guidance=guidance)
        if made != calls:
            raise RuntimeError(f"deepinv made {made} denoiser calls, wanted {calls}")
        reported[guidance] = problem.accuracy(samples)
    default_samples, _ = theirs(problem, calls, count, report_seed)  # deepinv's defaults, for reference
    return {
        "operator": operator_name, "calls": calls, "samples": count, "select_seed": select_seed,
        "report_seed": report_seed, "prior_distance": problem.prior_distance,
        "ours": problem.accuracy(our_samples),
        "deepinv": reported[best_guidance], "deepinv_guidance": best_guidance,
        "deepinv_weight": searches[best_guidance]["best_weight"],
        "deepinv_by_guidance": reported, "deepinv_default": problem.accuracy(default_samples),
        "searches": searches,
    }


def steps_to_converge(operator_name: str = "blur", steps=(10, 20, 50, 100, 200, 1000), count: int = 300,
                      seed: int = 0, tolerance: float = 0.1) -> dict:
    """Our DPS at each step count: distance to the exact posterior mean, and the fewest steps whose
    distance is within `tolerance` (relative) of the largest step count's."""
    problem = make_problem(operator_name)
    distances, errors = {}, {}
    for n in steps:
        samples, _ = ours(problem, n, count, seed)
        accuracy = problem.accuracy(samples)
        distances[n], errors[n] = accuracy["distance"], accuracy["monte_carlo_error"]
    reference = distances[max(steps)]

    def close(n):
        return abs(distances[n] - reference) <= tolerance * reference

    from_on = [n for n in sorted(steps) if all(close(m) for m in steps if m >= n)]
    return {"operator": operator_name, "samples": count, "prior_distance": problem.prior_distance,
            "distances": distances, "monte_carlo_errors": errors, "reference_steps": max(steps),
            "tolerance": tolerance, "first_within_tolerance": min(n for n in steps if close(n)),
            "steps_within_tolerance": from_on[0]}
