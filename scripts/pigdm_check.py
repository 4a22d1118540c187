"""pigdm against dps on the exact Gaussian posterior problems (issue 12, item 1).

For each operator (2x average super-resolution, Gaussian blur, 70% random inpainting; noise 0.05),
model family (eps, v_prediction, flow) and sampler (euler_ancestral, euler), 50 steps, default
strength, both modes are run in the same process on the same problem and noise seed, and the
table gives for each: the sample mean's distance to the exact posterior mean relative to the prior
mean's, the mean per-pixel variance ratio (samples / exact posterior) and the mean normalised
residual (residual / noise; exact posterior samples for reference). Dev tool, not shipped:

    .venv/bin/python scripts/pigdm_check.py [--count 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import testkit.posterior_problems as checks  # noqa: E402  (loads ComfyUI and the pack)

FAMILIES = ["eps", "v_prediction", "flow"]
SAMPLERS = ["euler_ancestral", "euler"]
MODES = ["dps", "pigdm"]
SHAPE = (3, 8, 8)


def rows(count: int, steps: int, operators=None, families=None):
    out = []
    for name in operators or checks.OPERATORS:
        make = checks.OPERATORS[name]
        prior, measurement, matrix, offset, y, post_mean, post_cov = checks.make_problem(SHAPE, make(),
                                                                                           correlation=2.0)
        generator = torch.Generator().manual_seed(11)
        exact = post_mean + torch.randn(count, prior.n, generator=generator, dtype=torch.float64) @ \
            torch.linalg.cholesky(post_cov).T
        exact_residual = measurement.normalized_residual(((exact + 1) / 2).float().reshape(-1, *prior.shape))
        prior_distance = (prior.mean - post_mean).norm().item()
        for family in families or FAMILIES:
            for sampler in SAMPLERS:
                row = {"operator": name, "family": family, "sampler": sampler,
                       "exact_residual": exact_residual.mean().item()}
                for mode in MODES:
                    start = time.perf_counter()
                    samples, _ = checks.draw(prior, measurement, family, sampler, count, steps, mode=mode)
                    residual = measurement.normalized_residual(((samples + 1) / 2).float().reshape(-1, *prior.shape))
                    row[mode] = {
                        "distance": (samples.mean(0) - post_mean).norm().item() / prior_distance,
                        "variance_ratio": (samples.var(0) / post_cov.diagonal()).mean().item(),
                        "residual": residual.mean().item(),
                        "seconds": time.perf_counter() - start,
                    }
                out.append(row)
                print(json.dumps(row), flush=True)
    return out


def table(results) -> str:
    lines = ["| operator | family | sampler | distance dps | distance pigdm | variance ratio dps | "
             "variance ratio pigdm | residual / noise dps | residual / noise pigdm | exact posterior residual |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d, p = r["dps"], r["pigdm"]
        lines.append(f"| {r['operator']} | {r['family']} | {r['sampler']} | {d['distance']:.3f} | "
                     f"{p['distance']:.3f} | {d['variance_ratio']:.2f} | {p['variance_ratio']:.2f} | "
                     f"{d['residual']:.2f} | {p['residual']:.2f} | {r['exact_residual']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="samples per configuration")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--operators", nargs="+", choices=list(checks.OPERATORS), help="default: all")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, help="default: all")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    args = parser.parse_args()
    results = rows(args.count, args.steps, args.operators, args.families)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
