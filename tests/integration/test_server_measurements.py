"""Operator and measurement nodes in a real ComfyUI server: files from the input folder, sizes in the
history, and bad inputs that fail cleanly (naming the input) without harming the next prompt."""

import io
import itertools
import json

import numpy as np
import pytest
from PIL import Image

from testkit.comfy_server import PromptFailed
from graphs import node

pytestmark = pytest.mark.server

_seeds = itertools.count(100)


def png_bytes(width, height, seed=0):
    values = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def load_graph(file_name, factor=4):
    """Load Measurement (super-resolution) -> Measurement Info -> Preview as Text, and a Preview Operator of
    a test pattern saved exactly."""
    return {
        "sr": node("DPSSuperResolutionOperator", scale_factor=factor, kernel="bicubic"),
        "load": node("DPSLoadMeasurement", file=file_name, operator=["sr", 0], noise_model="gaussian",
                     noise_level=0.05, key=""),
        "info": node("DPSMeasurementInfo", measurement=["load", 0]),
        "show_info": node("PreviewAny", source=["info", 0]),
        "show_width": node("PreviewAny", source=["info", 1]),
        "show_height": node("PreviewAny", source=["info", 2]),
        "pattern": node("DPSTestPattern", width=64, height=48, seed=next(_seeds), batch_size=1),
        "preview": node("DPSPreviewOperator", image=["pattern", 0], operator=["sr", 0]),
        "save": node("DPSTestSaveTensor", filename_prefix="preview", image=["preview", 0]),
    }


def load_only_graph(file_name):
    """load_graph without the test-pattern branch: every output depends on the file. (ComfyUI runs the
    outputs that pass validation and drops the others, so a mixed graph would still 'succeed'.)"""
    graph = load_graph(file_name)
    for key in ("pattern", "preview", "save"):
        del graph[key]
    return graph


def good_graph():
    """A small graph that must run after a failure (a fresh seed so it is not served from the cache)."""
    return {
        "pattern": node("DPSTestPattern", width=32, height=32, seed=next(_seeds), batch_size=1),
        "blur": node("DPSGaussianBlurOperator", kernel_size=5, sigma=1.0),
        "simulate": node("DPSSimulateMeasurement", image=["pattern", 0], operator=["blur", 0],
                         noise_model="gaussian", noise_level=0.05, seed=1),
        "info": node("DPSMeasurementInfo", measurement=["simulate", 0]),
        "show": node("PreviewAny", source=["info", 0]),
        "save": node("DPSTestSaveTensor", filename_prefix="degraded", image=["simulate", 1]),
    }


def text_of(history, node_id):
    return history["outputs"][node_id]["text"][0]


def run_good(server):
    result = server.run_prompt(good_graph())
    assert result["history"]["status"]["status_str"] == "success"
    assert "32x32 pixels" in text_of(result["history"], "show")
    assert result["history"]["outputs"]["save"]["tensors"][0]["shape"] == [1, 32, 32, 3]


def execution_error(server, graph):
    """Run a graph that must fail while executing; returns the execution_error event's data."""
    with pytest.raises(PromptFailed) as failure:
        server.run_prompt(graph)
    errors = [event["data"] for event in failure.value.events if event.get("type") == "execution_error"]
    assert errors, failure.value
    return errors[0]


def test_uploaded_png_loads_and_reports_the_image_size_it_explains(server):
    server.upload_file("dps_low_16x12.png", png_bytes(16, 12))
    assert "dps_low_16x12.png" in json.dumps(server.get("/object_info/DPSLoadMeasurement"))
    result = server.run_prompt(load_graph("dps_low_16x12.png"))
    history = result["history"]
    assert history["status"]["status_str"] == "success"
    assert text_of(history, "show_width") == "64" and text_of(history, "show_height") == "48"
    info = text_of(history, "show_info")
    assert "4x super-resolution (bicubic)" in info and "[1, 3, 12, 16]" in info and "64x48 pixels" in info
    saved = history["outputs"]["save"]["tensors"][0]
    assert saved["shape"] == [1, 12, 16, 3] and saved["finite"]


def test_a_mask_of_the_wrong_size_fails_naming_mask(server):
    graph = {
        "pattern": node("DPSTestPattern", width=64, height=64, seed=1, batch_size=1),
        "mask": node("SolidMask", value=1.0, width=32, height=32),
        "inpaint": node("DPSInpaintingOperator", mask=["mask", 0]),
        "measure": node("DPSMeasurement", image=["pattern", 0], operator=["inpaint", 0], noise_model="gaussian",
                        noise_level=0.05),
        "info": node("DPSMeasurementInfo", measurement=["measure", 0]),
        "show": node("PreviewAny", source=["info", 0]),
    }
    error = execution_error(server, graph)
    assert error["node_type"] == "DPSMeasurement"
    assert error["exception_message"].startswith("mask: size 32x32 (width x height) does not match the image size 64x64")
    run_good(server)


def test_a_scale_factor_that_does_not_divide_the_image_fails_naming_image(server):
    graph = good_graph()
    graph["pattern"] = node("DPSTestPattern", width=64, height=66, seed=2, batch_size=1)
    graph["blur"] = node("DPSSuperResolutionOperator", scale_factor=4, kernel="average")
    error = execution_error(server, graph)
    assert error["node_type"] == "DPSSimulateMeasurement"
    assert error["exception_message"].startswith("image: height 66 is not divisible by the super-resolution factor 4")
    run_good(server)


def test_an_unsupported_scale_factor_is_refused_before_running(server):
    graph = load_graph("dps_low_16x12.png", factor=5)
    server.upload_file("dps_low_16x12.png", png_bytes(16, 12))
    with pytest.raises(PromptFailed) as failure:
        server.run_prompt(graph)
    assert "scale_factor: expected one of 2, 3, 4, 8, got 5" in str(failure.value)
    run_good(server)


def test_a_file_outside_the_input_folder_is_refused(server):
    (server.base / "outside.png").write_bytes(png_bytes(16, 16))  # it exists, next to the input folder
    with pytest.raises(PromptFailed) as failure:
        server.run_prompt(load_only_graph("../outside.png"))
    message = str(failure.value)
    assert "file: '../outside.png' is outside the input folder" in message, message
    assert "prompt_outputs_failed_validation" in message or "custom_validation_failed" in message
    run_good(server)


def test_a_pickled_npy_fails_naming_the_file(server):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    server.upload_file("dps_pickled.npy", buffer.getvalue())
    error = execution_error(server, load_graph("dps_pickled.npy"))
    assert error["node_type"] == "DPSLoadMeasurement"
    assert error["exception_message"].startswith("file 'dps_pickled.npy'")
    assert "pickle" in error["exception_message"]
    run_good(server)


def test_a_missing_file_is_refused_before_running(server):
    with pytest.raises(PromptFailed) as failure:
        server.run_prompt(load_only_graph("dps_never_uploaded.png"))
    assert "file: 'dps_never_uploaded.png' was not found in the input folder" in str(failure.value)
    run_good(server)


def test_an_edited_file_runs_again(server):
    server.upload_file("dps_edit.png", png_bytes(8, 8, seed=1))
    graph = load_graph("dps_edit.png", factor=2)
    first = server.run_prompt(graph)["history"]
    assert text_of(first, "show_width") == "16"
    server.upload_file("dps_edit.png", png_bytes(12, 8, seed=2))  # same name, new content and size
    second = server.run_prompt(graph)["history"]
    assert text_of(second, "show_width") == "24" and text_of(second, "show_height") == "16"
