"""Every guidance mode against the exact Gaussian posterior (issue 12's exact checks).

For each operator (2x average and bicubic super-resolution, 70% random and box inpainting, Gaussian
blur; noise 0.05), model family (eps, v_prediction, flow) and sampler (euler, euler_ancestral,
dpmpp_2m), 50 steps, default strength, every mode and the exact-score sampler (the pack's patch
with the exact E[x0 | x_t, y]: what discretisation alone leaves) run in the same process on the
same problem and noise seed. Per mode: the sample mean's distance to the exact posterior mean
relative to the prior mean's, the mean per-pixel variance ratio (samples / exact posterior) and
the mean normalised residual (residual / noise). Dev tool, not shipped:

    .venv/bin/python scripts/mode_check.py [--count 200] [--json out.json] [--modes dps moment ...]
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
from comfyui_dps.dps.operators import GaussianBlur, Inpainting, RandomInpainting, SuperResolution  # noqa: E402

FAMILIES = ["eps", "v_prediction", "flow"]
SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m"]
MODES = ["dps", "pigdm", "proximal", "moment", "exact"]
SHAPE = (3, 8, 8)


def box_mask():
    mask = torch.zeros(SHAPE[1:], dtype=torch.bool)
    mask[2:6, 2:6] = True  # a 4x4 hole in the middle of the 8x8 image
    return mask


OPERATORS = {
    "SR 2x average": lambda: SuperResolution(2, "average"),
    "SR 2x bicubic": lambda: SuperResolution(2, "bicubic"),
    "inpainting 70% random": lambda: RandomInpainting(0.7, seed=1),
    "inpainting box": lambda: Inpainting(box_mask()),
    "Gaussian blur": lambda: GaussianBlur(5, 1.0),
}


def rows(count: int, steps: int, operators, families, samplers, modes):
    out = []
    for name in operators:
        prior, measurement, matrix, offset, y, post_mean, post_cov = checks.make_problem(SHAPE, OPERATORS[name](),
                                                                                           correlation=2.0)
        exact_guidance = checks.exact_correction(prior, matrix, offset, y)
        prior_distance = (prior.mean - post_mean).norm().item()
        for family in families:
            for sampler in samplers:
                row = {"operator": name, "family": family, "sampler": sampler}
                for mode in modes:
                    start = time.perf_counter()
                    guidance = exact_guidance if mode == "exact" else None
                    samples, _ = checks.draw(prior, measurement, family, sampler, count, steps,
                                             mode="dps" if mode == "exact" else mode, guidance=guidance)
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


def table(results, modes) -> str:
    head = "| operator | family | sampler | " + " | ".join(
        f"{what} {mode}" for what in ("distance", "variance ratio", "residual") for mode in modes) + " |"
    lines = [head, "|" + "---|" * (3 + 3 * len(modes))]
    for r in results:
        cells = [f"{r[m]['distance']:.3f}" for m in modes] + [f"{r[m]['variance_ratio']:.2f}" for m in modes] + \
                [f"{r[m]['residual']:.2f}" for m in modes]
        lines.append(f"| {r['operator']} | {r['family']} | {r['sampler']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact_table(results, modes) -> str:
    """One row per configuration, each cell the modes' values in `modes` order (for the README)."""
    order = " / ".join(modes)
    lines = [f"| operator | family | sampler | distance ({order}) | variance ratio | residual / noise |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = [" / ".join(f"{r[m][key]:{fmt}}" for m in modes)
                 for key, fmt in (("distance", ".3f"), ("variance_ratio", ".2f"), ("residual", ".2f"))]
        lines.append(f"| {r['operator']} | {r['family']} | {r['sampler']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="samples per configuration")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--operators", nargs="+", choices=list(OPERATORS), default=list(OPERATORS))
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=FAMILIES)
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=SAMPLERS)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    parser.add_argument("--table-from", type=pathlib.Path, nargs="+",
                        help="no sampling: print the compact table of these --json files")
    args = parser.parse_args()
    if args.table_from:
        results = [row for path in args.table_from for row in json.loads(path.read_text())]
        print(compact_table(results, [m for m in MODES if all(m in r for r in results)]))
        return
    results = rows(args.count, args.steps, args.operators, args.families, args.samplers, args.modes)
    print(table(results, args.modes))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
