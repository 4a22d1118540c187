"""What a DAPS level costs next to a plain sampler step (issue 13, "Cost"), through ComfyUI's sampling.

The scaled SD1.5-like UNet with TAESD and with AutoencoderKL, and SD1.5's own UNet with TAESD (bench/models.py),
4x bicubic super-resolution with Gaussian noise 0.05, a 32x32 latent (256 px), batch 1, cfg 1. Both run through comfy.sample.sample_custom inside
torch.inference_mode(): plain = ComfyUI's euler KSAMPLER, DAPS = the DPS DAPS Sampler's KSAMPLER with its
defaults (20 Langevin steps, one denoiser call per level). Each is run over 1 and over 3 levels of sigmas;
the difference / 2 is the cost of one level, the rest is the once-per-run cost (for DAPS: the curvature's
power iteration, 13 decoder forward + backward passes; for both: loading). Counted per DAPS level: 1 network
call, langevin_steps decoder forward + backward passes (counted here with hooks). Writes bench/daps_results.md
and .json; `make bench` runs it after run_all.py:

    .venv/bin/python bench/daps_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import counting, load_average  # noqa: E402
from bench.models import VAES, conditioning, sd_like_unet  # noqa: E402  (loads ComfyUI and the pack)

import comfy.sample  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import SuperResolution  # noqa: E402
from comfyui_dps.nodes.daps_sampler_node import DPSDAPSSampler  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False


#: (model size, decoder, latent side) measured by default: the scaled models of run_all.py's section 1 with
#: both decoders, and SD1.5's own UNet with TAESD (SD's full AutoencoderKL would take 20 decoder passes of
#: about 13 s per level on 2 CPU cores: over 15 minutes for this one row).
CONFIGURATIONS = [("scaled", "TAESD", 32), ("scaled", "AutoencoderKL", 32), ("SD1.5 size", "TAESD", 32)]
OUT = ROOT / "bench"


def run(model, sampler, levels, latent, cond):
    sigmas = torch.linspace(2.0, 1.0, levels + 1)
    with torch.inference_mode():
        noise = comfy.sample.prepare_noise(latent, 0)
        start = time.perf_counter()
        comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, cond, cond, latent, disable_pbar=True, seed=0)
    return time.perf_counter() - start


def measure(size: str, vae_name: str, side: int) -> dict:
    model, vae, cond = sd_like_unet(full_size=size != "scaled"), VAES[vae_name](), conditioning()
    picture = torch.rand(1, 3, side * 8, side * 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        measurement = simulate(picture, SuperResolution(4, "bicubic"), GaussianNoise(0.05), seed=0)
        samplers = {"plain euler": comfy.samplers.sampler_object("euler"),
                    "DAPS": DPSDAPSSampler.execute(measurement, 20, 0.5, "denoiser (1 call)", vae).args[0]}
    latent = torch.zeros(1, 4, side, side)
    run(model, samplers["plain euler"], 1, latent, cond)  # warm-up: loads the model
    row = {"size": size, "vae": vae_name, "latent": side}
    autoencoder = vae.first_stage_model
    modules = {"UNet": model.model.diffusion_model,
               "decoder": getattr(autoencoder, "taesd_decoder", None) or autoencoder.decoder}
    for name, sampler in samplers.items():
        counts = []
        times = []
        for levels in (1, 3):
            with counting(modules) as counted:
                times.append(run(model, sampler, levels, latent, cond))
            counts.append((counted["UNet"]["forward"], counted["decoder"]["forward"]))
        per_level = (times[1] - times[0]) / 2
        row[name] = {"per_level_s": per_level, "once_per_run_s": times[0] - per_level,
                     "network_calls_per_level": (counts[1][0] - counts[0][0]) / 2,
                     "decoder_passes_per_level": (counts[1][1] - counts[0][1]) / 2,
                     "decoder_passes_once_per_run": counts[0][1] - (counts[1][1] - counts[0][1]) / 2}
        print(size, vae_name, name, row[name], flush=True)
    row["ratio"] = row["DAPS"]["per_level_s"] / row["plain euler"]["per_level_s"]
    return row


def report(rows: list[dict], machine: dict) -> str:
    lines = [
        "# DAPS: cost of a level (`bench/daps_cost.py`, part of `make bench`)", "",
        f"Written on {machine['date']} in {machine['minutes']:.1f} min; 1-minute load average {machine['load_start']:.1f}"
        f" at start, {machine['load_end']:.1f} at end, on {machine['cores']} logical cores (a busy machine makes the"
        " seconds and the ratio unreliable).", "",
        "4x bicubic super-resolution, Gaussian noise 0.05, batch 1, cfg 1, through comfy.sample.sample_custom in"
        " inference mode. Plain: ComfyUI's euler. DAPS: the DPS DAPS Sampler at its defaults (20 Langevin steps,"
        " step size 0.5, one denoiser call per level). Each ran over 1 and over 3 levels; the difference / 2 is one"
        " level, the rest the once-per-run cost (DAPS: the curvature's power iteration). Calls and passes are counted"
        " with forward hooks on the UNet and on the decoder (each decoder forward of a Langevin step is followed by"
        " one backward to its input).", "",
        "| models | decoder | latent (image) | network calls / level | decoder passes / level | decoder passes once"
        " | plain euler s / level | DAPS s / level | **DAPS / plain** |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        daps, plain = row["DAPS"], row["plain euler"]
        lines.append(f"| {row['size']} | {row['vae']} | {row['latent']}x{row['latent']} ({row['latent'] * 8}px)"
                     f" | {daps['network_calls_per_level']:g} | {daps['decoder_passes_per_level']:g}"
                     f" | {daps['decoder_passes_once_per_run']:g} | {plain['per_level_s']:.2f}"
                     f" | {daps['per_level_s']:.2f} | **{row['ratio']:.1f}x** |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the scaled TAESD row at a 16x16 latent (checks the "
                        "script; writes under bench/out)")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    configurations = [("scaled", "TAESD", 16)] if args.quick else CONFIGURATIONS
    out = OUT / "out" if args.quick and args.out == OUT else args.out
    started, load_start = time.perf_counter(), load_average()
    rows = [measure(*configuration) for configuration in configurations]
    machine = {"date": datetime.date.today().isoformat(), "minutes": (time.perf_counter() - started) / 60,
               "load_start": load_start, "load_end": load_average(), "cores": os.cpu_count()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "daps_results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    text = report(rows, machine)
    (out / "daps_results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
