"""The pack in a real ComfyUI server: it loads cleanly, describes itself, and runs a graph."""

import json

import pytest

from graphs import tiny_blur_graph

pytestmark = pytest.mark.server

PACK_NODES = {
    "DPSInpaintingOperator", "DPSSuperResolutionOperator", "DPSGaussianBlurOperator",
    "DPSMeasurement", "DPSSimulateMeasurement", "DPSLoadMeasurement",
    "DPSGuidance", "DPSKSampler", "DPSEmptyLatent", "DPSLoadDemoPrior",
}


def pack_nodes(info):
    return {name: spec for name, spec in info.items() if spec.get("python_module", "").endswith("ComfyUI-DPS")}


def test_pack_imports_without_error(server):
    log = server.log()
    # The pack's own path, as ComfyUI prints it: the clone's folder may be called ComfyUI-DPS too,
    # and then ComfyUI's own optional nodes (torchaudio missing) would mention the name.
    pack_path = "custom_nodes/ComfyUI-DPS"
    assert pack_path in log, log[-3000:]
    lines = [line for line in log.splitlines() if "IMPORT FAILED" in line or "Cannot import" in line]
    assert not [line for line in lines if pack_path in line], lines


def test_every_node_is_listed_and_documented(server):
    nodes = pack_nodes(server.object_info())
    assert PACK_NODES <= set(nodes), sorted(PACK_NODES - set(nodes))
    for name, spec in nodes.items():
        assert name.startswith("DPS"), name
        assert spec["category"].startswith("DPS/"), (name, spec["category"])
        assert spec["description"].strip(), f"{name} has no description"
        assert spec["display_name"] and spec["display_name"] != name, name
        for section in ("required", "optional"):
            for input_name, entry in spec["input"].get(section, {}).items():
                options = entry[1] if len(entry) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_a_graph_with_the_pack_runs_to_success(server):
    result = server.run_prompt(tiny_blur_graph(steps=3))
    kinds = [event["type"] for event in result["events"]]
    assert "execution_success" in kinds, kinds
    assert result["history"]["status"]["status_str"] == "success"
    saved = result["history"]["outputs"]["save"]["tensors"][0]
    assert saved["finite"] and saved["shape"] == [1, 4, 8, 8]
    report = json.dumps(result["history"]["outputs"])
    assert "tensors" in report
