"""Figures and a table for the README from the exact-posterior checks (issue 4, checks 1 and 2).

Runs the problems of tests/nodes/test_posterior_sampling.py (testkit/posterior_problems.py) with
more samples and writes docs/posterior-check.md and docs/images/posterior-check.png. Dev tool, not
shipped:
    .venv/bin/python scripts/posterior_report.py
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import testkit.posterior_problems as checks  # noqa: E402  (loads ComfyUI and the pack)
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402

FAMILIES = ["eps", "v_prediction", "flow"]
SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "uni_pc"]


def plumbing_rows(count=4000, steps=60):
    problem = checks.make_problem((3, 4, 4), SuperResolution(2, "average"))
    prior, measurement, matrix, offset, y, post_mean, post_cov = problem
    post_std = post_cov.diagonal().sqrt()
    rows = []
    for family in FAMILIES:
        for sampler in SAMPLERS:
            samples, _ = checks.draw(prior, measurement, family, sampler, count, steps,
                                     guidance=checks.exact_correction(prior, matrix, offset, y))
            error = ((samples.mean(0) - post_mean).abs() / post_std).max().item()
            ratio = samples.var(0) / post_cov.diagonal()
            rows.append({"family": family, "sampler": sampler, "mean_error_in_post_std": error,
                         "variance_ratio_min": ratio.min().item(), "variance_ratio_max": ratio.max().item()})
            print(rows[-1], flush=True)
    return rows


def dps_rows(count=1000, steps=50):
    rows, panels = [], []
    for name, make in checks.DPS_OPERATORS.items():
        problem = checks.make_problem((3, 8, 8), make(), correlation=2.0)
        prior, measurement, matrix, offset, y, post_mean, post_cov = problem
        exact = post_mean + torch.randn(count, prior.n, dtype=torch.float64) @ torch.linalg.cholesky(post_cov).T
        exact_residual = measurement.normalized_residual(((exact + 1) / 2).float().reshape(-1, *prior.shape))
        for family in ["eps", "flow"]:
            samples, _ = checks.draw(prior, measurement, family, "euler_ancestral", count, steps)
            residual = measurement.normalized_residual(((samples + 1) / 2).float().reshape(-1, *prior.shape))
            prior_distance = (prior.mean - post_mean).norm().item()
            rows.append({
                "operator": name, "family": family,
                "residual_over_noise": residual.mean().item(),
                "exact_posterior_residual_over_noise": exact_residual.mean().item(),
                "mean_distance_over_prior_distance": (samples.mean(0) - post_mean).norm().item() / prior_distance,
                "variance_ratio_mean": (samples.var(0) / post_cov.diagonal()).mean().item(),
            })
            print(rows[-1], flush=True)
            if family == "eps":
                panels.append((name, prior, post_mean, samples.mean(0), measurement))
    return rows, panels


def figure(panels, path):
    fig, axes = plt.subplots(len(panels), 4, figsize=(8, 2.2 * len(panels)))
    for row, (name, prior, post_mean, dps_mean, measurement) in enumerate(panels):
        images = [
            ("measurement y", measurement.operator.measurement_to_image(measurement.y)[0]),
            ("prior mean", (prior.mean.reshape(prior.shape) + 1) / 2),
            ("exact posterior mean", (post_mean.reshape(prior.shape) + 1) / 2),
            ("DPS sample mean", (dps_mean.reshape(prior.shape) + 1) / 2),
        ]
        for col, (title, image) in enumerate(images):
            axes[row, col].imshow(image.float().clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            axes[row, col].set_title(f"{name}: {title}" if col == 0 else title, fontsize=8)
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    start = time.time()
    torch.manual_seed(0)
    plumbing = plumbing_rows()
    dps, panels = dps_rows()
    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    figure(panels, images / "posterior-check.png")
    lines = ["| family | sampler | max mean error (posterior std) | variance ratio (min-max) |", "|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['sampler']} | {r['mean_error_in_post_std']:.3f} | "
              f"{r['variance_ratio_min']:.2f}-{r['variance_ratio_max']:.2f} |" for r in plumbing]
    lines += ["", "| operator | family | residual / noise (DPS) | residual / noise (exact posterior) | "
              "distance to posterior mean / prior's | variance ratio |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['operator']} | {r['family']} | {r['residual_over_noise']:.2f} | "
              f"{r['exact_posterior_residual_over_noise']:.2f} | {r['mean_distance_over_prior_distance']:.3f} | "
              f"{r['variance_ratio_mean']:.2f} |" for r in dps]
    (ROOT / "docs" / "posterior-check.md").write_text("\n".join(lines) + "\n")
    (ROOT / "docs" / "posterior-check.json").write_text(json.dumps({"plumbing": plumbing, "dps": dps}, indent=1))
    print("\n".join(lines))
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
