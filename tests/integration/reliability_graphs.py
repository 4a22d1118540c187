"""Helpers shared by the reliability tests (test_reliability_*.py): running a prompt to its history,
collecting a failure, and the small guided graphs they send."""

from __future__ import annotations

import pytest

from testkit.comfy_server import PromptFailed
from graphs import node, tiny_blur_graph

# Smallest size the tiny UNet accepts behind the 8x TAESD (its 4x4 latent): a DPS step costs ~0.2 s of CPU.
SIZE = 32


def run(server, graph: dict, timeout: float = 300.0, on_event=None) -> dict:
    """Queue a graph, wait until it succeeds, and return {prompt_id, events, history}; raises PromptFailed."""
    result = server.run_prompt(graph, timeout, on_event)
    assert result["history"]["status"]["status_str"] == "success", result["history"]["status"]
    return result


def failure(server, graph: dict) -> tuple[str, dict]:
    """Run a graph that must fail. Returns ("execution", execution_error data) or ("validation", the
    /prompt 400 answer)."""
    with pytest.raises(PromptFailed) as caught:
        run(server, graph)
    for event in caught.value.events:
        if event.get("type") == "execution_error":
            return "execution", event["data"]
        if event.get("type") == "http_error":
            return "validation", event["data"]
    raise AssertionError(f"no execution_error nor validation error: {caught.value}")


def saved(history: dict, node_id: str = "save") -> dict:
    """The {digest, shape, finite} record of a DPSTestSaveTensor node."""
    return history["outputs"][node_id]["tensors"][0]


def executed_nodes(events: list[dict]) -> set[str]:
    """Node ids that really ran (not served from the cache) in a prompt."""
    cached = set()
    for event in events:
        if event.get("type") == "execution_cached":
            cached.update(event["data"].get("nodes", []))
    ran = {event["data"]["node"] for event in events
           if event.get("type") == "executing" and event["data"].get("node") is not None}
    return ran - cached


def guided_graph(seed: int = 0, steps: int = 2, size: int = SIZE, strength: float = 1.0, mode: str = "dps",
                 salt: int | None = None, dtype: str = "float32", prefix: str | None = None) -> dict:
    """tiny_blur_graph at 32x32 (TAESD, Gaussian blur). With `salt`, a pass-through node in front of
    latent_image makes the sampler run again on identical values (a new cache key, the same result)."""
    graph = tiny_blur_graph(steps=steps, seed=seed, strength=strength, mode=mode, size=size)
    graph["blur"]["inputs"].update(kernel_size=5, sigma=1.0)
    graph["model"]["inputs"]["dtype"] = dtype
    graph["save"]["inputs"]["filename_prefix"] = prefix or f"rel_{mode}_{seed}_{salt}"
    if salt is not None:
        graph["salted"] = node("DPSTestPassthrough", value=["latent", 0], salt=salt)
        graph["sampler"]["inputs"]["latent_image"] = ["salted", 0]
    return graph


def plain_graph(seed: int = 0, steps: int = 2, size: int = SIZE, salt: int | None = None) -> dict:
    """guided_graph with ComfyUI's own KSampler in place of DPS KSampler (the same noise for a seed)."""
    graph = guided_graph(seed=seed, steps=steps, size=size, salt=salt, prefix=f"rel_plain_{seed}_{salt}")
    inputs = graph["sampler"]["inputs"]
    graph["sampler"] = node("KSampler", model=inputs["model"], seed=seed, steps=steps, cfg=1.0,
                            sampler_name=inputs["sampler_name"], scheduler=inputs["scheduler"],
                            positive=inputs["positive"], negative=inputs["negative"],
                            latent_image=inputs["latent_image"], denoise=1.0)
    return graph
