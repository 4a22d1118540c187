"""How the demo's sampler settings were chosen: runs the demo workflows with several settings on a
photograph that is neither in the demo prior's training set nor one of the demo's held-out test
photographs (scikit-image's `stereo_motorcycle`, used only here, never shipped), and prints PSNR /
SSIM / residual per setting. Dev tool, not shipped; slow on CPU (minutes per setting).

    .venv/bin/python scripts/demo_tune.py --size 64 --tasks super-resolution,deblur \\
        --configs euler_ancestral:50:1 euler_ancestral:50:2 dpmpp_2m:50:1
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]

import demo  # noqa: E402
from testkit.comfy_server import ComfyServer  # noqa: E402


def tuning_photo(size: int) -> np.ndarray:
    """A crop of the left stereo_motorcycle view at half resolution (the demo's scale), size x size."""
    import skimage.data

    full = skimage.data.stereo_motorcycle()[0]
    half = Image.fromarray(full).resize((full.shape[1] // 2, full.shape[0] // 2), Image.Resampling.LANCZOS)
    array = np.asarray(half)
    top, left = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    return np.ascontiguousarray(array[top:top + size, left:left + size])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--tasks", default=",".join(demo.TASKS))
    p.add_argument("--configs", nargs="+", default=["euler_ancestral:50:1"],
                   help="sampler:steps:strength[:scheduler] settings to compare")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated run still stops its server
    picture = tuning_photo(args.size)
    rows = []
    out_dir = pathlib.Path(tempfile.mkdtemp(prefix="dps-tune-"))
    with ComfyServer() as server:
        server.upload_file("dps_demo_tuning.png", demo.png_bytes(picture))
        info = server.object_info()
        for task in args.tasks.split(","):
            for config in args.configs:
                sampler, steps, strength, *rest = config.split(":")
                run_args = argparse.Namespace(steps=int(steps), sampler_name=sampler, guidance_strength=float(strength),
                                              seed=None, scheduler=rest[0] if rest else None)
                start = time.monotonic()
                row = demo.run_one(server, info, task, "tuning", picture, out_dir, run_args)
                row["config"] = config
                rows.append(row)
                print(f"{task:18s} {config:28s} DPS {row['psnr_dps']:6.2f} dB {row['ssim_dps']:.3f}  baseline "
                      f"{row['psnr_baseline']:6.2f} dB {row['ssim_baseline']:.3f}  residual {row['residual']:5.2f}  "
                      f"{time.monotonic() - start:5.0f} s ({row['cpu_seconds']:.0f} s CPU)", flush=True)
    print(f"\nimages in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
