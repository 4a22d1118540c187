"""Unconditional samples of the bundled demo prior, for models/README.md's "Samples" figure. Dev tool,
not shipped.

ComfyUI's own sampler on the prior as DPS Load Demo Prior gives it (its MODEL, VAE and empty
conditioning), no measurement: what the prior alone believes a 128 px picture looks like.

    .venv/bin/python scripts/prior_samples.py [--count 4] [--steps 30] [--sampler euler]
        [--scheduler karras] [--seed 0] [--out models/samples.png]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from testkit.host import load_pack  # noqa: E402

load_pack()

import comfy.sample  # noqa: E402

from comfyui_dps.nodes.demo_prior_node import DPSLoadDemoPrior  # noqa: E402


def samples(count: int, size: int, steps: int, sampler: str, scheduler: str, seed: int) -> np.ndarray:
    """[count, size, size, 3] in [0, 1]: the prior's unconditional samples, decoded by its VAE."""
    with torch.inference_mode():
        model, vae, cond = DPSLoadDemoPrior.execute().args
        latent = torch.zeros(count, 3, size, size)
        noise = comfy.sample.prepare_noise(latent, seed)
        drawn = comfy.sample.sample(model, noise, steps, 1.0, sampler, scheduler, cond, cond, latent, seed=seed,
                                    disable_pbar=True)
        return vae.decode(drawn).clamp(0, 1).numpy()  # ComfyUI images: [B, H, W, C]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="karras")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "models" / "samples.png")
    args = parser.parse_args(argv)
    images = samples(args.count, args.size, args.steps, args.sampler, args.scheduler, args.seed)
    row = np.concatenate(list(images), axis=1)  # one row, side by side
    Image.fromarray((row * 255).round().astype(np.uint8)).save(args.out)
    print(f"wrote {args.out} ({args.count} samples, {args.sampler} {args.steps} steps, {args.scheduler}, "
          f"seed {args.seed})")


if __name__ == "__main__":
    main()
