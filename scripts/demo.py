"""`make demo`: restore held-out photographs with the pack's demo workflows in a real ComfyUI.

What it does, in order:
1. starts a headless ComfyUI (CPU) with ComfyUI-DPS loaded (scripts/comfy_server.py);
2. picks the two photographs the demo prior never saw in training (scikit-image's `astronaut`
   and `coffee`, bundled as 256 px crops in nodes/example_images/) in each workflow's DPS Example
   Image node, at --size;
3. runs each shipped workflow (workflows/demo-prior-*.json: super-resolution, random and box
   inpainting, deblurring) through the HTTP API, converted with scripts/workflow_api.py and
   checked against the live /object_info, printing the node running and the sampling steps;
4. recomputes each workflow's measurement y with the engine (`dps`, same operator, noise and
   seed; checked against the degraded picture the workflow previewed) and restores it with a
   classical method: bicubic upsampling, biharmonic inpainting, Wiener deconvolution;
5. writes demo-output/: the results, one figure per task (measurement, baseline, one sample, the
   mean of --samples posterior samples, their per-pixel spread, ground truth, with PSNR / SSIM),
   results.md and results.json, and prints the table (single samples and their mean).

--mode daps runs the DPS DAPS Sampler instead of DPS KSampler's guidance: the workflow's DPS KSampler
becomes DPS DAPS Sampler (its defaults) -> SamplerCustomAdvanced with a CFGGuider, a BasicScheduler and
RandomNoise on the same model, conditioning, steps, scheduler, cfg and seed. DAPS reports no residual, so
the demo computes it from the saved samples with the engine's Measurement.normalized_residual.

Exit status 1 if anything failed (a prompt error, a missing output, a non-finite result).

    .venv/bin/python scripts/demo.py [--size 128] [--photos astronaut,coffee] [--steps N]
        [--mode auto|dps|fast|pigdm|proximal|moment|daps] [--samples 8]
    .venv/bin/python scripts/demo.py --update-docs    # also refresh docs/images/demo-*.png
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import signal
import platform
import re
import shutil
import sys
import time
import traceback

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from testkit.comfy_server import ComfyServer, PromptFailed  # noqa: E402
from testkit.workflow_api import check_workflow, ui_to_api  # noqa: E402
from testkit.host import import_pack  # noqa: E402

import_pack()

WORKFLOWS = ROOT / "workflows"
WEIGHTS = ROOT / "models" / "demo_prior.safetensors"

#: task -> (workflow file, what the classical baseline is)
TASKS = {
    "super-resolution": ("demo-prior-super-resolution.json", "bicubic upsampling"),
    "inpainting-random": ("demo-prior-inpainting-random.json", "biharmonic inpainting"),
    "inpainting-box": ("demo-prior-inpainting-box.json", "biharmonic inpainting"),
    "deblur": ("demo-prior-deblur.json", "Wiener deconvolution"),
}
TASK_TITLES = {
    "super-resolution": "4x super-resolution",
    "inpainting-random": "random inpainting",
    "inpainting-box": "box inpainting",
    "deblur": "Gaussian deblurring",
}

#: Held-out photographs (never seen by the demo prior in training), bundled with the pack as 256 px
#: crops of scikit-image's originals (astronaut: the face and the helmet ring, rows 0-256 and columns
#: 96-352; coffee: the cup and the saucer, rows 0-400 and columns 100-500, resized to 256).
EXAMPLE_IMAGES = ROOT / "nodes" / "example_images"
PHOTOS = ("astronaut", "coffee")
WIENER_BALANCES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def log(message: str) -> None:
    print(message, flush=True)


# -- photographs -------------------------------------------------------------------------------
def photo(name: str, size: int) -> np.ndarray:
    """The held-out photograph `name` at size x size, uint8, as the DPS Example Image node gives it
    (the bundled 256 px crop, resized with Lanczos when size differs)."""
    with Image.open(EXAMPLE_IMAGES / f"{name}.png") as picture:
        picture = picture.convert("RGB")
        if picture.size != (size, size):
            picture = picture.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(picture, dtype=np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def load_png(path: pathlib.Path) -> np.ndarray:
    """A PNG as ComfyUI's LoadImage reads it: RGB float32 in [0, 1], [H, W, 3]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.float32) / 255.0


# -- the workflow's measurement, recomputed with the engine ------------------------------------
def _value(prompt: dict, value, image: np.ndarray):
    """A prompt input: a literal, or the output of one of the few nodes we can evaluate."""
    if not isinstance(value, list):
        return value
    node = prompt[value[0]]
    kind, inputs, slot = node["class_type"], node["inputs"], value[1]
    if kind == "GetImageSize":
        return [image.shape[1], image.shape[0], 1][slot]
    if kind == "SolidMask":
        height, width = (int(_value(prompt, inputs[k], image)) for k in ("height", "width"))
        return np.full((height, width), float(_value(prompt, inputs["value"], image)))
    if kind == "MaskComposite":
        out = np.array(_value(prompt, inputs["destination"], image), dtype=np.float64)
        source = _value(prompt, inputs["source"], image)
        left, top = int(inputs["x"]), int(inputs["y"])
        bottom, right = min(top + source.shape[0], out.shape[0]), min(left + source.shape[1], out.shape[1])
        part = source[: bottom - top, : right - left]
        operation = inputs["operation"]
        if operation == "add":
            out[top:bottom, left:right] += part
        elif operation == "subtract":
            out[top:bottom, left:right] -= part
        elif operation == "multiply":
            out[top:bottom, left:right] *= part
        else:
            raise ValueError(f"MaskComposite operation {operation!r} is not reproduced by the demo")
        return np.clip(out, 0, 1)
    raise ValueError(f"the demo cannot reproduce a {kind} node feeding the operator")


def engine_operator(prompt: dict, node_id: str, image: np.ndarray):
    from comfyui_dps.dps import operators

    node = prompt[node_id]
    kind, inputs = node["class_type"], {k: _value(prompt, v, image) for k, v in node["inputs"].items()}
    if kind == "DPSSuperResolutionOperator":
        return operators.SuperResolution(inputs["scale_factor"], inputs["kernel"])
    if kind == "DPSRandomInpaintingOperator":
        return operators.RandomInpainting(inputs["missing_fraction"], inputs["seed"])
    if kind == "DPSGaussianBlurOperator":
        return operators.GaussianBlur(inputs["kernel_size"], inputs["sigma"])
    if kind == "DPSInpaintingOperator":
        import torch

        return operators.Inpainting(torch.from_numpy(np.asarray(inputs["mask"], dtype=np.float64)))
    raise ValueError(f"the demo has no baseline for operator {kind}")


def find(prompt: dict, class_type: str) -> str:
    found = [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]
    if len(found) != 1:
        raise ValueError(f"expected one {class_type} node in the workflow, found {len(found)}")
    return found[0]


def consumers(prompt: dict, node_id: str, slot: int) -> list[str]:
    return [nid for nid, node in prompt.items() if [node_id, slot] in node["inputs"].values()]


def recompute_measurement(prompt: dict, truth: np.ndarray):
    """(Measurement, operator) exactly as the workflow's Simulate Measurement made it."""
    import torch

    from comfyui_dps.dps.measurement import simulate
    from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise

    sim = prompt[find(prompt, "DPSSimulateMeasurement")]["inputs"]
    operator = engine_operator(prompt, sim["operator"][0], truth)
    noise = (GaussianNoise if sim["noise_model"] == "gaussian" else PoissonNoise)(sim["noise_level"])
    x = torch.from_numpy(truth).permute(2, 0, 1)[None].contiguous()
    return simulate(x, operator, noise, int(sim["seed"])), operator


def saved_residuals(measurement, samples: np.ndarray) -> list[float]:
    """The normalized residual of each saved sample [N, H, W, C] in [0, 1] against the measurement."""
    import torch

    pictures = torch.from_numpy(np.ascontiguousarray(samples)).permute(0, 3, 1, 2).to(measurement.y.dtype)
    return [float(v) for v in measurement.normalized_residual(pictures)]


def to_hwc(tensor) -> np.ndarray:
    return tensor[0].detach().double().permute(1, 2, 0).numpy()


# -- classical baselines -----------------------------------------------------------------------
def baseline(task: str, measurement, operator, truth: np.ndarray) -> tuple[np.ndarray, str]:
    """The classical restoration of the same y, and a one-line description of it."""
    from skimage.restoration import inpaint_biharmonic, wiener
    from skimage.transform import resize

    y = to_hwc(measurement.y)
    height, width = truth.shape[:2]
    if task == "super-resolution":
        out = resize(y, (height, width), order=3, mode="reflect", anti_aliasing=False)
        return np.clip(out, 0, 1), "bicubic upsampling of y"
    if task.startswith("inpainting"):
        if hasattr(operator, "mask"):
            missing = operator.mask(height, width)[0, 0].numpy() > 0.5
        else:
            missing = operator.keep[0, 0].numpy() < 0.5
        out = inpaint_biharmonic(y, missing, channel_axis=-1)
        return np.clip(out, 0, 1), "biharmonic inpainting (skimage) of y"
    if task == "deblur":
        psf = operator.kernel.double().numpy()
        pad = psf.shape[0]
        padded = np.pad(y, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        best = None
        for balance in WIENER_BALANCES:
            out = np.stack([wiener(padded[..., c], psf, balance, clip=False) for c in range(3)], axis=-1)
            out = np.clip(out[pad:-pad, pad:-pad], 0, 1)
            score = psnr(truth, out)
            if best is None or score > best[0]:
                best = (score, out, balance)
        return best[1], (f"Wiener deconvolution (skimage), balance {best[2]:g} chosen on the ground truth "
                         f"from {', '.join(map(str, WIENER_BALANCES))} (favours the baseline)")
    raise ValueError(task)


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(truth.astype(np.float64), estimate.astype(np.float64), data_range=1))


def ssim(truth: np.ndarray, estimate: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(truth.astype(np.float64), estimate.astype(np.float64),
                                       channel_axis=-1, data_range=1))


# -- running one workflow ----------------------------------------------------------------------
class Progress:
    """Prints the node that runs and every tenth of the sampling steps, from websocket events."""

    def __init__(self, prompt: dict, start: float):
        self.prompt, self.start, self.last_step = prompt, start, -1

    def __call__(self, event: dict) -> None:
        data, kind = event.get("data", {}), event.get("type")
        stamp = f"[{time.monotonic() - self.start:6.1f} s]"
        if kind == "executing" and data.get("node") in self.prompt:
            node = self.prompt[data["node"]]
            log(f"    {stamp} {node['_meta']['title']}")
        elif kind == "progress":
            value, total = int(data.get("value", 0)), int(data.get("max", 1))
            every = max(total // 10, 1)
            if value == total or value // every != self.last_step // every:
                log(f"    {stamp}   step {value}/{total}")
            self.last_step = value


def server_cpu_seconds(server) -> float:
    """CPU time (user + system) the server process has used so far; 0 where /proc is missing.
    On a shared machine this is a steadier measure of the work than the wall time."""
    import os

    try:
        fields = pathlib.Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, AttributeError):
        return 0.0


DAPS = "daps"


def use_daps(prompt: dict, ksampler_id: str, object_info: dict) -> None:
    """DPS KSampler -> DPS DAPS Sampler (its defaults, as the live server declares them) + SamplerCustomAdvanced
    on the same model, conditioning, steps, scheduler, cfg and seed; the KSampler's residual plot and report
    nodes go (DAPS has neither)."""
    inputs = prompt[ksampler_id]["inputs"]
    for output in (1, 2):
        for consumer in consumers(prompt, ksampler_id, output):
            del prompt[consumer]

    def add(node_id: str, class_type: str, **values) -> list:
        prompt[node_id] = {"class_type": class_type, "inputs": values, "_meta": {"title": class_type}}
        return [node_id, 0]

    declared = object_info["DPSDAPSSampler"]["input"]["required"]
    daps = {name: spec[1]["default"] for name, spec in declared.items() if "default" in spec[1]}
    daps["measurement"] = inputs["measurement"]
    if isinstance(inputs.get("vae"), list):
        daps["vae"] = inputs["vae"]
    sampler = add("daps_sampler", "DPSDAPSSampler", **daps)
    guider = add("daps_guider", "CFGGuider", model=inputs["model"], positive=inputs["positive"],
                 negative=inputs["negative"], cfg=inputs["cfg"])
    sigmas = add("daps_sigmas", "BasicScheduler", model=inputs["model"], scheduler=inputs["scheduler"],
                 steps=inputs["steps"], denoise=inputs["denoise"])
    noise = add("daps_noise", "RandomNoise", noise_seed=inputs["seed"])
    # Same id as the KSampler: its LATENT consumers (VAE Decode) now read SamplerCustomAdvanced's output 0.
    prompt[ksampler_id] = {"class_type": "SamplerCustomAdvanced", "_meta": {"title": "SamplerCustomAdvanced (DAPS)"},
                           "inputs": {"noise": noise, "guider": guider, "sampler": sampler, "sigmas": sigmas,
                                      "latent_image": inputs["latent_image"]}}


SETTINGS = ("steps", "sampler_name", "scheduler", "guidance_strength", "guidance_mode", "seed")


def prepare_prompt(workflow: dict, object_info: dict, image_name: str, tag: str, args) -> tuple[dict, dict]:
    """The API prompt for one run, and the sampler settings it uses (for the report)."""
    problems = check_workflow(workflow, object_info)
    if problems:
        raise ValueError("workflow problems: " + "; ".join(problems))
    prompt = ui_to_api(workflow, object_info)
    prompt[find(prompt, "DPSExampleImage")]["inputs"].update(photo=image_name, size=args.size)
    ksampler = find(prompt, "DPSKSampler")
    sampler = prompt[ksampler]["inputs"]
    for key in ("steps", "sampler_name", "guidance_strength", "seed", "scheduler", "guidance_mode"):
        if getattr(args, key) is not None and not (key == "guidance_mode" and args.guidance_mode == DAPS):
            sampler[key] = getattr(args, key)
    prompt[find(prompt, "DPSEmptyLatent")]["inputs"]["batch_size"] = args.samples
    settings = {k: sampler[k] for k in SETTINGS}
    if args.guidance_mode == DAPS:
        use_daps(prompt, ksampler, object_info)
        settings.update(guidance_mode=DAPS, sampler_name="DPS DAPS Sampler (defaults)", guidance_strength=None)
    save = prompt[find(prompt, "SaveImage")]["inputs"]
    save["filename_prefix"] = f"{save['filename_prefix']}_{tag}"
    return prompt, settings


def output_images(result: dict, node_id: str) -> list[dict]:
    return result["history"]["outputs"].get(node_id, {}).get("images", [])


def run_one(server, object_info, task: str, name: str, truth_u8: np.ndarray, out_dir: pathlib.Path, args) -> dict:
    workflow_file, _ = TASKS[task]
    workflow = json.loads((WORKFLOWS / workflow_file).read_text())
    prompt, settings = prepare_prompt(workflow, object_info, name, name, args)
    start, cpu_start = time.monotonic(), server_cpu_seconds(server)
    result = server.run_prompt(prompt, timeout=3600.0, on_event=Progress(prompt, start))
    seconds, cpu = time.monotonic() - start, server_cpu_seconds(server) - cpu_start
    if result["history"]["status"].get("status_str") != "success":
        raise RuntimeError(f"prompt did not succeed: {result['history']['status']}")

    saved = output_images(result, find(prompt, "SaveImage"))
    if not saved:
        raise RuntimeError("the workflow saved no image")
    if len(saved) != args.samples:
        raise RuntimeError(f"the workflow saved {len(saved)} images, expected {args.samples} samples")
    samples = np.stack([load_png(server.output_file(info)) for info in saved])
    restored = samples[0]
    mean = samples.mean(axis=0)
    sim_id = find(prompt, "DPSSimulateMeasurement")
    degraded_nodes = [n for n in consumers(prompt, sim_id, 1) if prompt[n]["class_type"] == "PreviewImage"]
    degraded_info = output_images(result, degraded_nodes[0]) if degraded_nodes else []
    if not degraded_info:
        raise RuntimeError("the workflow previewed no degraded picture")
    degraded = load_png(server.output_file(degraded_info[0]))
    daps = settings["guidance_mode"] == DAPS
    ksampler = None if daps else find(prompt, "DPSKSampler")
    plot_nodes = [] if daps else [n for n in consumers(prompt, ksampler, 1) if prompt[n]["class_type"] == "PreviewImage"]
    report_nodes = [] if daps else consumers(prompt, ksampler, 2)
    report = ""
    if report_nodes:
        report = "".join(result["history"]["outputs"].get(report_nodes[0], {}).get("text", []))

    truth = truth_u8.astype(np.float32) / 255.0
    if restored.shape != truth.shape:
        raise RuntimeError(f"restored image is {restored.shape}, expected {truth.shape}")
    measurement, operator = recompute_measurement(prompt, truth)
    if daps:
        report = "DAPS: residual of the saved (8-bit) samples, computed here: " + ", ".join(
            f"residual = {v:.3f} x noise level" for v in saved_residuals(measurement, samples))
    residuals = [float(v) for v in re.findall(r"residual = ([^ ]+) x", report)]
    if not residuals or not all(math.isfinite(v) for v in residuals):
        raise RuntimeError(f"the report has no finite residual: {report!r}")
    shown = np.clip(to_hwc(operator.measurement_to_image(measurement.y)), 0, 1)
    if shown.shape != truth.shape and not (truth.shape[0] % shown.shape[0] or truth.shape[1] % shown.shape[1]):
        # Simulate Measurement previews a smaller measurement enlarged by pixel repetition.
        shown = shown.repeat(truth.shape[0] // shown.shape[0], 0).repeat(truth.shape[1] // shown.shape[1], 1)
    mismatch = float(np.abs(shown - degraded).max())
    if mismatch > 1.5 / 255:
        raise RuntimeError(f"the recomputed measurement differs from the workflow's by {mismatch:.4f}")
    base, base_text = baseline(task, measurement, operator, truth)

    stem = f"{task}_{name}"
    Image.fromarray((restored * 255).round().astype(np.uint8)).save(out_dir / f"{stem}_dps.png")
    Image.fromarray((mean * 255).round().astype(np.uint8)).save(out_dir / f"{stem}_mean.png")
    if args.keep_samples:
        np.save(out_dir / f"{stem}_samples.npy", samples)
    spread = samples.std(axis=0, ddof=1).mean(axis=-1) if len(samples) > 1 else np.zeros(truth.shape[:2])
    Image.fromarray((base * 255).round().astype(np.uint8)).save(out_dir / f"{stem}_baseline.png")
    Image.fromarray((degraded * 255).round().astype(np.uint8)).save(out_dir / f"{stem}_measurement.png")
    Image.fromarray(truth_u8).save(out_dir / f"{stem}_truth.png")
    if plot_nodes and output_images(result, plot_nodes[0]):
        shutil.copy(server.output_file(output_images(result, plot_nodes[0])[0]), out_dir / f"{stem}_residuals.png")

    row = {
        "task": task, "photo": name, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
        "baseline": base_text,
        "psnr_baseline": psnr(truth, base), "ssim_baseline": ssim(truth, base),
        "psnr_dps": psnr(truth, restored), "ssim_dps": ssim(truth, restored),
        "samples": len(samples),
        "psnr_single_mean": float(np.mean([psnr(truth, x) for x in samples])),
        "ssim_single_mean": float(np.mean([ssim(truth, x) for x in samples])),
        "psnr_posterior_mean": psnr(truth, mean), "ssim_posterior_mean": ssim(truth, mean),
        "spread": float(spread.mean()),
        "psnr_measurement": psnr(truth, degraded) if degraded.shape == truth.shape else None,
        "residual": float(np.mean(residuals)), "report": report.strip(),
        "settings": settings,
        "measurement": measurement.operator.name + ", " + measurement.noise.describe(),
        "images": {"measurement": degraded, "baseline": base, "dps": restored, "mean": mean, "spread": spread,
                   "truth": truth},
    }
    log(f"    done in {seconds:.0f} s ({cpu:.0f} s of CPU): PSNR {row['psnr_baseline']:.2f} dB ({base_text.split(' (')[0].split(',')[0]})"
        f" -> {row['psnr_single_mean']:.2f} dB (single samples, mean of {len(samples)}), "
        f"{row['psnr_posterior_mean']:.2f} dB (posterior mean); residual {row['residual']:.2f} x noise level")
    return row


# -- figures and reports -----------------------------------------------------------------------
def figure(task: str, rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 6, figsize=(14.4, 2.75 * len(rows) + 0.35), squeeze=False)
    base_name = TASKS[task][1]
    for r, row in enumerate(rows):
        images = row["images"]
        panels = [
            (images["measurement"], "measurement y"),
            (images["baseline"], f"{base_name}\n{row['psnr_baseline']:.2f} dB / SSIM {row['ssim_baseline']:.3f}"),
            (images["dps"], f"one sample ({row['settings']['guidance_mode']})\n{row['psnr_dps']:.2f} dB / SSIM "
                            f"{row['ssim_dps']:.3f}"),
            (images["mean"], f"mean of {row['samples']} samples\n{row['psnr_posterior_mean']:.2f} dB / SSIM "
                             f"{row['ssim_posterior_mean']:.3f}"),
            (images["spread"], f"std across samples\n(black 0, yellow {max(images['spread'].max(), 1e-6):.3f})"),
            (images["truth"], f"ground truth ({row['photo']})"),
        ]
        for ax, (image, title) in zip(axes[r], panels, strict=True):
            if image.ndim == 2:
                ax.imshow(image, cmap="inferno", vmin=0, vmax=max(image.max(), 1e-6), interpolation="nearest")
            else:
                ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.suptitle(rows[0]["measurement"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    lines = [
        "| task | photo | baseline | PSNR baseline / single samples / posterior mean | "
        "SSIM baseline / single / mean | residual | spread | time |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {TASK_TITLES[row['task']]} | {row['photo']} | {TASKS[row['task']][1]} | "
            f"{row['psnr_baseline']:.2f} / {row['psnr_single_mean']:.2f} / {row['psnr_posterior_mean']:.2f} dB | "
            f"{row['ssim_baseline']:.3f} / {row['ssim_single_mean']:.3f} / {row['ssim_posterior_mean']:.3f} | "
            f"{row['residual']:.2f} | {row['spread']:.3f} | {row['seconds']:.0f} s |"
        )
    return "\n".join(lines)


def machine() -> str:
    import os

    import torch

    return (f"{platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def write_docs(rows_by_task: dict, out_dir: pathlib.Path) -> None:
    """The figures for docs/images (PNG, 256 colours, well under 300 KB). The workflow thumbnails
    come from tests/integration/test_first_run.py (DPS_UPDATE_WORKFLOW_IMAGES), 400 x 400 as the
    template browser shows them."""
    images_dir = ROOT / "docs" / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for task in rows_by_task:
        target = images_dir / f"demo-{task}.png"
        with Image.open(out_dir / f"demo-{task}.png") as fig:
            small = fig.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            small.save(target, optimize=True)
        log(f"  wrote {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KB)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="side of the demo photographs in pixels (multiple of 16)")
    p.add_argument("--photos", default="astronaut,coffee", help="comma-separated held-out photographs")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    p.add_argument("--out", default=str(ROOT / "demo-output"), help="output folder")
    p.add_argument("--steps", type=int, default=None, help="override the workflows' sampling steps")
    p.add_argument("--sampler_name", default=None, help="override the workflows' sampler")
    p.add_argument("--scheduler", default=None, help="override the workflows' scheduler")
    p.add_argument("--guidance_strength", type=float, default=None, help="override the guidance strength")
    p.add_argument("--seed", type=int, default=None, help="override the DPS KSampler seed")
    p.add_argument("--guidance_mode", "--mode", dest="guidance_mode", default=None,
                   help="override the workflows' guidance mode (auto, dps, fast, pigdm, proximal, moment), or daps: "
                   "the DPS DAPS Sampler instead of DPS KSampler")
    p.add_argument("--samples", type=int, default=4,
                   help="posterior samples per run (one batch); the table gives single samples and their mean")
    p.add_argument("--keep-samples", action="store_true",
                   help="also save every sample of a run as <task>_<photo>_samples.npy (float, [N, H, W, 3])")
    p.add_argument("--update-docs", action="store_true", help="also write the figures to docs/images/demo-*.png")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # A terminated demo still stops its ComfyUI server (SystemExit unwinds the `with` block).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    photos = [p for p in args.photos.split(",") if p]
    tasks = [t for t in args.tasks.split(",") if t]
    for name in photos:
        if name not in PHOTOS:
            raise SystemExit(f"--photos: unknown photograph {name!r} (choose from {', '.join(PHOTOS)})")
    for task in tasks:
        if task not in TASKS:
            raise SystemExit(f"--tasks: unknown task {task!r} (choose from {', '.join(TASKS)})")
    if args.size % 16 or not 32 <= args.size <= 512:
        raise SystemExit("--size: expected a multiple of 16 between 32 and 512")
    if not 1 <= args.samples <= 64:
        raise SystemExit("--samples: expected 1 to 64 posterior samples per run")
    if not WEIGHTS.is_file():
        raise SystemExit(f"the demo prior's weights are missing: {WEIGHTS}")
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    log(f"ComfyUI-DPS demo: {len(tasks)} tasks x {len(photos)} held-out photographs at {args.size}x{args.size} "
        f"on {machine()}")
    log("starting a headless ComfyUI with the pack ...")
    rows, failures = [], []
    with ComfyServer() as server:
        log(f"  ComfyUI answers at {server.url} after {time.monotonic() - t0:.1f} s (log: {server.log_path})")
        pictures = {name: photo(name, args.size) for name in photos}
        object_info = server.object_info()
        for task in tasks:
            for name in photos:
                log(f"- {TASK_TITLES[task]} of {name} ({TASKS[task][0]})")
                try:
                    rows.append(run_one(server, object_info, task, name, pictures[name], out_dir, args))
                except (PromptFailed, RuntimeError, ValueError, OSError, KeyError, TimeoutError) as error:
                    failures.append(f"{task} / {name}: {error}")
                    log(f"    FAILED: {error}")
                    traceback.print_exc()
        if failures:
            log("server log (last lines):\n" + "\n".join(server.log().splitlines()[-30:]))
    total = time.monotonic() - t0

    by_task = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row)
    for task, task_rows in by_task.items():
        figure(task, task_rows, out_dir / f"demo-{task}.png")
    summary = table(rows)
    log("\n" + summary)
    log(f"\ntotal time {total:.0f} s (server start, {len(rows)} restorations, baselines) on {machine()}")
    header = (f"# ComfyUI-DPS demo results\n\n{len(rows)} restorations of held-out photographs at "
              f"{args.size}x{args.size}, {total:.0f} s in all on {machine()}.\n\n")
    details = "\n".join(
        f"- {TASK_TITLES[r['task']]} / {r['photo']}: {r['measurement']}; baseline: {r['baseline']}; DPS: "
        f"{r['settings']}; report: {r['report']}" for r in rows
    )
    (out_dir / "results.md").write_text(header + summary + "\n\n" + details + "\n"
                                        + ("\nFailures:\n" + "\n".join(failures) + "\n" if failures else ""))
    (out_dir / "results.json").write_text(json.dumps({
        "size": args.size, "seconds": round(total, 1), "machine": machine(),
        "results": [{k: v for k, v in r.items() if k != "images"} for r in rows],
        "failures": failures,
    }, indent=2))
    log(f"wrote {out_dir}/ (figures demo-<task>.png, results.md, results.json)")
    if args.update_docs and by_task:
        write_docs(by_task, out_dir)
    if failures:
        log("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
