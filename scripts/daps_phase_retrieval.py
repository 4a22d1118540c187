"""Phase retrieval with the demo prior: DAPS against dps (issue 13, "Done when").

The held-out photographs (astronaut, coffee; never seen by the demo prior) at --size px are measured
with Fourier phase retrieval (oversampling 2) under Gaussian noise 0.02 (the demo workflows' level),
then sampled --seeds times (one batch: every sample is independent of its batch mates) by
  - DAPS: the DPS DAPS Sampler's KSAMPLER through ComfyUI's sampling, 'normal' sigmas, defaults;
  - dps: the guidance patch of DPS KSampler with euler_ancestral, guidance strength 2.0 (the demo workflows' setting until ba371ed).
Per method and photo: the share of samples whose residual is within 1.2x the noise level, and the PSNR
against the truth (the better of the sample and its 180-degree rotation: |FFT| cannot tell them apart).
Dev tool, not shipped:

    .venv/bin/python scripts/daps_phase_retrieval.py [--size 64] [--seeds 8] [--steps 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from testkit.host import load_pack  # noqa: E402

load_pack()

import comfy.sample  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import PhaseRetrieval  # noqa: E402
from comfyui_dps.nodes.daps_sampler_node import DPSDAPSSampler  # noqa: E402
from comfyui_dps.nodes.demo_prior import empty_conditioning  # noqa: E402
from comfyui_dps.nodes.demo_prior_node import cached_demo_prior  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False
PHOTOS = ("astronaut", "coffee")
NOISE = 0.02


def photo(name, size):
    with Image.open(ROOT / "nodes" / "example_images" / f"{name}.png") as picture:
        picture = picture.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def psnr(estimate, truth):
    mse = (estimate.clamp(0, 1) - truth).square().mean().item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def best_psnr(image, truth):
    return max(psnr(image, truth), psnr(torch.flip(image, dims=(-2, -1)), truth))


def sample_daps(model, measurement, count, steps, seed, estimate):
    with torch.inference_mode():
        sampler = DPSDAPSSampler.execute(measurement, 20, 0.5, estimate).args[0]
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", steps)
        latent = torch.zeros(count, 3, *measurement.image_size)
        noise = comfy.sample.prepare_noise(latent, seed)
        cond = empty_conditioning()
        return comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, latent,
                                          disable_pbar=True, seed=seed)


def sample_dps(model, measurement, count, steps, seed):
    with torch.inference_mode():
        patched, _ = guided_model(model, measurement, "dps", 2.0)
        latent = torch.zeros(count, 3, *measurement.image_size)
        noise = comfy.sample.prepare_noise(latent, seed)
        cond = empty_conditioning()
        return comfy.sample.sample(patched, noise, steps, 1.0, "euler_ancestral", "normal", cond, cond, latent,
                                   disable_pbar=True, seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dps-steps", type=int, default=100, help="the demo's setting")
    parser.add_argument("--methods", nargs="+", default=["daps", "daps-ode3", "dps"])
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    model, _ = cached_demo_prior()
    rows = []
    for name in PHOTOS:
        truth = photo(name, args.size)
        measurement = simulate(truth, PhaseRetrieval(2.0), GaussianNoise(NOISE), seed=0)
        for method in args.methods:
            start = time.perf_counter()
            if method == "dps":
                samples = sample_dps(model, measurement, args.seeds, args.dps_steps, seed=1)
            else:
                estimate = "ODE (3 steps)" if method == "daps-ode3" else "denoiser (1 call)"
                samples = sample_daps(model, measurement, args.seeds, args.steps, seed=1, estimate=estimate)
            seconds = time.perf_counter() - start
            images = ((samples.float() + 1) / 2)
            residual = measurement.normalized_residual(images.clamp(0, 1))
            psnrs = [best_psnr(image[None], truth) for image in images]
            row = {"photo": name, "method": method, "size": args.size, "samples": args.seeds,
                   "success_share": float((residual <= 1.2).float().mean()),
                   "residual_median": float(residual.median()), "psnr_mean": float(np.mean(psnrs)),
                   "psnr_best": float(np.max(psnrs)), "psnr_of_successes": float(np.mean(
                       [p for p, r in zip(psnrs, residual.tolist(), strict=True) if r <= 1.2] or [float("nan")])),
                   "seconds": round(seconds, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| photo | method | share with residual <= 1.2x noise | median residual | PSNR mean (dB) | PSNR best | time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['photo']} | {r['method']} | {r['success_share']:.2f} | {r['residual_median']:.2f} | "
              f"{r['psnr_mean']:.2f} | {r['psnr_best']:.2f} | {r['seconds']:.0f} s |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
