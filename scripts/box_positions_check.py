"""Box inpainting at several hole positions on the tuning photographs, per guidance mode, with and
without clamping the posterior denoiser to the images' range [-1, 1]: the data behind `auto`'s pick
for holes with pixel models (README, "How auto chooses"). Dev tool, not shipped.

Photographs, noise (0.02), seeds and settings as scripts/mode_photo_check.py (DPS KSampler's
defaults: strength 1, 50 steps of euler_ancestral); a 40x40 hole at (44, 44), (16, 16) and (72, 72)
on each photograph. Per run: the classical baseline (biharmonic), the mean PSNR of the single samples
and the PSNR of their mean.

    .venv/bin/python scripts/box_positions_check.py --modes dps pigdm [--clamp on off] [--samples 4]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mode_photo_check  # noqa: E402  (loads the pack; its photographs, measurement and scoring)
import demo  # noqa: E402  (its classical baselines and metrics)
from comfyui_dps.dps.guidance import core, registry  # noqa: E402
from comfyui_dps.dps.operators import Inpainting  # noqa: E402
from comfyui_dps.nodes.demo_prior_node import DPSLoadDemoPrior  # noqa: E402

POSITIONS = [(44, 44), (16, 16), (72, 72)]
BOX = 40


#: Each mode's own function, before with_clamp replaces it.
ORIGINAL = {name: m.function for name, m in registry.METHODS.items()}


def with_clamp(mode: str, clamp: bool) -> None:
    """Make `mode` clamp its estimate to [-1, 1] (clamp) or leave it free, whatever it does itself."""
    original = ORIGINAL[mode]

    def free(**arguments):
        return original(**{**arguments, "render": _Unbounded(arguments["render"])})

    def bounded(**arguments):
        return core.within_data_range(original(**arguments), arguments["render"])

    registry.METHODS[mode] = dataclasses.replace(registry.METHODS[mode], function=bounded if clamp else free)


class _Unbounded:
    """A renderer as given, without a data range."""

    data_range = None

    def __init__(self, render):
        self._render = render
        self.affine = render.affine

    def __call__(self, latent):
        return self._render(latent)

    def encode(self, image):
        return self._render.encode(image)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--modes", nargs="+", default=["dps", "pigdm"])
    parser.add_argument("--clamp", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    with torch.inference_mode():
        prior = DPSLoadDemoPrior.execute().args
    rows = []
    for mode in args.modes:
        for clamp in args.clamp:
            with_clamp(mode, clamp == "on")
            for photo, truth in mode_photo_check.photos(128).items():
                for top, left in POSITIONS:
                    box = torch.zeros(128, 128)
                    box[top:top + BOX, left:left + BOX] = 1
                    operator = Inpainting(box)
                    measurement, latent = mode_photo_check.measure(truth, operator, args.samples)
                    classical, _ = demo.baseline("inpainting-box", measurement, operator, truth)
                    row = {"mode": mode, "clamp": clamp, "photo": photo, "box": [top, left],
                           "baseline": demo.psnr(truth, classical),
                           **mode_photo_check.sample_and_score(prior, truth, measurement, latent, mode)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print("| mode | clamp | baseline | single | mean | means above the baseline |\n|---|---|---|---|---|---|")
    for mode in args.modes:
        for clamp in args.clamp:
            mine = [r for r in rows if r["mode"] == mode and r["clamp"] == clamp]
            print(f"| {mode} | {clamp} | {np.mean([r['baseline'] for r in mine]):.2f} | "
                  f"{np.mean([r['single'] for r in mine]):.2f} | {np.mean([r['mean'] for r in mine]):.2f} | "
                  f"{sum(r['mean'] > r['baseline'] for r in mine)} of {len(mine)} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
