"""What a DAPS level costs next to a plain sampler step (issue 13, "Cost"), through ComfyUI's sampling.

Scaled SD1.5-like UNet and TAESD (bench/models.py), 4x bicubic super-resolution with Gaussian noise 0.05,
a 32x32 latent (256 px), batch 1, cfg 1. Both run through comfy.sample.sample_custom inside
torch.inference_mode(): plain = ComfyUI's euler KSAMPLER, DAPS = the DPS DAPS Sampler's KSAMPLER with its
defaults (20 Langevin steps, one denoiser call per level). Each is run over 1 and over 3 levels of sigmas;
the difference / 2 is the cost of one level, the rest is the once-per-run cost (for DAPS: the curvature's
power iteration, 13 decoder forward + backward passes; for both: loading). Counted per DAPS level: 1 network
call, langevin_steps decoder forward + backward passes. Not part of `make bench` (run_all.py) yet:

    .venv/bin/python bench/daps_cost.py [--latent 32] [--vae TAESD]
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

from bench.models import VAES, conditioning, sd_like_unet  # noqa: E402  (loads ComfyUI and the pack)

import comfy.sample  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes.daps_sampler_node import DPSDAPSSampler  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False


def run(model, sampler, levels, latent, cond):
    sigmas = torch.linspace(2.0, 1.0, levels + 1)
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent, 0)
        start = time.perf_counter()
        comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, latent, disable_pbar=True, seed=0)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--vae", choices=list(VAES), default="TAESD")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    model, vae, cond = sd_like_unet(), VAES[args.vae](), conditioning()
    side = args.latent * 8
    picture = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        measurement = simulate(picture, SuperResolution(4, "bicubic"), GaussianNoise(0.05), seed=0)
        samplers = {"plain euler": comfy.samplers.sampler_object("euler"),
                    "DAPS": DPSDAPSSampler.execute(measurement, 20, 0.5, "denoiser (1 call)", vae).args[0]}
    latent = torch.zeros(1, 4, args.latent, args.latent)
    run(model, samplers["plain euler"], 1, latent, cond)  # warm-up: loads the model
    row = {"latent": args.latent, "vae": args.vae}
    for name, sampler in samplers.items():
        one, three = run(model, sampler, 1, latent, cond), run(model, sampler, 3, latent, cond)
        row[name] = {"per_level_s": (three - one) / 2, "once_per_run_s": one - (three - one) / 2}
        print(name, row[name], flush=True)
    row["ratio"] = row["DAPS"]["per_level_s"] / row["plain euler"]["per_level_s"]
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
