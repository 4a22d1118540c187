"""Bad and unusual input through /prompt of a real ComfyUI server.

Bad input ends the prompt with an execution_error (or a 400 validation error) whose message names
the input and says what was expected; the server stays up and the next good prompt runs. Unusual
but valid input (grey and RGBA pictures, extreme strengths, half-precision models, non-ASCII file
names) works and gives finite results.
"""

from __future__ import annotations

import io
import itertools
import math
import os

import numpy as np
import pytest
from PIL import Image

from graphs import node
from reliability_graphs import SIZE, failure, guided_graph, plain_graph, run, saved

pytestmark = pytest.mark.server

_seeds = itertools.count(5000)


def run_good(server):
    """A fresh DPS prompt (new seed, so nothing comes from the cache) must run after a failure."""
    history = run(server, guided_graph(seed=next(_seeds), steps=1))["history"]
    record = saved(history)
    assert record["finite"] and record["shape"] == [1, 4, SIZE // 8, SIZE // 8]


def png_bytes(width, height, seed=0, channels=3):
    values = np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values[..., 0] if channels == 1 else values).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- graph edits


def with_latent(graph, width, height, batch=1):
    graph["latent"] = node("EmptyLatentImage", width=width, height=height, batch_size=batch)
    return graph


def with_pattern(graph, size=None, batch=1):
    graph["picture"]["inputs"].update(batch_size=batch, **({"width": size, "height": size} if size else {}))
    return graph


def guided_by_patch(graph):
    """DPS Guidance on the model + ComfyUI's KSampler instead of DPS KSampler."""
    inputs = graph["sampler"]["inputs"]
    graph["guided"] = node("DPSGuidance", model=["model", 0], measurement=inputs["measurement"],
                           guidance_strength=1.0, guidance_mode="dps", vae=["vae", 0])
    graph["sampler"] = node("KSampler", model=["guided", 0], seed=inputs["seed"], steps=inputs["steps"], cfg=1.0,
                            sampler_name="euler", scheduler="normal", positive=["cond", 0], negative=["cond", 0],
                            latent_image=inputs["latent_image"], denoise=1.0)
    return graph


def observed(graph, image_source, operator=("blur", 0)):
    """Use an observed picture (DPS Measurement) instead of a simulated one."""
    graph["measure"] = node("DPSMeasurement", image=list(image_source), operator=list(operator),
                            noise_model="gaussian", noise_level=0.05)
    graph["latent"]["inputs"]["measurement"] = ["measure", 0]
    graph["sampler"]["inputs"]["measurement"] = ["measure", 0]
    return graph


def poisoned(graph, target, value):
    """Feed `target`'s image input a copy of the test pattern with one NaN/Inf pixel."""
    graph["poison"] = node("DPSTestPoison", image=["picture", 0], value=value)
    graph[target]["inputs"]["image"] = ["poison", 0]
    return graph


def preview_of(image_source, operator):
    """Preview Operator of the test pattern. The model nodes ride along unconnected (never run): ComfyUI's
    cache keeps only the nodes of the latest prompt, so this spares rebuilding the model afterwards."""
    models = {key: value for key, value in g().items() if key in ("model", "vae", "cond")}
    return {
        **models,
        "picture": node("DPSTestPattern", width=SIZE, height=SIZE, seed=1, batch_size=1),
        "operator": operator,
        "preview": node("DPSPreviewOperator", image=list(image_source), operator=["operator", 0]),
        "save": node("DPSTestSaveTensor", filename_prefix="rel_preview", image=["preview", 0]),
    }


def loaded(graph, file_name, factor=2):
    """Measurement from Load Measurement (super-resolution x factor) instead of the simulated one."""
    for key in ("picture", "blur", "simulate"):
        del graph[key]
    graph["sr"] = node("DPSSuperResolutionOperator", scale_factor=factor, kernel="bicubic")
    graph["load"] = node("DPSLoadMeasurement", file=file_name, operator=["sr", 0], noise_model="gaussian",
                         noise_level=0.05, key="")
    graph["latent"]["inputs"]["measurement"] = ["load", 0]
    graph["sampler"]["inputs"]["measurement"] = ["load", 0]
    return graph


def with_noise_level(graph, value):
    graph["simulate"]["inputs"]["noise_level"] = value
    return graph


def g(**kwargs):
    return guided_graph(seed=next(_seeds), **kwargs)


# (id, graph maker, failing node type, start of the message)
EXECUTION_ERRORS = [
    ("latent larger than the measurement", lambda: with_latent(g(), 2 * SIZE, 2 * SIZE), "DPSKSampler",
     f"latent_image: a 8x8 latent renders to {2 * SIZE}x{2 * SIZE} pixels, but the measurement explains "
     f"{SIZE}x{SIZE} images: use a 4x4 latent"),
    ("latent smaller than the measurement, through DPS Guidance + KSampler",
     lambda: guided_by_patch(with_latent(g(), SIZE // 2, SIZE // 2)), "KSampler",
     f"latent_image: a 2x2 latent renders to {SIZE // 2}x{SIZE // 2} pixels, but the measurement explains "
     f"{SIZE}x{SIZE} images"),
    ("measurement size not a multiple of the VAE scale, DPS Empty Latent",
     lambda: with_pattern(g(), size=36), "DPSEmptyLatent",
     "measurement: its image size 36x36 is not a multiple of the VAE's scale 8"),
    ("measurement size not a multiple of the VAE scale, latent by hand",
     lambda: with_latent(with_pattern(g(), size=36), 32, 32), "DPSKSampler",
     "measurement: its image size 36x36 is not a multiple of the VAE's scale 8"),
    ("measurement batch 2, latent batch 3", lambda: with_latent(with_pattern(g(), batch=2), SIZE, SIZE, batch=3),
     "DPSKSampler", "latent_image: batch 3 does not match the measurement's batch 2"),
    ("measurement batch 2, latent batch 3, through DPS Guidance + KSampler",
     lambda: guided_by_patch(with_latent(with_pattern(g(), batch=2), SIZE, SIZE, batch=3)), "KSampler",
     "latent_image: batch 3 does not match the measurement's batch 2"),
    ("mask of the wrong size, Simulate Measurement",
     lambda: {**g(), "mask": node("SolidMask", value=1.0, width=SIZE // 2, height=SIZE),
              "blur": node("DPSInpaintingOperator", mask=["mask", 0])},
     "DPSSimulateMeasurement", f"mask: size {SIZE // 2}x{SIZE} (width x height) does not match the image size {SIZE}x{SIZE}"),
    ("super-resolution factor that does not divide the size, Preview Operator",
     lambda: {**preview_of(["picture", 0], node("DPSSuperResolutionOperator", scale_factor=3, kernel="average"))},
     "DPSPreviewOperator", f"image: height {SIZE} is not divisible by the super-resolution factor 3"),
    ("NaN pixel, Simulate Measurement", lambda: poisoned(g(), "simulate", "nan"), "DPSSimulateMeasurement",
     "image: contains NaN or infinite pixel values; expected finite values in [0, 1]"),
    ("+Inf pixel, Measurement", lambda: poisoned(observed(g(), ["picture", 0]), "measure", "inf"), "DPSMeasurement",
     "image: contains NaN or infinite pixel values"),
    ("-Inf pixel, Preview Operator",
     lambda: poisoned(preview_of(["picture", 0], node("DPSColorizationOperator")), "preview", "-inf"),
     "DPSPreviewOperator", "image: contains NaN or infinite pixel values"),
    ("NaN pixel in a motion-blur kernel picture",
     lambda: {**g(), "kernel": node("DPSTestPattern", width=9, height=9, seed=2, batch_size=1),
              "poison": node("DPSTestPoison", image=["kernel", 0], value="nan"),
              "blur": node("DPSMotionBlurOperator", kernel_size=9, intensity=0.5, seed=0, kernel_image=["poison", 0])},
     "DPSMotionBlurOperator", "kernel_image: contains NaN or infinite pixel values"),
    ("guidance strength NaN (passes ComfyUI's min/max check)", lambda: g(strength=math.nan), "DPSKSampler",
     "guidance_strength: expected a finite number >= 0, got nan"),
    ("noise level NaN", lambda: with_noise_level(g(), math.nan), "DPSSimulateMeasurement", "noise_level: for gaussian noise it is a standard deviation and must be >= 0, got nan"),
]


@pytest.mark.parametrize("make, node_type, message", [case[1:] for case in EXECUTION_ERRORS],
                         ids=[case[0] for case in EXECUTION_ERRORS])
def test_bad_input_fails_naming_the_input_and_the_server_runs_on(server, make, node_type, message):
    kind, error = failure(server, make())
    assert kind == "execution", error
    assert error["node_type"] == node_type, error
    assert error["exception_type"] == "ValueError", error
    assert error["exception_message"].startswith(message), error["exception_message"]
    run_good(server)


@pytest.mark.parametrize("strength", [2e6, -1.0])
def test_a_strength_out_of_range_is_refused_before_running(server, strength):
    kind, error = failure(server, g(strength=strength))
    assert kind == "validation", error
    (problem,) = error["node_errors"]["sampler"]["errors"]
    assert problem["extra_info"]["input_name"] == "guidance_strength", problem
    assert problem["type"] in ("value_bigger_than_max", "value_smaller_than_min"), problem
    run_good(server)


# ------------------------------------------------------------------------------- measurement files

NAN_ARRAY = np.full((3, SIZE // 2, SIZE // 2), np.nan, dtype=np.float32)

BAD_FILES = [
    ("rel_empty.png", b"", "file 'rel_empty.png' is empty"),
    ("rel_empty.npy", b"", "file 'rel_empty.npy' is empty"),
    ("rel_truncated.png", png_bytes(16, 16)[:60], "file 'rel_truncated.png' is not a readable image"),
    ("rel_junk.safetensors", bytes(range(256)) * 2, "file 'rel_junk.safetensors' is not a safetensors file"),
    ("rel_huge_header.safetensors", (2**40).to_bytes(8, "little") + b"{}",
     "file 'rel_huge_header.safetensors' is not a valid safetensors file"),
    ("rel_junk.tif", b"II*\x00" + bytes(60), "file 'rel_junk.tif' is not a readable image"),
    ("rel_png_named.npy", png_bytes(16, 16), "file 'rel_png_named.npy' is not a NumPy .npy array (a PNG image)"),
    ("rel_pickled.npy", npy_bytes(np.array([{"payload": 1}], dtype=object), allow_pickle=True),
     "file 'rel_pickled.npy'"),
    ("rel_nan.npy", npy_bytes(NAN_ARRAY), "file 'rel_nan.npy' contains 768 non-finite value(s)"),
    ("rel_wrong_shape.npy", npy_bytes(np.zeros((2, 2, 2, 2, 2), np.float32)),
     "file 'rel_wrong_shape.npy': expected an array of shape [h, w], [C, h, w] or [B, C, h, w]"),
]


@pytest.mark.parametrize("name, data, message", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_measurement_file_fails_naming_the_file(server, name, data, message):
    server.upload_file(name, data)
    kind, error = failure(server, loaded(g(), name))
    assert kind == "execution", error
    assert error["node_type"] == "DPSLoadMeasurement", error
    assert error["exception_type"] == "ValueError", error
    assert error["exception_message"].startswith(message), error["exception_message"]
    if name == "rel_pickled.npy":
        assert "pickle" in error["exception_message"]
    run_good(server)


def test_paths_outside_the_input_folder_are_refused_before_running(server):
    outside = server.base / "rel_outside.png"
    outside.write_bytes(png_bytes(16, 16))  # it exists, next to the input folder
    link = server.base / "input" / "rel_link_out.png"
    if not link.is_symlink():
        os.symlink(outside, link)
    for name in ("../rel_outside.png", str(outside), "sub/../../rel_outside.png", "rel_link_out.png"):
        kind, error = failure(server, loaded(g(), name))
        assert kind == "validation", (name, error)
        (problem,) = error["node_errors"]["load"]["errors"]
        assert problem["extra_info"]["input_name"] == "file", problem
        assert f"file: '{name}' is outside the input folder" in problem["details"], problem
    run_good(server)


def test_a_non_ascii_file_name_loads(server):
    name = "Messung_ü_測定 ✓.png"
    server.upload_file(name, png_bytes(SIZE // 2, SIZE // 2, seed=4))
    history = run(server, loaded(g(), name))["history"]
    record = saved(history)
    assert record["finite"] and record["shape"] == [1, 4, SIZE // 8, SIZE // 8]


# --------------------------------------------------------------------------- valid unusual input


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_grey_grey_alpha_and_rgba_pictures_work(server, channels):
    """Grey, grey + alpha and RGBA IMAGEs: as the clean picture of Simulate Measurement and as the
    observed picture of Measurement, through DPS KSampler."""
    for observed_picture in (False, True):
        graph = g()
        graph["channels"] = node("DPSTestChannels", image=["picture", 0], channels=channels)
        if observed_picture:
            observed(graph, ["channels", 0])
        else:
            graph["simulate"]["inputs"]["image"] = ["channels", 0]
        record = saved(run(server, graph)["history"])
        assert record["finite"] and record["shape"] == [1, 4, SIZE // 8, SIZE // 8]


def test_grey_picture_with_the_colorization_operator(server):
    graph = g()
    graph["channels"] = node("DPSTestChannels", image=["picture", 0], channels=1)
    graph["colour"] = node("DPSColorizationOperator")
    observed(graph, ["channels", 0], operator=["colour", 0])
    assert saved(run(server, graph)["history"])["finite"]


def test_batches_that_agree_work(server):
    """A measurement of batch 1 serves a latent of any batch; equal batches pair up."""
    for pictures, latents in ((1, 2), (2, 2)):
        graph = with_pattern(g(), batch=pictures)
        graph["latent"]["inputs"]["batch_size"] = latents
        record = saved(run(server, graph)["history"])
        assert record["finite"] and record["shape"] == [latents, 4, SIZE // 8, SIZE // 8]


def test_strength_zero_is_plain_sampling_and_a_huge_strength_stays_finite(server):
    seed = next(_seeds)
    zero = saved(run(server, guided_graph(seed=seed, strength=0.0))["history"])
    plain = saved(run(server, plain_graph(seed=seed))["history"])
    assert zero["digest"] == plain["digest"]
    for mode in ("dps", "fast"):
        huge = saved(run(server, guided_graph(seed=seed, strength=1e6, mode=mode))["history"])
        assert huge["finite"], mode
        assert huge["digest"] != plain["digest"], mode


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_models_work(server, dtype):
    for mode in ("dps", "fast"):
        graph = guided_graph(seed=next(_seeds), mode=mode, dtype=dtype)
        result = run(server, graph)
        record = saved(result["history"])
        assert record["finite"] and record["shape"] == [1, 4, SIZE // 8, SIZE // 8], (dtype, mode)
