"""Time forward and adjoint of every DPS operator (not a test; run by hand).

    .venv/bin/python bench/bench_operators.py                 # CPU, plus CUDA if present
    .venv/bin/python bench/bench_operators.py --devices cuda  # one device only
    .venv/bin/python bench/bench_operators.py --threads 1     # steadier on a busy machine

Float32 images [B, 3, N, N] for N in 512, 1024 and B in 1, 4. Each cell is the median of
several timed calls after warm-up calls (which also fill the operators' per-size caches),
with CUDA synchronised around each call. Prints a markdown table and writes it to
bench/operators_results.md (or --out); --append adds this run's section to that file instead
of replacing it (for results from several machines in one file).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.host import import_pack  # noqa: E402

import_pack()
import comfyui_dps.dps.operators as ops  # noqa: E402


def operators():
    """(label, factory) pairs: the DPS paper's settings where it has them."""
    return [
        ("Inpainting (random 70% mask)", lambda n: ops.Inpainting((torch.rand(n, n) < 0.7).float())),
        ("RandomInpainting 0.7", lambda n: ops.RandomInpainting(0.7, seed=0)),
        ("SuperResolution x4 bicubic", lambda n: ops.SuperResolution(4, "bicubic")),
        ("SuperResolution x4 average", lambda n: ops.SuperResolution(4, "average")),
        ("GaussianBlur 61, sigma 3 (FFT)", lambda n: ops.GaussianBlur(61, 3.0)),
        ("GaussianBlur 5, sigma 1 (direct)", lambda n: ops.GaussianBlur(5, 1.0)),
        ("MotionBlur 61 camera shake (FFT)", lambda n: ops.MotionBlur.camera_shake(61, 0.5, seed=0)),
        ("Colorization", lambda n: ops.Colorization()),
        ("FourierUndersampling 4x", lambda n: ops.FourierUndersampling(4, 0.08, seed=0)),
        ("PhaseRetrieval 2x", lambda n: ops.PhaseRetrieval(2.0)),
        ("Blur 61 then SR x4", lambda n: ops.Composition(ops.GaussianBlur(61, 3.0), ops.SuperResolution(4))),
    ]


def median_ms(fn, device, warmup, repeats):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="*", default=None, help="cpu and/or cuda (default: cpu + cuda if present)")
    parser.add_argument("--sizes", nargs="*", type=int, default=[512, 1024])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 4])
    parser.add_argument("--out", default=str(ROOT / "bench" / "operators_results.md"))
    parser.add_argument("--append", action="store_true", help="add a section to --out instead of replacing it")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads; 1 gives steadier numbers on a machine shared with other work")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    rows = []
    header = "| operator | device | N | B | forward ms | adjoint ms |\n|---|---|---:|---:|---:|---:|"
    print(header, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()
    for device_name in devices:
        device = torch.device(device_name)
        for label, build in operators():
            for n in args.sizes:
                op = build(n).to(device, torch.float32)  # its tensors on the images' device, in their dtype
                for b in args.batches:
                    x = torch.rand(b, 3, n, n, device=device)
                    # CPU is slow at 1024 x 4: fewer repeats keep the whole run near 3 minutes.
                    cpu_big = device.type == "cpu" and n * n * b > 512 * 512 * 4
                    warmup, repeats = (1, 3) if cpu_big else (2, 7) if device.type == "cpu" else (5, 25)
                    with torch.no_grad():
                        fwd = median_ms(lambda op=op, x=x: op(x), device, warmup, repeats)
                        if op.is_linear:
                            y = op(x)
                            adj = f"{median_ms(lambda op=op, y=y: op.adjoint(y), device, warmup, repeats):.2f}"
                        else:
                            adj = "n/a (non-linear)"
                    row = f"| {label} | {device_name} | {n} | {b} | {fwd:.2f} | {adj} |"
                    rows.append(row)
                    print(row, flush=True)
    elapsed = time.perf_counter() - started

    gpu = torch.cuda.get_device_name(0) if "cuda" in devices else "none"
    out = pathlib.Path(args.out)
    title = f"## {', '.join(devices)}: {os.cpu_count()} CPU cores, GPU {gpu}"
    notes = [
        *(["# Operator benchmark", ""] if not (args.append and out.exists()) else [""]),
        title,
        "",
        f"Written by `bench/bench_operators.py` on {datetime.date.today().isoformat()}: float32 images "
        "[B, 3, N, N], median wall time of repeated calls after warm-up (CPU: 7 repeats, 3 at "
        "N=1024 B=4; CUDA: 25 repeats, synchronised), no autograd.",
        "",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}",
        f"- CPU: {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
        f"1-minute load average at start {load:.1f} (other work on the machine slows the CPU rows)",
        f"- GPU: {gpu}",
        f"- total benchmark time {elapsed:.0f} s",
        "",
        header,
        *rows,
        "",
    ]
    previous = out.read_text() if args.append and out.exists() else ""
    out.write_text(previous + "\n".join(notes))
    print(f"\nwrote {args.out} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
