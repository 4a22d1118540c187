"""Run every DPS benchmark and write bench/results.md and bench/results.json (`make bench`).

    .venv/bin/python bench/run_all.py            # the full run (CPU: about 10-15 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # small sizes, few repeats: checks the script
    .venv/bin/python bench/run_all.py --skip-steps   # sections 3 and 4 only, merged into results.json
    .venv/bin/python bench/run_all.py --report-only  # results.md again from results.json

1. Per-step cost of guidance against plain sampling and against its floor (forward + input-backward
   of the UNet and of the decoder), with TAESD and AutoencoderKL decoders, at three latent sizes;
   peak memory; what the way out of inference mode costs.
2. Growth of one guided step's time and peak memory with image size, 256x256 to 1024x1024.
3. Our DPS against deepinv's DPS: accuracy at equal denoiser calls on the exact Gaussian problems,
   deepinv at its best step weight over a log grid (distance of the sample mean to the exact
   posterior mean, variance ratio); seconds per step with the same real network (the SD-like UNet).
4. Steps our DPS needs to come within 10% of its 1000-step result on the same prior.
5. Section 1 again at two sizes with SD1.5's own UNet and VAE (the memory ratio depends on how large
   the weights are next to the activations).

Runs unchanged on CUDA when present (bigger repeat counts; memory from torch.cuda).
Operator timings are a separate benchmark (bench/bench_operators.py, bench/operators_results.md);
--operators runs it too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MemoryBaseline, device, load_average, machine, mib  # noqa: E402

TIME_TARGET = 1.15
#: The plan entries of sections 3 and 4.
DEEPINV_PLAN_KEYS = ("samples", "calls", "steps", "step_operators", "operators", "race")


def settings(args, cuda: bool) -> dict:
    if args.quick:
        return {"sizes": [16, 24], "repeats": {16: 2, 24: 2}, "growth": [32], "samples": 100, "full_size": None,
                "calls": 30, "steps": [5, 10, 30], "step_operators": ["blur"], "operators": ["blur"],
                "race": {"latents": [16], "steps": 3, "repeats": 1}}
    if cuda:
        return {"sizes": [32, 48, 64], "repeats": {32: 10, 48: 10, 64: 10}, "growth": [96, 128], "samples": 300,
                "full_size": {"latents": [64, 128], "repeats": 5},
                "calls": 100, "steps": [10, 20, 50, 100, 200, 1000],
                "step_operators": ["blur", "inpainting"], "operators": ["blur", "inpainting", "super-resolution"],
                "race": {"latents": [32, 64, 128], "steps": 6, "repeats": 5}}
    # 2 CPU cores: each extra repeat at 64x64 costs about a minute; 96 and 128 run once.
    # Full size: SD1.5's own UNet and VAE at 256x256 and 512x512, one timed repeat after the warm-up.
    return {"sizes": [32, 48, 64], "repeats": {32: 3, 48: 3, 64: 2}, "growth": [96, 128], "samples": 300,
            "full_size": {"latents": [32, 64], "repeats": 1},
            "calls": 100, "steps": [10, 20, 50, 100, 200, 1000],
            "step_operators": ["blur", "inpainting"], "operators": ["blur", "inpainting", "super-resolution"],
            "race": {"latents": [32, 64], "steps": 6, "repeats": 5}}


def log(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------------------------

def run_step_costs(plan: dict, dev, baseline: MemoryBaseline) -> dict:
    from bench.step_cost import StepBench, fit_exponent

    started = time.perf_counter()
    bench = StepBench(dev, baseline)
    log(f"models built in {time.perf_counter() - started:.1f} s: {bench.info}")
    workaround = bench.workaround_cost()  # first: the models still hold inference-mode weights
    probe = bench.probe_cost()
    probe["guided step difference"] = bench.guided_difference()
    log(f"auto-checkpointing probe: {probe}")
    log("autograd_ready: " + json.dumps({k: {"first_s": round(v["first_call_s"], 4),
                                             "later_s": round(v["later_call_s"], 5)} for k, v in workaround.items()}))

    sizes = {}
    for latent in plan["sizes"]:
        t0 = time.perf_counter()
        sizes[latent] = bench.measure(latent, repeats=plan["repeats"][latent], checkpointed=("dps",))
        sizes[latent]["load_average"] = load_average()
        log(f"latent {latent}: {time.perf_counter() - t0:.0f} s "
            + ", ".join(f"{k} {v:.3f}" for k, v in sizes[latent]["seconds"].items()))

    growth = {}
    kl = "AutoencoderKL"
    for latent in plan["sizes"]:
        result = sizes[latent]
        growth[latent] = _growth_row(result, kl)
    for latent in plan["growth"]:
        t0 = time.perf_counter()
        # One call per configuration: it gives both the time and the peak memory.
        result = bench.measure(latent, repeats=0, warmup=1, modes=("dps",), floors=False, vae_names=[kl],
                               checkpointed=("dps",))
        result["seconds"] = {name: values[0] if values else None for name, values in result["first_call"].items()}
        growth[latent] = _growth_row(result, kl)
        growth[latent]["single_run"] = True
        log(f"growth latent {latent}: {time.perf_counter() - t0:.0f} s "
            + ", ".join(f"{k} {v:.3f}" for k, v in result["seconds"].items()))
    latents = sorted(growth)
    pixels = [growth[n]["pixels"] for n in latents]
    fits = {}
    for key in ("dps_s", "dps_checkpointed_s", "plain_s", "dps_working", "dps_checkpointed_working"):
        values = [growth[n][key] for n in latents]
        if all(v is not None and v > 0 for v in values) and len(values) >= 2:
            fits[key] = fit_exponent(pixels, values)
    return {"models": bench.info, "workaround": workaround, "probe": probe, "sizes": sizes, "growth": growth,
            "fits": fits}


def run_full_size(plan: dict, dev) -> dict | None:
    """Table 1's measurements with SD1.5's own UNet (860M parameters) and AutoencoderKL (ch 128):
    the memory ratio depends on how large the weights are next to the activations, and the scaled
    models have 1/23 of SD1.5's weights but 1/5 of its activations."""
    if not plan.get("full_size"):
        return None
    from bench.step_cost import StepBench

    started = time.perf_counter()
    baseline = MemoryBaseline(dev)  # after table 1's models are gone
    bench = StepBench(dev, baseline, vae_names=("AutoencoderKL",), full_size=True)
    log(f"full-size models built in {time.perf_counter() - started:.1f} s: {bench.info}")
    sizes = {}
    for latent in plan["full_size"]["latents"]:
        sizes[latent] = bench.measure(latent, repeats=plan["full_size"]["repeats"], checkpointed=("dps",))
        sizes[latent]["load_average"] = load_average()
        log(f"full size, latent {latent}: {time.perf_counter() - started:.0f} s "
            + ", ".join(f"{k} {v:.3f}" for k, v in sizes[latent]["seconds"].items()))
    return {"models": bench.info, "sizes": sizes}


def _growth_row(result: dict, vae: str) -> dict:
    memory = result["memory"]

    def working(name):
        peak, before = memory[name]["peak"], memory[name]["in_use_before"]
        return None if peak is None or before is None else peak - before

    dps, ckpt = f"dps step, {vae}", f"dps step, {vae}, checkpointed"
    return {
        "latent": result["latent"], "pixels": result["pixels"],
        "plain_s": result["seconds"]["plain step"], "dps_s": result["seconds"][dps],
        "dps_checkpointed_s": result["seconds"][ckpt],
        "plain_peak": memory["plain step"]["peak"], "dps_peak": memory[dps]["peak"],
        "dps_checkpointed_peak": memory[ckpt]["peak"],
        "dps_working": working(dps), "dps_checkpointed_working": working(ckpt),
        "auto_checkpointing": result.get("auto_checkpointing", {}).get(dps),
    }


def run_deepinv(plan: dict, dev) -> dict:
    """The comparisons on the exact Gaussian problems on one torch thread (the tensors are 300 x 192
    values, where threads only add synchronisation and, on a shared machine, waiting for each
    other); the seconds-per-step race with the UNet on the default threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(plan.get("deepinv_threads", 1))
    try:
        result = _run_deepinv(plan)
    finally:
        torch.set_num_threads(threads)
    from bench import deepinv_compare

    t0 = time.perf_counter()
    race = plan["race"]
    result["race"] = deepinv_compare.step_time(dev, latents=race["latents"], steps=race["steps"],
                                               repeats=race["repeats"])
    result["race"]["load_average_at_end"] = load_average()
    log(f"deepinv step race: {time.perf_counter() - t0:.0f} s "
        + ", ".join(f"{n}: ours {r['seconds']['ours']:.3f} s, deepinv {r['seconds']['deepinv']:.3f} s, "
                    f"{r['ratio']:.2f}x" for n, r in result["race"]["sizes"].items()))
    return result


def _run_deepinv(plan: dict) -> dict:
    from bench import deepinv_compare

    rows = []
    for name in plan["operators"]:
        t0 = time.perf_counter()
        rows.append(deepinv_compare.compare(name, calls=plan["calls"], count=plan["samples"]))
        row = rows[-1]
        log(f"deepinv {name}: {time.perf_counter() - t0:.0f} s; distance / prior's: ours "
            f"{row['ours']['distance_over_prior']:.3f}, deepinv ({row['deepinv_guidance']}, weight "
            f"{row['deepinv_weight']:.3g}) {row['deepinv']['distance_over_prior']:.3f}")
    steps = []
    for name in plan["step_operators"]:
        t0 = time.perf_counter()
        steps.append(deepinv_compare.steps_to_converge(name, steps=tuple(plan["steps"]), count=plan["samples"]))
        log(f"steps {name}: {time.perf_counter() - t0:.0f} s {steps[-1]}")
    return {"comparison": rows, "steps": steps}


# ----------------------------------------------------------------------------------------------
# Report

def _s(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _r(value) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def auto_decision(result: dict, name: str) -> dict:
    """What the default ("auto") checkpointing chose for configuration `name` at this size:
    {"model", "decoder", "saved_bytes", "free_bytes"} (older results.json files: a bool)."""
    decision = result.get("auto_checkpointing", {}).get(name)
    if isinstance(decision, dict):
        return decision
    return {"model": bool(decision), "decoder": bool(decision), "saved_bytes": None, "free_bytes": None}


def _checkpointed(decision: dict) -> bool:
    return bool(decision["model"] or decision["decoder"])


def step_tables(steps: dict, vae_names) -> tuple[list[str], dict]:
    """Time and memory tables per decoder, and the ratios the targets judge: "dps_time" and
    "fast_time" hold (label, ratio, memory short) per row, memory short meaning the default
    checkpointed the step because it would not fit in free memory."""
    lines, verdicts = [], {"dps_time": [], "fast_time": [], "dps_checkpointed_time": []}
    for vae in vae_names:
        lines += [f"#### Decoder: {vae}", "",
                  "| latent (image) | plain step s | UNet fwd+in-bwd s | decoder fwd+in-bwd s | dps step s "
                  "| **dps / (UNet + decoder)** | dps, checkpointed s | checkpointed / (UNet + decoder) "
                  "| fast step s | **fast / (plain + decoder)** | default checkpointed? dps / fast |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for latent, result in steps["sizes"].items():
            sec = result["seconds"]
            plain, unet, dec = sec["plain step"], sec["UNet fwd+input-bwd"], sec[f"decoder fwd+input-bwd, {vae}"]
            dps, fast = sec[f"dps step, {vae}"], sec[f"fast step, {vae}"]
            ckpt = sec.get(f"dps step, {vae}, checkpointed")
            r_dps, r_fast, r_ckpt = _ratio(dps, unet + dec), _ratio(fast, plain + dec), _ratio(ckpt, unet + dec)
            auto_dps, auto_fast = auto_decision(result, f"dps step, {vae}"), auto_decision(result, f"fast step, {vae}")
            label = f"{latent}x{latent} {vae}"
            verdicts["dps_time"].append((label, r_dps, _checkpointed(auto_dps)))
            verdicts["fast_time"].append((label, r_fast, _checkpointed(auto_fast)))
            verdicts["dps_checkpointed_time"].append((label, r_ckpt, True))
            lines.append(f"| {latent}x{latent} ({8 * latent}x{8 * latent}) | {_s(plain)} | {_s(unet)} | {_s(dec)} "
                         f"| {_s(dps)} | **{_r(r_dps)}** | {_s(ckpt)} | {_r(r_ckpt)} | {_s(fast)} | **{_r(r_fast)}** "
                         f"| {_onoff(auto_dps)} / {_onoff(auto_fast)} |")
        lines += ["", "| latent (image) | plain peak MiB | dps peak MiB | dps / plain "
                  "| dps, checkpointed peak MiB | checkpointed / plain | fast peak MiB | fast / plain "
                  "| UNet fwd+in-bwd peak MiB | decoder fwd+in-bwd peak MiB | default's estimate of dps's saved "
                  "activations / free memory, MiB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for latent, result in steps["sizes"].items():
            mem = {k: v["peak"] for k, v in result["memory"].items()}
            plain, dps, fast = mem["plain step"], mem[f"dps step, {vae}"], mem[f"fast step, {vae}"]
            ckpt = mem.get(f"dps step, {vae}, checkpointed")
            auto_dps = auto_decision(result, f"dps step, {vae}")
            estimate = (f"{mib(auto_dps['saved_bytes'])} / {mib(auto_dps['free_bytes'])}"
                        if auto_dps["saved_bytes"] is not None else "n/a")
            lines.append(f"| {latent}x{latent} ({8 * latent}x{8 * latent}) | {mib(plain)} | {mib(dps)} "
                         f"| {_r(_ratio(dps, plain))} | {mib(ckpt)} | {_r(_ratio(ckpt, plain))} | {mib(fast)} "
                         f"| {_r(_ratio(fast, plain))} | {mib(mem['UNet fwd+input-bwd'])} "
                         f"| {mib(mem[f'decoder fwd+input-bwd, {vae}'])} | {estimate} |")
        lines.append("")
    return lines, verdicts


def _onoff(decision: dict) -> str:
    if not _checkpointed(decision):
        return "no"
    parts = [part for part in ("model", "decoder") if decision[part]]
    return "yes (" + " + ".join(parts) + ")"


def target_lines(name: str, rows, target: float = TIME_TARGET, busy: bool = False) -> list[str]:
    """The verdict on rows (label, ratio, memory short): the target holds where memory sufficed
    (the default did not checkpoint); where memory was short the step ran checkpointed and its
    ratio is listed, unjudged."""
    judged = [(label, ratio) for label, ratio, short in rows if not short and ratio is not None]
    short = [(label, ratio) for label, ratio, is_short in rows if is_short and ratio is not None]
    lines = []
    if judged:
        worst = max(ratio for _, ratio in judged)
        missed = [f"{label} {ratio:.2f}x" for label, ratio in judged if ratio > target]
        lines.append(f"- {name} (target <= {target:g}x where memory suffices): "
                     f"**{'MET' if worst <= target else 'MISSED'}**"
                     + (" in a busy run (not evidence: see the top)" if busy else "") + f", worst {worst:.2f}x"
                     + (f"; missed at {', '.join(missed)}" if missed else "")
                     + "; all " + ", ".join(f"{ratio:.2f}x" for _, ratio in judged))
    else:
        lines.append(f"- {name}: no size where memory sufficed")
    if short:
        lines.append("  - memory short, checkpointed by default (ran; not judged): "
                     + ", ".join(f"{label} {ratio:.2f}x" for label, ratio in short))
    return lines


def spread_line(name: str, rows) -> str:
    values = [ratio for _, ratio, _ in rows if ratio is not None]
    return f"- {name} (no target; what a step costs where memory is short): {spread(values)}"


def workaround_table(workaround: dict) -> list[str]:
    lines = ["| model | tensors replaced | weights MiB | first call s | later calls s | memory in use before / after MiB "
             "| peak during first call MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, w in workaround.items():
        lines.append(f"| {label} | {w['tensors_replaced']} | {mib(w['weight_bytes'])} | {w['first_call_s']:.3f} "
                     f"| {w['later_call_s']:.5f} | {mib(w['memory_in_use_before'])} / {mib(w['memory_in_use_after'])} "
                     f"| {mib(w['peak_during_first_call'])} |")
    return lines


def growth_table(steps: dict) -> list[str]:
    lines = ["| latent (image) | pixels | plain step s | dps step s | dps, checkpointed s | plain peak MiB "
             "| dps peak MiB | dps working MiB | checkpointed peak MiB | checkpointed working MiB | measured |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for latent, g in sorted(steps["growth"].items()):
        lines.append(f"| {latent}x{latent} ({8 * latent}x{8 * latent}) | {g['pixels']} | {_s(g['plain_s'])} "
                     f"| {_s(g['dps_s'])} | {_s(g['dps_checkpointed_s'])} | {mib(g['plain_peak'])} | {mib(g['dps_peak'])} "
                     f"| {mib(g['dps_working'])} | {mib(g['dps_checkpointed_peak'])} "
                     f"| {mib(g['dps_checkpointed_working'])} "
                     f"| {'one call' if g.get('single_run') else 'median (table 1)'} |")
    fits = steps["fits"]
    names = {"plain_s": "plain step time", "dps_s": "dps step time", "dps_checkpointed_s": "dps step time, checkpointed",
             "dps_working": "dps working memory", "dps_checkpointed_working": "dps working memory, checkpointed"}
    lines += ["", "Fitted exponent p of cost ~ pixels^p (least squares on log-log, all sizes above): "
              + "; ".join(f"{names[k]} **{v:.2f}**" for k, v in fits.items())]
    return lines


def _weight(value: float) -> str:
    return f"{value:.3g}"


def deepinv_tables(result: dict) -> tuple[list[str], list[str], list[str]]:
    """(accuracy lines, step-time lines, steps-to-converge lines) of sections 3 and 4."""
    lines = ["| operator | prior's distance | **ours: distance / prior's** | ours: RMS error, posterior std "
             "| ours: variance ratio | deepinv best: guidance, weight | **deepinv best: distance / prior's** "
             "| deepinv best: RMS error, posterior std | deepinv best: variance ratio "
             "| deepinv at its defaults: distance / prior's | Monte Carlo error / prior's, ours / deepinv |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    grids, verdicts = [], []
    for row in result["comparison"]:
        ours, theirs, prior = row["ours"], row["deepinv"], row["prior_distance"]
        lines.append(
            f"| {row['operator']} | {prior:.3f} | **{ours['distance_over_prior']:.3f}** "
            f"| {ours['rms_error_in_post_std']:.2f} | {ours['variance_ratio']:.2f} "
            f"| {row['deepinv_guidance']}, {_weight(row['deepinv_weight'])} | **{theirs['distance_over_prior']:.3f}** "
            f"| {theirs['rms_error_in_post_std']:.2f} | {theirs['variance_ratio']:.2f} "
            f"| {row['deepinv_default']['distance_over_prior']:.3f} "
            f"| {ours['monte_carlo_error'] / prior:.3f} / {theirs['monte_carlo_error'] / prior:.3f} |")
        difference = ours["distance"] - theirs["distance"]
        error = (ours["monte_carlo_error"] ** 2 + theirs["monte_carlo_error"] ** 2) ** 0.5
        closer = "closer than" if difference < 0 else "farther than"
        verdicts.append(f"{row['operator']}: ours {closer} deepinv's best by {abs(difference) / prior:.3f} of the "
                        f"prior's distance ({abs(difference) / error:.1f} Monte Carlo errors of the difference)")
        for guidance, search in row["searches"].items():
            edge = (" **at the edge of the weights tried**" if search["best_at_edge"] else
                    (f" (grid extended by {search['extended_by']} half decades to reach an interior best)"
                     if search["extended_by"] else ""))
            grids.append(f"- {row['operator']}, \"{guidance}\": best weight {_weight(search['best_weight'])}{edge}; "
                         "distance / prior's by weight: "
                         + ", ".join(f"{_weight(w)}: {r['distance_over_prior']:.3f}"
                                     for w, r in zip(search["weights"], search["results"], strict=True))
                         + f"; at the best weight, on the reporting seed: "
                         f"{row['deepinv_by_guidance'][guidance]['distance_over_prior']:.3f}")
    lines += ["", *[f"- {v}" for v in verdicts], "",
              "deepinv's weight search (selection seed; half-decade grid, extended at an edge, then a quarter "
              "decade either side of the best):", "", *grids]
    race_lines = []
    race = result.get("race")
    if race:
        race_lines = ["| latent | steps timed per side | ours s/step | deepinv s/step | **ours / deepinv** "
                      "| ours min-max s | deepinv min-max s |", "|---|---:|---:|---:|---:|---:|---:|"]
        for latent, r in race["sizes"].items():
            ours_s, theirs_s = r["samples"]["ours"], r["samples"]["deepinv"]
            race_lines.append(f"| {latent}x{latent} | {len(ours_s)} / {len(theirs_s)} | {r['seconds']['ours']:.3f} "
                              f"| {r['seconds']['deepinv']:.3f} | **{r['ratio']:.2f}x** "
                              f"| {min(ours_s):.3f}-{max(ours_s):.3f} | {min(theirs_s):.3f}-{max(theirs_s):.3f} |")
    steps, step_lines = result["steps"], []
    if steps:
        counts = list(steps[0]["distances"])
        reference = steps[0]["reference_steps"]
        step_lines += ["| operator | samples | prior's distance | " + " | ".join(f"{n} steps" for n in counts)
                       + f" | Monte Carlo error | first count within 10% of {reference} "
                       f"| from which on all within 10% |",
                       "|---|---:|---:|" + "---:|" * (len(counts) + 3)]
        for row in steps:
            step_lines.append(f"| {row['operator']} | {row['samples']} | {row['prior_distance']:.3f} | "
                              + " | ".join(f"{row['distances'][n]:.3f}" for n in counts)
                              + f" | {row['monte_carlo_errors'][reference]:.3f} | {row['first_within_tolerance']} "
                              f"| **{row['steps_within_tolerance']}** |")
    return lines, race_lines, step_lines


def full_size_section(result: dict | None, repeats: int = 0, busy: bool = False) -> list[str]:
    if result is None:
        return []
    lines, verdicts = step_tables(result, ["AutoencoderKL"])
    models = result["models"]
    return [
        "## 5. At SD1.5's real size", "",
        f"Table 1 again with SD1.5's own UNet layout and width (model_channels 320, attention at levels 0-2 and "
        f"the middle block: {models['unet_parameters'] / 1e6:.0f}M parameters) and SD's AutoencoderKL (ch 128: "
        f"{models['decoder_parameters']['AutoencoderKL'] / 1e6:.1f}M decoder parameters), float32, random "
        f"weights. Timed repeats after the warm-up call: {repeats}.", "",
        *lines,
        *target_lines("dps step / (UNet + decoder floor)", verdicts["dps_time"], busy=busy),
        *target_lines("fast step / (plain step + decoder floor)", verdicts["fast_time"], busy=busy),
        spread_line("dps, checkpointed / (UNet + decoder floor)", verdicts["dps_checkpointed_time"]),
        "",
    ]


def spread(values) -> str:
    values = [v for v in values if v is not None]
    return "not measured" if not values else f"{min(values):.2f}-{max(values):.2f}x"


def deepinv_section(deepinv: dict, plan: dict) -> list[str]:
    """Sections 3 (accuracy at equal calls, seconds per step) and 4 (steps to converge)."""
    dlines, race_lines, slines = deepinv_tables(deepinv)
    run = deepinv.get("run")  # set when the section was measured alone (run_all.py --skip-steps)
    how = "in an earlier run of all sections that took" if run and run.get("with_other_sections") else "alone in"
    when = (f" Measured {how} {run['elapsed_s'] / 60:.1f} min on {run['measured_on']} (1-minute load average "
            f"{run['load_average_at_start']:.1f} at start, {run['load_average_at_end']:.1f} at end)."
            if run else "")
    race = deepinv.get("race")
    lines = [
        "## 3. Against deepinv's DPS", "",
        "### Accuracy at equal denoiser calls, deepinv at its best weight", "",
        f"The exact Gaussian problems (testkit/deepinv_problem.py): prior N(mu, Sigma) over 3x8x8 images, exact "
        f"denoiser on both sides, Gaussian noise 0.05, {plan['samples']} samples in one batch, {plan['calls']} "
        "denoiser calls each. Ours: comfy.sample.sample (euler_ancestral, karras, EPS) through the pack's guidance "
        "patch at the default strength 1, untuned. deepinv 0.5.0: deepinv.sampling.DPS (DDPM solver, VP schedule; "
        "num_steps = calls + 1, it makes no call at t = 0) with a deepinv Denoiser wrapping the same exact "
        "denoiser and our operator as LinearPhysics, at the best weight of a log grid for each of its two "
        "guidance forms (\"norm\", the paper's and its default, and \"annealed\"): the weight is chosen on one "
        "seed by the distance to the exact posterior mean, and both sides are reported on fresh samples of "
        "another. Distance: |sample mean - exact posterior mean| over the prior mean's distance; RMS error: of "
        "the sample mean, per pixel, in posterior standard deviations; variance ratio: mean over pixels of the "
        "sample variance over the exact posterior variance (1 is right); Monte Carlo error: sqrt(summed "
        "per-pixel sample variances / samples), the distance's spread from sampling alone."
        + when, "",
        *dlines, "",
    ]
    if race:
        lines += [
            "### Seconds per step with the same real network", "",
            f"The SD-like UNet of section 1 ({race['models']['unet_parameters'] / 1e6:.1f}M parameters, EPS, "
            "float32) as the denoiser of both, no VAE (the operator, 4x bicubic super-resolution with noise 0.05, "
            "sees the 4-channel latent as an image), batch 1. Ours: comfy.sample.sample (euler) inside "
            "torch.inference_mode() with the pack's guidance in \"dps\" mode, gradient checkpointing off (deepinv "
            "has none). deepinv: deepinv.sampling.DPS at its defaults with a Denoiser calling the same BaseModel's "
            "apply_model. A step = the time from one call of the UNet to the next (a forward pre-hook): forward, "
            "backward to the input, the sampler's update and whatever else each side does per step. "
            f"{race['sizes'][next(iter(race['sizes']))]['steps_per_run']} calls per run, runs of the two "
            "interleaved after a warm-up run of each; medians over every step timed.", "",
            *race_lines, "",
        ]
    lines += [
        "## 4. Steps to converge on the same prior", "",
        "Our DPS (same set-up as section 3, 1 call per step) at each step count: distance of the sample mean to "
        "the exact posterior mean; the Monte Carlo error (sqrt of the summed per-pixel sample variances over the "
        "number of samples, at the largest count) says how much of a difference is sampling noise; the last "
        "columns give the fewest steps within 10% of the largest count's distance, and the fewest from which on "
        "every count is.", "",
        *slines,
        "",
    ]
    return lines


#: Load from other work, in cores, above which a run counts as busy. The 1-minute load average counts the
#: benchmark's own torch threads too: a run alone on the machine reads about torch_threads.
OTHER_LOAD_LIMIT = 0.5


def load_warning(info: dict, steps: dict, deepinv: dict) -> list[str]:
    """A warning when the machine ran other work during the run: a 1-minute load average more than
    OTHER_LOAD_LIMIT above the benchmark's own threads (torch_threads, at most the core count) at the
    start, the end, after any size measured, or after the deepinv race when this run measured it."""
    loads = {"start": info.get("load_average_at_start"), "end": info.get("load_average_at_end")}
    for latent, result in steps.get("sizes", {}).items():
        loads[f"table 1, {latent}x{latent}"] = result.get("load_average")
    for latent, result in ((steps.get("full_size") or {}).get("sizes") or {}).items():
        loads[f"SD1.5 size, {latent}x{latent}"] = result.get("load_average")
    if "run" not in deepinv:  # measured in this run, not kept from an earlier one
        loads["deepinv step race"] = (deepinv.get("race") or {}).get("load_average_at_end")
    loads = {k: v for k, v in loads.items() if v is not None}
    cores = info.get("logical_cores") or 1
    own = min(info.get("torch_threads") or cores, cores)
    if not loads or max(loads.values()) <= own + OTHER_LOAD_LIMIT:
        return []
    return ["- **The machine was shared during this run**: 1-minute load average "
            + ", ".join(f"{k} {v:.1f}" for k, v in loads.items())
            + f" on {cores} logical cores, where this benchmark's own {own} threads account for about {own}. Timed figures of a busy run are unreliable, ratios included (other "
            "processes take the cores at random moments, and torch's threads wait for each other when one is "
            "descheduled): seconds, step / floor ratios and the ours / deepinv step ratio of this run are not "
            "evidence either way. Peak memory and the accuracy figures (sections 3-4) do not depend on load."]


def report(info: dict, plan: dict, steps: dict, deepinv: dict, elapsed: float, cuda: bool,
           measured_on: str | None = None) -> str:
    step_lines, verdicts = step_tables(steps, list(steps["models"]["decoder_parameters"]))
    busy = bool(load_warning(info, steps, deepinv))
    probes = {name: p for name, p in steps["probe"].items() if name != "guided step difference"}
    repeats = ", ".join(f"{k}: {v}" for k, v in plan["repeats"].items())
    models = steps["models"]
    lines = [
        "# DPS benchmarks", "",
        f"Written by `bench/run_all.py` (`make bench`) on {measured_on or datetime.date.today().isoformat()} "
        f"in {elapsed / 60:.1f} min.",
        "",
        f"- machine: {info['cpu']}, {info['logical_cores']} logical cores, torch threads {info['torch_threads']}, "
        f"GPU {info['cuda'] or 'none'}; 1-minute load average at start {info['load_average_at_start']:.1f}"
        + (f", at end {info.get('load_average_at_end', float('nan')):.1f}" if info.get("load_average_at_end") else ""),
        *load_warning(info, steps, deepinv),
        f"- torch {info['torch']}, Python {info['python']}, ComfyUI {info.get('comfyui', 'unknown')}",
        f"- memory: {steps['memory_method']}",
        "- every ratio compares configurations measured in the same process, interleaved (one call of each in "
        f"turn), after a warm-up call, as the median of the repeats (latent size: repeats = {repeats}); the "
        "warm-up call of each configuration also gives its peak memory. Absolute seconds are "
        + ("CUDA-synchronised wall times." if cuda else "wall times on a CPU shared with other work: "
           "read the ratios, not the seconds."),
        "",
        "## Models (scaled down to fit 2 CPU cores)", "",
        f"- UNet: ComfyUI's UNetModel in SD1.5's layout (channel_mult [1, 2, 4, 4], 2 res blocks per level, "
        f"8 heads, context 768 with 77 tokens) at model_channels 64 (SD1.5: 320), attention at levels 1-2 and the "
        f"middle block (SD1.5 also at level 0): {models['unet_parameters'] / 1e6:.1f}M parameters, EPS, float32, "
        "weights created in inference mode as loader nodes create them.",
        f"- Decoders: TAESD (the real architecture, {models['decoder_parameters']['TAESD'] / 1e6:.2f}M "
        f"decoder parameters) and AutoencoderKL with SD's ddconfig at ch 32 (SD: 128; "
        f"{models['decoder_parameters']['AutoencoderKL'] / 1e6:.2f}M decoder parameters), both comfy.sd.VAE "
        "loaded in inference mode. Random weights: cost does not depend on their values.",
        "- Measurement: 4x bicubic super-resolution, Gaussian noise 0.05. Guidance strength 1, cfg 1 (batch 1).",
        "- A step: one Euler step through comfy.sample.sample_custom (CFGGuider, PREDICT_NOISE wrapper, "
        "apply_model) inside torch.inference_mode(), timed inside the sampler. Floor: UNet forward + backward "
        "to its input only, decoder forward + backward to its input only, each timed alone on ordinary "
        "tensors (no weight gradients).",
        "",
        "## 1. Per-step cost of guidance", "",
        "\"dps\": gradient through the UNet and the decoder; \"fast\": through the decoder only. "
        "\"checkpointed\": the UNet's and the decoder's blocks under gradient checkpointing (forced on), which "
        "is what a step costs where memory is short. By default (\"auto\", nodes/checkpointing.py) a step "
        "checkpoints only when the activations it keeps for backward (the decoder's, estimated from two tiny "
        "probe decodes, plus the UNet's, counted on its first call at each shape) would not fit in "
        "the free memory with a margin; the last column of the time tables says what it chose, the last "
        "column of the memory tables what it estimated. The time targets hold where memory sufficed.", "",
        *step_lines,
        "### Targets", "",
        *target_lines("dps step / (UNet fwd+input-bwd + decoder fwd+input-bwd)", verdicts["dps_time"], busy=busy),
        *target_lines("fast step / (plain step + decoder fwd+input-bwd)", verdicts["fast_time"], busy=busy),
        spread_line("dps, checkpointed / (UNet + decoder floor)", verdicts["dps_checkpointed_time"]),
        "- peak memory: reported, no target (a step keeps the UNet's and the decoder's activations for its "
        "backward; the default checkpoints only when they would not fit in free memory)",
        "",
        "### The way out of inference mode (`autograd_ready`)", "",
        "First call: every inference-mode weight is replaced by an ordinary tensor sharing its memory (no copy, "
        "so memory in use does not change). Later calls: a walk over the modules that finds nothing to replace "
        "(done on every guided step, since ComfyUI may re-create weights when it re-patches).",
        "", *workaround_table(steps["workaround"]), "",
        "The default's estimate of the decoder's saved activations comes from a probe, once per decoder: "
        "two tiny decodes with autograd (4x4 and 8x8 latents; the first-ever call at these shapes includes the "
        "CPU's one-off kernel set-up): "
        + "; ".join(f"{name}: {p['seconds']:.3f} s, {p['saved_bytes_per_latent_pixel'] / 1024:.0f} KiB per latent pixel"
                    for name, p in probes.items())
        + ". Checkpointing changes no gradient: largest difference with and without it (16x16 latent) of the "
        "decoder's input gradients "
        + "; ".join(f"{name}: {p['checkpointed_gradient_max_difference']:.1e}" for name, p in probes.items())
        + ", of a whole guided dps step (UNet and decoder checkpointed) "
        + "; ".join(f"{name}: {d:.1e}" for name, d in steps["probe"]["guided step difference"].items())
        + ".", "",
        "## 2. Growth with image size (dps step, AutoencoderKL decoder)", "",
        *growth_table(steps), "",
        "Working memory = peak minus memory in use just before the step (weights of the UNet and both VAEs). "
        + ("" if cuda else "Sizes beyond table 1 are measured from a single call each (2 CPU cores)."), "",
        *deepinv_section(deepinv, plan),
        *full_size_section(steps.get("full_size"), (plan.get("full_size") or {}).get("repeats", 0), busy=busy),
    ]
    for written_by_hand in ("daps_accuracy.md", "changes.md"):
        path = ROOT / "bench" / written_by_hand
        if path.exists():
            lines += [path.read_text()]
    return "\n".join(lines)


def _int_keys(mapping: dict) -> dict:
    """JSON made the int keys (latent sizes, step counts) strings: back to ints."""
    return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in mapping.items()}


def rewrite_report(out: pathlib.Path) -> int:
    """results.md again from results.json (after a change to the report's wording or columns); the
    date line keeps the day the figures were measured."""
    results = json.loads((out / "results.json").read_text(), object_hook=_int_keys)
    cuda = bool(results["machine"].get("cuda"))
    text = report(results["machine"], results["plan"], results["steps"], results["deepinv"], results["elapsed_s"],
                  cuda, measured_on=results.get("measured_on"))
    (out / "results.md").write_text(text)
    print(text)
    return 0


def kept_deepinv(previous: pathlib.Path) -> tuple[dict, dict]:
    """Sections 3 and 4 of the run that wrote `previous`, with when and how busy that run was, and
    that run's plan (read once)."""
    if not previous.exists():
        raise SystemExit(f"--skip-deepinv keeps sections 3 and 4 of {previous}, which does not exist")
    earlier = json.loads(previous.read_text(), object_hook=_int_keys)
    deepinv = earlier["deepinv"]
    deepinv.setdefault("run", {"measured_on": earlier["measured_on"], "elapsed_s": earlier["elapsed_s"],
                               "load_average_at_start": earlier["machine"]["load_average_at_start"],
                               "load_average_at_end": earlier["machine"]["load_average_at_end"],
                               "with_other_sections": True})
    return deepinv, earlier["plan"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (checks the script)")
    parser.add_argument("--out", default=str(ROOT / "bench"), help="folder for results.md and results.json")
    parser.add_argument("--skip-steps", action="store_true",
                        help="only sections 3 and 4 (against deepinv, steps to converge); they replace those of the "
                        "results.json in --out, whose other sections are kept")
    parser.add_argument("--skip-deepinv", action="store_true",
                        help="only sections 1, 2 and 5 (step cost, growth, SD1.5 size); sections 3 and 4 are kept "
                        "from the results.json in --out, with the date of the run that measured them")
    parser.add_argument("--operators", action="store_true", help="also run bench/bench_operators.py")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite results.md from the results.json in --out (no measuring)")
    args = parser.parse_args()
    if args.report_only:
        return rewrite_report(pathlib.Path(args.out))

    started = time.perf_counter()
    dev = device()
    cuda = dev.type == "cuda"
    info = machine()
    plan = settings(args, cuda)
    log(f"machine: {info}")
    baseline = MemoryBaseline(dev)

    steps = None
    if not args.skip_steps:
        steps = run_step_costs(plan, dev, baseline)
        steps["memory_method"] = baseline.method
        steps["full_size"] = run_full_size(plan, dev)
    out = pathlib.Path(args.out)
    if args.quick and args.out == parser.get_default("out"):
        out = ROOT / "bench" / "out"  # ignored by git: quick runs never replace the real results
    previous = out / "results.json"
    if args.skip_deepinv:
        deepinv, earlier_plan = kept_deepinv(previous)
    else:
        deepinv, earlier_plan = run_deepinv(plan, dev), None
    info["load_average_at_end"] = load_average()
    elapsed = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": info, "plan": {k: v for k, v in plan.items()}, "elapsed_s": elapsed, "steps": steps,
               "deepinv": deepinv, "measured_on": datetime.date.today().isoformat()}
    if earlier_plan is not None:
        results["plan"].update(earlier_plan)
        results["plan"].update({k: plan[k] for k in plan if k not in DEEPINV_PLAN_KEYS})
    if steps is None and previous.exists():
        # Only sections 3 and 4 were measured: they replace those of the last full run, which keeps the rest.
        results = json.loads(previous.read_text(), object_hook=_int_keys)
        deepinv["run"] = {"measured_on": datetime.date.today().isoformat(), "elapsed_s": elapsed,
                          "load_average_at_start": info["load_average_at_start"],
                          "load_average_at_end": info["load_average_at_end"]}
        results["deepinv"] = deepinv
        results["plan"].update({k: plan[k] for k in DEEPINV_PLAN_KEYS})
    previous.write_text(json.dumps(results, indent=1, default=str))
    if results["steps"] is not None:
        text = report(results["machine"], results["plan"], results["steps"], results["deepinv"],
                      results["elapsed_s"], cuda, measured_on=results.get("measured_on"))
    else:
        text = "\n".join(["# DPS benchmarks (sections 3 and 4 only)", "", *deepinv_section(deepinv, plan)])
    (out / "results.md").write_text(text)
    print("\n" + text)
    if args.operators:
        subprocess.run([sys.executable, str(ROOT / "bench" / "bench_operators.py")], check=True)
    log(f"done in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
