"""What each guidance mode costs per sampling step: network passes counted, and seconds against a
plain KSampler step measured in the same run (interleaved, median), through ComfyUI's sampling.

Passes are counted with hooks: a forward of the diffusion network or the decoder (or encoder) is
one call of its module; a backward is one gradient reaching that call's output. Timing reuses
bench/step_cost.py's harness (one Euler step at sigma 2 -> 1.5, 4x bicubic super-resolution,
cfg 1, batch 1), for the scaled models and, unless --quick, the SD1.5-size UNet and decoder; and for
pixel models (the bundled demo prior, per operator of the demo), one step and whole DPS KSampler runs.

    .venv/bin/python bench/bench_modes.py [--quick] [--out bench] [--skip-full-size | --pixel-only]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MemoryBaseline, counting, device, interleaved, load_pack, machine, paired_ratios  # noqa: E402

load_pack()

import torch  # noqa: E402

import comfy.sample  # noqa: E402

from bench.step_cost import SIGMAS, StepBench, timing_sampler  # noqa: E402
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.guidance import METHODS  # noqa: E402
from comfyui_dps.nodes.guidance_patch import guided_model  # noqa: E402
from testkit.demo_tasks import demo_operators  # noqa: E402


def measure(bench: StepBench, latent: int, repeats: int, vae_name: str) -> dict:
    vae = bench.vaes[vae_name]
    measurement = bench.problem(latent)
    decoder = StepBench._decoder(vae)
    modules = {"UNet": bench.unet.model.diffusion_model, "decoder": decoder}
    calls = {"plain": lambda: bench._run(bench.unet, latent)}
    passes = {}
    for mode in METHODS:
        patched, _ = guided_model(bench.unet, measurement, mode, 1.0, vae=vae)
        calls[mode] = lambda patched=patched: bench._run(patched, latent)
    for name, fn in calls.items():
        fn()  # warm-up: the first guided call also probes the decoder's memory (once per patch)
        with counting(modules) as counts:
            fn()  # one step (the timing sampler takes one)
        passes[name] = counts
    # The decoder's work alone, timed in the same rotation: the floor of the modes that skip the UNet's backward.
    floors = {DECODER_FORWARD: decoder_forward(vae, latent), DECODER_BACKWARD: bench._decoder_floor(vae, latent)}
    for fn in floors.values():
        fn()
    medians, samples = interleaved({**calls, **floors}, repeats, warmup=0) if repeats else ({}, {})
    return {"latent": latent, "pixels": (8 * latent) ** 2, "vae": vae_name, "passes": passes,
            "seconds": medians, "ratio": {k: v / medians["plain"] for k, v in medians.items() if k in calls}
            if medians else {}}


#: Pixel models: the bundled demo prior at the demo's size on the demo's four operators (noise 0.02);
#: their guidance solves with the spectral covariance (dps/guidance/spectral.py), whose cost is
#: linear algebra next to a small network, so it is timed per operator.
PIXEL_SIZE = 128
PIXEL_MODES = ("dps", "pigdm", "proximal")
#: Rotations timed per operator: five left ratios 10-30% apart between runs; a pixel step is cheap.
PIXEL_REPEATS = 15


#: Row labels of the demo's tasks (testkit.demo_tasks).
PIXEL_LABELS = {"super-resolution": "4x bicubic SR", "inpainting-random": "random inpainting 80%",
                "inpainting-box": "box 40x40", "deblur": "Gaussian blur sigma 2"}


def pixel_operators() -> dict:
    return {PIXEL_LABELS[task]: operator for task, operator in demo_operators(PIXEL_SIZE).items()}


def demo_prior() -> tuple:
    """(MODEL, CONDITIONING) of the bundled demo prior, as its loader node gives them."""
    from comfyui_dps.nodes.demo_prior_node import DPSLoadDemoPrior

    with torch.inference_mode():
        model, _, cond = DPSLoadDemoPrior.execute().args
    return model, cond


def measure_pixel(repeats: int, model, cond) -> list[dict]:
    """Seconds per Euler step of plain sampling and each of PIXEL_MODES with the demo prior, per operator."""
    shape = (1, 3, PIXEL_SIZE, PIXEL_SIZE)

    def run(patcher):
        record = []
        with torch.inference_mode():
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            comfy.sample.sample_custom(patcher, noise, 1.0, timing_sampler(record), torch.tensor(SIGMAS), cond, cond,
                                       torch.zeros(shape), disable_pbar=True, seed=0)
        return record

    rows = []
    for name, operator in pixel_operators().items():
        with torch.inference_mode():
            picture = torch.rand(shape, generator=torch.Generator().manual_seed(1))
            measurement = simulate(picture, operator, GaussianNoise(0.02), seed=1)
        calls = {"plain": lambda: run(model)}
        for mode in PIXEL_MODES:
            patched, _ = guided_model(model, measurement, mode, 1.0)
            calls[mode] = lambda patched=patched: run(patched)
        medians, samples = interleaved(calls, repeats)
        # A step of this small network drifts by 10-30% between rotations: each rotation's own ratio counts.
        rows.append({"operator": name, "seconds": medians, "paired_ratio": paired_ratios(samples, "plain")})
        print(json.dumps(rows[-1]), flush=True)
    return rows


#: Whole sampling runs: DPS KSampler's defaults (50 steps of euler_ancestral, 'normal'), the demo's
#: measurement of a bundled photograph. One step at sigma 2 misses where the solves work hardest: with
#: a photograph's x_t a mask's CG runs to its cap (gram.COVARIANCE_MAX_ITERATIONS) from sigma 10 to about 2.
RUN_STEPS = 50
RUN_REPEATS = 3


def measure_pixel_runs(repeats: int, model, cond, steps: int = RUN_STEPS) -> list[dict]:
    """Seconds of a whole DPS KSampler run, plain (strength 0) and proximal, per demo operator, on the
    bundled `astronaut` photograph at the demo's size (interleaved rotations)."""
    from comfyui_dps.nodes.example_image_node import DPSExampleImage
    from comfyui_dps.nodes.sampling_nodes import DPSEmptyLatent, DPSKSampler

    with torch.inference_mode():
        picture = DPSExampleImage.execute("astronaut", PIXEL_SIZE).args[0].movedim(-1, 1)
    rows = []
    for name, operator in pixel_operators().items():
        with torch.inference_mode():
            measurement = simulate(picture, operator, GaussianNoise(0.02), seed=1)
            latent = DPSEmptyLatent.execute(measurement, 1).args[0]

        def run(mode: str, strength: float, measurement=measurement, latent=latent):
            with torch.inference_mode():
                DPSKSampler.execute(model, 0, steps, 1.0, "euler_ancestral", "normal", cond, cond, latent, 1.0,
                                    measurement, strength, mode, None)

        calls = {"plain": lambda: run("dps", 0.0), "proximal": lambda: run("proximal", 1.0)}
        medians, samples = interleaved(calls, repeats, warmup=0)
        rows.append({"operator": name, "steps": steps, "seconds": medians,
                     "proximal_ratio": paired_ratios(samples, "plain")["proximal"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def run_lines(rows: list[dict]) -> list[str]:
    lines = ["| operator | plain s / run | proximal s / run | proximal / plain (target <= 1.2x) |",
             "|---|---:|---:|---:|"]
    for row in rows:
        seconds = row["seconds"]
        lines.append(f"| {row['operator']} | {seconds['plain']:.2f} | {seconds['proximal']:.2f} | "
                     f"{row['proximal_ratio']:.2f}x |")
    return lines


def pixel_lines(rows: list[dict]) -> list[str]:
    lines = ["| operator | plain s / step | " + " | ".join(f"{m} s (x plain)" for m in PIXEL_MODES) +
             " | pigdm / dps (target <= 1.15x) | proximal / plain (target <= 1.2x) |",
             "|---|---:|" + "---:|" * len(PIXEL_MODES) + "---:|---:|"]
    for row in rows:
        seconds, ratio = row["seconds"], row["paired_ratio"]
        lines.append(f"| {row['operator']} | {seconds['plain']:.3f} | " + " | ".join(
            f"{seconds[m]:.3f} ({ratio[m]:.2f}x)" for m in PIXEL_MODES) +
            f" | {ratio['pigdm'] / ratio['dps']:.2f}x | {ratio['proximal']:.2f}x |")
    return lines


DECODER_FORWARD = "decoder forward"
DECODER_BACKWARD = "decoder forward + input backward"


def decoder_forward(vae, latent: int):
    """One decoder forward of a random latent, no gradient (as proximal's line search and fit make it)."""
    z = torch.randn(1, 4, latent, latent, generator=torch.Generator().manual_seed(2)).to(vae.device, vae.vae_dtype)

    def run():
        with torch.no_grad():
            vae.first_stage_model.decode(z)

    return run


def decoder_work(row: dict, mode: str) -> float:
    """Seconds of the decoder passes a step of `mode` made, from the decoder timed alone: each backward
    as (forward + input backward), each other forward as a forward."""
    counts, seconds = row["passes"][mode]["decoder"], row["seconds"]
    backward = counts["backward"]
    return backward * seconds[DECODER_BACKWARD] + (counts["forward"] - backward) * seconds[DECODER_FORWARD]


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's cost targets per row: pigdm <= 1.15x dps, proximal <= 1.2x (plain + its decoder work)."""
    lines = ["| models | decoder forward s | decoder fwd + input bwd s | pigdm / dps (target <= 1.15x) |"
             " proximal / (plain + its decoder work) (target <= 1.2x) |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        seconds = row["seconds"]
        if DECODER_FORWARD not in seconds:  # not timed, or kept from a run before the decoder was timed alone
            continue
        floor = seconds["plain"] + decoder_work(row, "proximal")
        lines.append(f"| {row['models']} {8 * row['latent']} px | {seconds[DECODER_FORWARD]:.3f} | "
                     f"{seconds[DECODER_BACKWARD]:.3f} | {seconds['pigdm'] / seconds['dps']:.2f}x | "
                     f"{seconds['proximal'] / floor:.2f}x |")
    return lines


def table(rows: list[dict]) -> list[str]:
    lines = ["| models | image | VAE | mode | UNet fwd / bwd | decoder fwd / bwd | s / step | x plain step |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for mode, counts in row["passes"].items():
            seconds = row["seconds"].get(mode)
            timing = "| |" if seconds is None else f"| {seconds:.3f} | {row['ratio'][mode]:.2f} |"
            lines.append(
                f"| {row['models']} | {8 * row['latent']} px | {row['vae']} | {mode} | "
                f"{counts['UNet']['forward']} / {counts['UNet']['backward']} | "
                f"{counts['decoder']['forward']} / {counts['decoder']['backward']} {timing}")
    return lines


def kept_full_size_rows(previous: pathlib.Path, every_latent_row: bool = False) -> list[dict]:
    """The SD1.5-size rows (or every latent-model row) of an earlier run, each marked with the date it was
    measured (its seconds compare only with its own plain step). A row kept once already keeps its own date:
    the file's date is that of its last run, which may have kept it too."""
    if not previous.exists():
        return []
    earlier = json.loads(previous.read_text())
    when = earlier.get("measured_on") or datetime.date.fromtimestamp(previous.stat().st_mtime).isoformat()
    rows = [row for row in earlier["rows"] if every_latent_row or not row["models"].startswith("scaled")]
    for row in rows:
        if " (run of " not in row["models"]:
            row["models"] = f"{row['models']} (run of {when})"
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled models only, small image, 1 repeat")
    parser.add_argument("--out", default=str(ROOT / "bench"), help="folder for modes_results.md / .json")
    parser.add_argument("--pixel-only", action="store_true", help="only the pixel-model rows (the demo prior); the "
                        "latent-model rows of modes_results.json in --out are kept, marked with the date of their run")
    parser.add_argument("--skip-full-size", action="store_true", help="only the scaled models (CPU: the SD1.5-size "
                        "moment step alone takes minutes); the SD1.5-size rows of modes_results.json in --out are kept, "
                        "marked with the date of their run")
    args = parser.parse_args()
    started = time.perf_counter()
    dev = device()
    baseline = MemoryBaseline(dev)
    info = machine()
    rows = []
    plans = [] if args.pixel_only else [("scaled", False, [16] if args.quick else [32], 1 if args.quick else 5)]
    if not (args.quick or args.skip_full_size or args.pixel_only):
        plans.append(("SD1.5-size", True, [32], 3))
    for label, full_size, latents, repeats in plans:
        bench = StepBench(dev, baseline, vae_names=("AutoencoderKL",), full_size=full_size)
        for latent in latents:
            row = measure(bench, latent, repeats, "AutoencoderKL")
            row["models"] = label
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
        del bench
    model, cond = demo_prior()
    pixel_rows = measure_pixel(1 if args.quick else PIXEL_REPEATS, model, cond)
    run_rows = measure_pixel_runs(1, model, cond, steps=4) if args.quick else measure_pixel_runs(RUN_REPEATS, model, cond)
    elapsed = time.perf_counter() - started
    out = pathlib.Path(args.out) if not args.quick else ROOT / "bench" / "out"
    if args.pixel_only:
        rows += kept_full_size_rows(out / "modes_results.json", every_latent_row=True)
    elif args.skip_full_size and not args.quick:
        rows += kept_full_size_rows(out / "modes_results.json")
    out.mkdir(parents=True, exist_ok=True)
    (out / "modes_results.json").write_text(json.dumps({"machine": info, "elapsed_s": elapsed, "rows": rows,
                                                        "pixel_rows": pixel_rows, "run_rows": run_rows,
                                                        "measured_on": datetime.date.today().isoformat()},
                                                       indent=1, default=str))
    text = "\n".join([
        "# Cost of each guidance mode per step (`bench/bench_modes.py`)", "",
        f"Machine: {info.get('cpu', '')}, {info.get('logical_cores', '')} logical cores, torch {torch.__version__}, device {dev}; "
        f"load average at start {info.get('load_average_at_start')}; {elapsed / 60:.1f} min. "
        "Seconds are medians of interleaved runs of one Euler step; passes are counted per step.", "",
        *table(rows), "",
        "Targets (ratios of medians in the same rotation). The decoder timed alone on a random latent: a forward"
        " without gradient, and a forward + backward to its input; proximal's decoder work is its counted"
        " backward passes at the second price and its other forward passes at the first.", "",
        *target_lines(rows), "",
        f"Pixel models: the demo prior (bundled, {PIXEL_SIZE}x{PIXEL_SIZE}), the demo's operators at noise 0.02,"
        f" one Euler step per call, {PIXEL_REPEATS} interleaved rotations in this run: seconds are medians, ratios the"
        " median of each rotation's own ratio (pigdm / dps: the ratio of those). Their pigdm (blur, SR, and masks"
        " with the covariance floored) and proximal solve with the spectral covariance by conjugate gradients.", "",
        *pixel_lines(pixel_rows), "",
        f"Whole runs of DPS KSampler at its defaults ({run_rows[0]['steps']} steps of euler_ancestral, 'normal', seed 0), the"
        f" demo's measurement of the bundled astronaut photograph at {PIXEL_SIZE} px: plain is guidance strength 0 (no"
        f" guidance at all), {RUN_REPEATS if not args.quick else 1} interleaved rotations, the ratio the median of each"
        " rotation's own. The cost per step averaged over the noise levels a user's run goes through.", "",
        *run_lines(run_rows), "",
    ])
    (out / "modes_results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
