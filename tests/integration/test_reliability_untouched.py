"""No node of the pack modifies its inputs, and a cached graph gives the same outputs again.

ComfyUI caches every node output and hands the same object to every consumer, so a node that
changed a tensor, a model or an operator it received would silently change other nodes' results
and later runs. Each object input of every DPS node is fed through a probe (test pack) that
digests the object when it passes; after all DPS nodes ran (a barrier orders it), a check node
digests the same object again.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from graphs import node
from reliability_graphs import SIZE, executed_nodes, run, saved

pytestmark = pytest.mark.server

PRIMITIVE_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
LOADED_FILE = "rel_untouched_16x16.png"


def object_inputs(server) -> set[tuple[str, str]]:
    """(node, input) for every input of every DPS node that receives an object (not a widget value)."""
    found = set()
    for name, spec in server.object_info().items():
        if not spec.get("python_module", "").endswith("ComfyUI-DPS"):
            continue
        for section in ("required", "optional"):
            for input_name, entry in spec["input"].get(section, {}).items():
                kind = entry[0]
                if isinstance(kind, list) or kind in PRIMITIVE_TYPES:
                    continue
                found.add((name, input_name))
    return found


def probed_graph(salt: int = 0) -> tuple[dict, set[tuple[str, str]]]:
    """Every DPS node in one small graph, every object input behind a probe; returns (graph, probed)."""
    graph = {
        "model_source": node("DPSTestTinyModel", model_type="eps", seed=0, dtype="float32"),
        # salt: a new cache key for everything downstream of the model, on the same model object
        "model": node("DPSTestPassthrough", value=["model_source", 0], salt=salt),
        "vae": node("DPSTestTinyVAE", kind="taesd", seed=0),
        "cond": node("DPSTestConditioning", seed=0),
        "picture": node("DPSTestPattern", width=SIZE, height=SIZE, seed=1, batch_size=1),
        "kernel_picture": node("DPSTestPattern", width=9, height=9, seed=2, batch_size=1),
        "mask": node("ImageToMask", image=["picture", 0], channel="red"),
        "blur": node("DPSGaussianBlurOperator", kernel_size=5, sigma=1.0),
        "sr": node("DPSSuperResolutionOperator", scale_factor=2, kernel="bicubic"),
        "inpaint": node("DPSInpaintingOperator", mask=["mask", 0]),
        "motion": node("DPSMotionBlurOperator", kernel_size=9, intensity=0.5, seed=0,
                       kernel_image=["kernel_picture", 0]),
        "compose": node("DPSComposeOperators", first=["motion", 0], second=["inpaint", 0]),
        "simulate": node("DPSSimulateMeasurement", image=["picture", 0], operator=["compose", 0],
                         noise_model="gaussian", noise_level=0.05, seed=3),
        "measure": node("DPSMeasurement", image=["picture", 0], operator=["blur", 0], noise_model="gaussian",
                        noise_level=0.05),
        "load": node("DPSLoadMeasurement", file=LOADED_FILE, operator=["sr", 0], noise_model="gaussian",
                     noise_level=0.05, key=""),
        "info": node("DPSMeasurementInfo", measurement=["simulate", 0]),
        "preview": node("DPSPreviewOperator", image=["picture", 0], operator=["compose", 0]),
        "latent": node("DPSEmptyLatent", measurement=["simulate", 0], batch_size=1, vae=["vae", 0]),
        "dps": node("DPSKSampler", model=["model", 0], seed=7, steps=2, cfg=1.0, sampler_name="euler",
                    scheduler="normal", positive=["cond", 0], negative=["cond", 0], latent_image=["latent", 0],
                    denoise=1.0, measurement=["simulate", 0], guidance_strength=1.0, guidance_mode="dps",
                    vae=["vae", 0]),
        "guided": node("DPSGuidance", model=["model", 0], measurement=["measure", 0], guidance_strength=1.0,
                       guidance_mode="fast", vae=["vae", 0]),
        "latent_for_guided": node("DPSEmptyLatent", measurement=["load", 0], batch_size=1, vae=["vae", 0]),
        "ksampler": node("KSampler", model=["guided", 0], seed=7, steps=2, cfg=1.0, sampler_name="euler",
                         scheduler="normal", positive=["cond", 0], negative=["cond", 0],
                         latent_image=["latent_for_guided", 0], denoise=1.0),
        "save_dps": node("DPSTestSaveTensor", filename_prefix=f"rel_untouched_dps_{salt}", latent=["dps", 0]),
        "save_guided": node("DPSTestSaveTensor", filename_prefix=f"rel_untouched_guided_{salt}",
                            latent=["ksampler", 0]),
        "save_preview": node("DPSTestSaveTensor", filename_prefix="rel_untouched_preview", image=["preview", 0]),
        "save_plot": node("DPSTestSaveTensor", filename_prefix=f"rel_untouched_plot_{salt}", image=["dps", 1]),
        "show_info": node("PreviewAny", source=["info", 0]),
        # DAPS through SamplerCustomAdvanced: the sampler node only builds the SAMPLER; sampling uses its inputs.
        "daps": node("DPSDAPSSampler", measurement=["simulate", 0], vae=["vae", 0], langevin_steps=2, step_size=0.5,
                     x0_estimate="denoiser (1 call)"),
        "daps_guider": node("BasicGuider", model=["model", 0], conditioning=["cond", 0]),
        "daps_sigmas": node("BasicScheduler", model=["model", 0], scheduler="normal", steps=2, denoise=1.0),
        "daps_noise": node("RandomNoise", noise_seed=3),
        "daps_run": node("SamplerCustomAdvanced", noise=["daps_noise", 0], guider=["daps_guider", 0],
                         sampler=["daps", 0], sigmas=["daps_sigmas", 0], latent_image=["latent", 0]),
        # The result nodes: statistics of a batch, measured pixels kept in an inpainting measurement.
        "batch": node("DPSTestPattern", width=SIZE, height=SIZE, seed=4, batch_size=3),
        "stats": node("DPSPosteriorStatistics", samples=["batch", 0], heat_scale=0.0, measurement=["measure", 0]),
        "measure_inpaint": node("DPSMeasurement", image=["picture", 0], operator=["inpaint", 0],
                                noise_model="gaussian", noise_level=0.05),
        "keep": node("DPSKeepMeasuredPixels", image=["batch", 0], measurement=["measure_inpaint", 0], feather=2),
    }
    # The barrier: exists only once every DPS node has run.
    finals = [["dps", 0], ["ksampler", 0], ["preview", 0], ["info", 0], ["latent_for_guided", 0], ["daps_run", 0],
              ["stats", 0], ["keep", 0]]
    barrier = finals[0]
    for index, final in enumerate(finals[1:]):
        graph[f"barrier_{index}"] = node("DPSTestJoin", first=barrier, second=final)
        barrier = [f"barrier_{index}", 0]

    probed = set()
    for node_id in list(graph):
        spec = graph[node_id]
        if not spec["class_type"].startswith("DPS") or spec["class_type"].startswith("DPSTest"):
            continue
        for input_name, value in list(spec["inputs"].items()):
            if not isinstance(value, list):
                continue
            probe = f"probe_{node_id}_{input_name}"
            graph[probe] = node("DPSTestProbe", value=value)
            spec["inputs"][input_name] = [probe, 0]
            graph[f"check_{node_id}_{input_name}"] = node(
                "DPSTestCheckUnchanged", value=[probe, 0], recorded=[probe, 1], after=barrier,
                label=f"{spec['class_type']}.{input_name}")
            probed.add((spec["class_type"], input_name))
    return graph, probed


def checks(history) -> list[dict]:
    return [entry for output in history["outputs"].values() for entry in output.get("unchanged", [])]


def png_bytes(width, height):
    values = np.random.default_rng(9).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def test_no_node_modifies_its_inputs_and_cached_reruns_are_identical(server):
    server.upload_file(LOADED_FILE, png_bytes(16, 16))
    graph, probed = probed_graph(salt=0)
    missing = object_inputs(server) - probed
    assert not missing, f"DPS node inputs not covered by this test: {sorted(missing)}"

    first = run(server, graph)
    results = checks(first["history"])
    assert len(results) == sum(1 for key in graph if key.startswith("check_")), results
    changed = [entry["label"] for entry in results if not entry["equal"]]
    assert not changed, f"inputs modified in place: {changed}"
    outputs = {key: saved(first["history"], key) for key in ("save_dps", "save_guided", "save_preview", "save_plot")}
    assert all(record["finite"] for record in outputs.values()), outputs

    # The same graph again: served from ComfyUI's cache, the same outputs.
    again = run(server, graph)
    assert "dps" not in executed_nodes(again["events"])
    assert {key: saved(again["history"], key) for key in outputs} == outputs

    # A new cache key upstream of both samplers: they run again on the same (cached) model object,
    # and give bit-identical results, and still modify nothing.
    salted_graph, _ = probed_graph(salt=1)
    salted = run(server, salted_graph)
    assert {"dps", "guided", "ksampler"} <= executed_nodes(salted["events"])
    changed = [entry["label"] for entry in checks(salted["history"]) if not entry["equal"]]
    assert not changed, f"inputs modified in place on the second run: {changed}"
    for key in ("save_dps", "save_guided", "save_plot"):
        assert saved(salted["history"], key)["digest"] == outputs[key]["digest"], key
