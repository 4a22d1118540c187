"""Every guidance mode on photographs with the bundled demo prior, at the DPS KSampler's own defaults
(or given settings): the data for choosing the default mode. Dev tool, not shipped.

The photographs are neither training photos of the demo prior nor the demo's held-out test photos:
scikit-image's `motorcycle_left` (Middlebury stereo) and `immunohistochemistry`, centre-cropped
and resized. The four tasks are the demo's (4x bicubic super-resolution, 80% random inpainting, a
40x40 box, Gaussian blur sigma 2), noise 0.02. Per task, photo and mode: the mean PSNR of single
samples, the PSNR of their mean (the posterior-mean estimate), the mean residual / noise, the
classical baseline's PSNR (scripts/demo.py's), and the seconds the sampling took.

    .venv/bin/python scripts/mode_photo_check.py [--samples 4] [--steps 50] [--strength 1]
        [--modes dps pigdm proximal moment] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from testkit.host import load_pack  # noqa: E402

load_pack()

import comfy.utils  # noqa: E402

import demo  # noqa: E402  (its classical baselines and metrics)
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.nodes.demo_prior_node import DPSLoadDemoPrior  # noqa: E402
from testkit.demo_tasks import demo_operators  # noqa: E402
from comfyui_dps.nodes.sampling_nodes import DPSEmptyLatent, DPSKSampler  # noqa: E402

comfy.utils.PROGRESS_BAR_ENABLED = False
NOISE = 0.02


def photos(size: int) -> dict:
    from skimage import data
    from skimage.transform import resize

    out = {}
    for name, image in (("motorcycle", data.stereo_motorcycle()[0]), ("ihc", data.immunohistochemistry())):
        h, w = image.shape[:2]
        side = min(h, w)
        crop = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side, :3]
        out[name] = resize(crop, (size, size), anti_aliasing=True).astype(np.float32)
    return out


def measure(truth: np.ndarray, operator, samples: int):
    """(measurement of the photograph `truth` [H, W, 3] by `operator` at NOISE, seed 1; an empty
    latent of `samples` samples for it)."""
    with torch.inference_mode():
        measurement = simulate(torch.from_numpy(truth).permute(2, 0, 1)[None], operator, GaussianNoise(NOISE), seed=1)
        return measurement, DPSEmptyLatent.execute(measurement, samples).args[0]


def sample_and_score(prior, truth: np.ndarray, measurement, latent, mode: str, *, steps: int = 50,
                     strength: float = 1.0, sampler: str = "euler_ancestral") -> dict:
    """DPS KSampler with `mode` on the demo prior (model, vae, cond): the mean PSNR of the single samples,
    the PSNR of their mean, the mean residual / noise and the seconds the sampling took."""
    model, vae, cond = prior
    start = time.perf_counter()
    with torch.inference_mode():
        out, _, report = DPSKSampler.execute(model, 0, steps, 1.0, sampler, "normal", cond, cond,
                                             latent, 1.0, measurement, strength, mode, None).args
        images = vae.decode(out["samples"]).float().clamp(0, 1).numpy()
    residuals = [float(line.split("residual = ")[1].split(" x")[0]) for line in report.splitlines()]
    return {
        "single": float(np.mean([demo.psnr(truth, image) for image in images])),
        "mean": demo.psnr(truth, images.mean(axis=0)),
        "residual": float(np.mean(residuals)),
        "seconds": time.perf_counter() - start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--sampler", default="euler_ancestral")
    parser.add_argument("--modes", nargs="+", default=["dps", "pigdm", "proximal", "moment"])
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    with torch.inference_mode():
        prior = DPSLoadDemoPrior.execute().args
    rows = []
    for photo, truth in photos(args.size).items():
        for task, operator in demo_operators(args.size).items():
            if args.tasks and task not in args.tasks:
                continue
            measurement, latent = measure(truth, operator, args.samples)
            classical, _ = demo.baseline(task, measurement, operator, truth)
            row = {"photo": photo, "task": task, "baseline": demo.psnr(truth, classical)}
            for mode in args.modes:
                row[mode] = sample_and_score(prior, truth, measurement, latent, mode, steps=args.steps,
                                             strength=args.strength, sampler=args.sampler)
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| photo | task | baseline | " + " | ".join(f"{m} single / mean / residual" for m in args.modes) + " |",
             "|---|---|---|" + "---|" * len(args.modes)]
    for r in rows:
        lines.append(f"| {r['photo']} | {r['task']} | {r['baseline']:.2f} | " + " | ".join(
            f"{r[m]['single']:.2f} / {r[m]['mean']:.2f} / {r[m]['residual']:.2f}" for m in args.modes) + " |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
