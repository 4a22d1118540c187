"""DAPS against dps on exact Gaussian posterior problems (issue 13, "exact Gaussian checks").

For each operator (2x average super-resolution, a 4x4 box inpainted in the middle of 8x8 images; noise 0.05)
and model family (eps, v_prediction, flow), 50 levels, defaults: the DPS DAPS Sampler through ComfyUI's
sampling (the KSAMPLER its node returns, the family's scheduler as the annealing schedule) next to `dps`
with euler_ancestral and euler, on the same problem. Per configuration: the sample mean's distance to the
exact posterior mean relative to the prior mean's, the mean per-pixel variance ratio (samples / exact
posterior) and the mean normalised residual (residual / noise). Dev tool, not shipped:

    .venv/bin/python scripts/daps_check.py [--count 300] [--json out.json]
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
import comfy.sample  # noqa: E402
import comfy.samplers  # noqa: E402
from comfyui_dps.dps.operators import Inpainting, SuperResolution  # noqa: E402
from comfyui_dps.nodes.daps_sampler_node import DPSDAPSSampler  # noqa: E402
from testkit.gaussian_prior import gaussian_prior_model  # noqa: E402

SHAPE = (3, 8, 8)
FAMILIES = ["eps", "v_prediction", "flow"]
DPS_SAMPLERS = ["euler_ancestral", "euler"]


def box_mask():
    mask = torch.zeros(8, 8)
    mask[2:6, 2:6] = 1
    return mask


OPERATORS = {"super-resolution": lambda: SuperResolution(2, "average"), "box inpainting": lambda: Inpainting(box_mask())}


def daps_draw(prior, measurement, family, count, steps, seed=0):
    model = gaussian_prior_model(prior, family)
    with torch.inference_mode():
        sampler = DPSDAPSSampler.execute(measurement, 20, 0.5, "denoiser (1 call)").args[0]
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"),
                                                 checks.SCHEDULERS[family], steps)
        latent = torch.zeros(count, *prior.shape)
        noise = comfy.sample.prepare_noise(latent, seed)
        cond = [[torch.zeros(1, 1, 1), {}]]
        out = comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, latent,
                                         disable_pbar=True, seed=seed)
    return out.reshape(count, -1).double()


def stats(samples, measurement, prior, post_mean, post_cov, seconds):
    residual = measurement.normalized_residual(((samples + 1) / 2).float().reshape(-1, *prior.shape))
    return {"distance": (samples.mean(0) - post_mean).norm().item() / (prior.mean - post_mean).norm().item(),
            "variance_ratio": (samples.var(0) / post_cov.diagonal()).mean().item(),
            "residual": residual.mean().item(), "seconds": seconds}


def rows(count, steps, operators=None, families=None):
    out = []
    for name in operators or OPERATORS:
        prior, measurement, *_, post_mean, post_cov = checks.make_problem(SHAPE, OPERATORS[name](), correlation=2.0)
        for family in families or FAMILIES:
            row = {"operator": name, "family": family}
            start = time.perf_counter()
            row["daps"] = stats(daps_draw(prior, measurement, family, count, steps), measurement, prior, post_mean,
                                post_cov, time.perf_counter() - start)
            for sampler in DPS_SAMPLERS:
                start = time.perf_counter()
                samples, _ = checks.draw(prior, measurement, family, sampler, count, steps)
                row[f"dps {sampler}"] = stats(samples, measurement, prior, post_mean, post_cov,
                                              time.perf_counter() - start)
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def table(results) -> str:
    lines = ["| operator | family | distance DAPS | distance dps (euler_a / euler) | variance ratio DAPS | "
             "variance ratio dps (euler_a / euler) | residual / noise DAPS | residual / noise dps (euler_a / euler) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        d, a, e = r["daps"], r["dps euler_ancestral"], r["dps euler"]
        lines.append(f"| {r['operator']} | {r['family']} | {d['distance']:.3f} | {a['distance']:.3f} / "
                     f"{e['distance']:.3f} | {d['variance_ratio']:.2f} | {a['variance_ratio']:.2f} / "
                     f"{e['variance_ratio']:.2f} | {d['residual']:.2f} | {a['residual']:.2f} / {e['residual']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="samples per configuration")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--operators", nargs="+", choices=list(OPERATORS), help="default: all")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, help="default: all")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    args = parser.parse_args()
    results = rows(args.count, args.steps, args.operators, args.families)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
