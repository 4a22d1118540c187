"""The shipped demo-prior workflows in a real ComfyUI: they convert, pass the widget checks against the
live /object_info, and run to success (with few steps, at 64x64); and DPS with the demo prior
explains a measurement far better than plain sampling from the same prior (same seed)."""

import json
import math
import pathlib
import re

import numpy as np
import pytest
from safetensors.torch import load_file

from demo import find, load_png, photo, recompute_measurement
from graphs import node
from testkit.workflow_api import check_workflow, ui_to_api, widget_value_count

pytestmark = pytest.mark.server

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOW_FILES = sorted((ROOT / "workflows").glob("demo-prior-*.json"))
TASKS = ["super-resolution", "inpainting-random", "inpainting-box", "deblur"]
SMALL = 64  # test image side: a multiple of the demo prior's 16


@pytest.fixture(scope="module")
def object_info(server):
    return server.object_info()


@pytest.fixture(scope="module")
def small_photo():
    """The held-out astronaut at 64x64, as DPS Example Image gives it (nothing is uploaded: the
    workflows start from the photo bundled with the pack)."""
    return photo("astronaut", SMALL).astype(np.float32) / 255.0


def load(task):
    return json.loads((ROOT / "workflows" / f"demo-prior-{task}.json").read_text())


def test_the_four_demo_workflows_ship_with_thumbnails():
    assert {p.stem for p in WORKFLOW_FILES} == {f"demo-prior-{t}" for t in TASKS}
    for path in WORKFLOW_FILES:
        thumbnails = [path.with_suffix(ext) for ext in (".jpg", ".png") if path.with_suffix(ext).exists()]
        assert thumbnails, f"{path.name} has no thumbnail"


def test_the_workflow_files_are_what_their_generator_writes():
    import demo_workflows

    stale = [t for t in demo_workflows.TASKS if demo_workflows.path_of(t).read_text() != demo_workflows.render(t)]
    assert not stale, f"run scripts/demo_workflows.py to rewrite: {stale}"


@pytest.mark.parametrize("task", TASKS)
def test_demo_workflow_is_valid_for_the_live_server(task, object_info):
    workflow = load(task)
    assert workflow["version"] == 0.4 and workflow["groups"] == [] and isinstance(workflow["extra"], dict)
    assert check_workflow(workflow, object_info) == []
    types = [n["type"] for n in workflow["nodes"]]
    for needed in ("DPSExampleImage", "DPSSimulateMeasurement", "DPSEmptyLatent", "DPSLoadDemoPrior", "DPSKSampler",
                   "VAEDecode", "SaveImage", "PreviewImage", "Note"):
        assert needed in types, f"{task}: no {needed}"
    note = next(n for n in workflow["nodes"] if n["type"] == "Note")
    assert "demo prior" in note["widgets_values"][0] and "guidance_strength" in note["widgets_values"][0]
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert link_id in nodes[origin]["outputs"][origin_slot]["links"]
        assert nodes[origin]["outputs"][origin_slot]["type"] == kind
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
    for item in workflow["nodes"]:
        if item["type"] != "Note":
            # Otherwise the frontend shifts the values, or a seed's control widget falls back to "randomize".
            expected = widget_value_count(object_info[item["type"]])
            assert len(item.get("widgets_values", [])) == expected, (item["type"], item.get("widgets_values"))
            if "seed" in str(object_info[item["type"]]["input"]):
                assert "randomize" not in item["widgets_values"], item
    prompt = ui_to_api(workflow, object_info)
    assert prompt[find(prompt, "DPSExampleImage")]["inputs"] == {"photo": "astronaut", "size": 128}
    assert "Note" not in {n["class_type"] for n in prompt.values()}


@pytest.mark.parametrize("task", TASKS)
def test_demo_workflow_runs_to_success(task, server, object_info, small_photo):
    prompt = ui_to_api(load(task), object_info)
    prompt[find(prompt, "DPSExampleImage")]["inputs"]["size"] = SMALL
    sampler = prompt[find(prompt, "DPSKSampler")]["inputs"]
    sampler["steps"] = 3
    save = prompt[find(prompt, "SaveImage")]
    save["inputs"]["filename_prefix"] = f"test_demo/{task}"
    result = server.run_prompt(prompt)
    history = result["history"]
    assert history["status"]["status_str"] == "success"
    assert sum(e["type"] == "progress" for e in result["events"]) >= 3
    saved = history["outputs"][find(prompt, "SaveImage")]["images"]
    assert len(saved) == 1
    restored = load_png(server.output_file(saved[0]))
    assert restored.shape == (SMALL, SMALL, 3) and np.isfinite(restored).all()
    report_node = next(i for i, n in prompt.items() if n["class_type"] == "PreviewAny")
    report = "".join(history["outputs"][report_node]["text"])
    residuals = [float(v) for v in re.findall(r"residual = ([^ ]+) x", report)]
    assert residuals and all(math.isfinite(v) for v in residuals), report


def quality_graph(strength, steps, seed=0):
    """Demo prior, half the pixels of the held-out photo missing, noise 0.02, DPS KSampler."""
    return {
        "image": node("DPSExampleImage", photo="astronaut", size=SMALL),
        "operator": node("DPSRandomInpaintingOperator", missing_fraction=0.5, seed=0),
        "simulate": node("DPSSimulateMeasurement", image=["image", 0], operator=["operator", 0],
                         noise_model="gaussian", noise_level=0.02, seed=0),
        "prior": node("DPSLoadDemoPrior"),
        "latent": node("DPSEmptyLatent", measurement=["simulate", 0], batch_size=1),
        "sampler": node("DPSKSampler", model=["prior", 0], seed=seed, steps=steps, cfg=1.0,
                        sampler_name="euler_ancestral", scheduler="normal", positive=["prior", 2],
                        negative=["prior", 2], latent_image=["latent", 0], denoise=1.0,
                        measurement=["simulate", 0], guidance_strength=strength, guidance_mode="dps"),
        "save": node("DPSTestSaveTensor", filename_prefix=f"demo_quality_{strength:g}", latent=["sampler", 0]),
    }


def test_dps_with_the_demo_prior_explains_the_measurement(server, small_photo):
    # The node's default step count: at 24 steps the fine-tuned prior's seed-0 sample fitted y only to
    # 3.1x the noise (seed 1: 1.25x; the previous prior 1.32x), one trajectory's luck at half the steps.
    steps = 50
    residuals = {}
    for strength in (1.0, 0.0):
        graph = quality_graph(strength, steps)
        result = server.run_prompt(graph)
        progress = [e["data"] for e in result["events"] if e["type"] == "progress"]
        assert [p["value"] for p in progress][-1] == steps and progress[-1]["max"] == steps
        saved = result["history"]["outputs"]["save"]["tensors"][0]
        assert saved["finite"], saved
        latent = load_file(str(server.base / "output" / saved["filename"]))["tensor"]
        measurement, _ = recompute_measurement(graph, small_photo)
        image = ((latent.float() + 1) / 2).clamp(0, 1)
        residuals[strength] = float(measurement.normalized_residual(image)[0])
    print(f"normalised residual: DPS {residuals[1.0]:.2f}, plain sampling {residuals[0.0]:.2f}")
    assert residuals[1.0] * 3 < residuals[0.0], residuals
    assert residuals[1.0] < 2.5, residuals
    assert all(math.isfinite(v) for v in residuals.values()), residuals
