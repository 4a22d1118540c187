"""Many runs in one real ComfyUI server: cancelling mid-run, twenty runs in a row, a queue of ten.

Results are compared bit for bit (digests of the saved latents): a cancelled run, a leaked patch
or gradient state, or interference between queued prompts would change the next result.
"""

from __future__ import annotations

import json
import statistics
import time

import psutil
import pytest

from testkit.comfy_server import PromptFailed
from reliability_graphs import executed_nodes, guided_graph, plain_graph, run, saved

pytestmark = pytest.mark.server


def timed_run(server, graph):
    """run(), and the arrival time of each progress event of the sampler."""
    stamps = []

    def record(event):
        if event["type"] == "progress" and event["data"].get("node") == "sampler":
            stamps.append(time.monotonic())

    return run(server, graph, on_event=record), stamps


CANCEL_STEPS, CANCEL_SEED = 5, 41


@pytest.fixture(scope="module")
def clean_run(server):
    """A run that nobody interrupts: its result and the median time of one step."""
    result, stamps = timed_run(server, guided_graph(seed=CANCEL_SEED, steps=CANCEL_STEPS, salt=0))
    assert len(stamps) == CANCEL_STEPS
    return saved(result["history"])["digest"], statistics.median(b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True))


@pytest.mark.parametrize("after_steps", [1, 3])
def test_cancel_mid_run_stops_within_a_step_and_leaks_nothing(server, clean_run, after_steps):
    expected, step_time = clean_run
    seed, steps = CANCEL_SEED, CANCEL_STEPS
    ws, client_id = server.connect()
    try:
        prompt_id = server.queue_prompt(guided_graph(seed=seed, steps=steps, salt=after_steps), client_id)
        seen = {"progress": 0, "interrupted_at": None}

        def interrupt_after_k_steps(event):
            if event["type"] == "progress" and event["data"].get("node") == "sampler":
                seen["progress"] += 1
                if seen["progress"] == after_steps:
                    seen["interrupted_at"] = time.monotonic()
                    server.post("/interrupt", {"prompt_id": prompt_id})

        with pytest.raises(PromptFailed) as stopped:
            server.wait(ws, prompt_id, timeout=300, on_event=interrupt_after_k_steps)
        latency = time.monotonic() - seen["interrupted_at"]
    finally:
        ws.close()
    last = stopped.value.events[-1]
    assert last["type"] == "execution_interrupted", json.dumps(last)[:500]
    assert last["data"]["node_id"] == "sampler", last["data"]
    assert seen["progress"] <= after_steps + 1, "more than one step ran after the interrupt"
    print(f"interrupt after step {after_steps}: stopped {latency:.2f} s later (one step: {step_time:.2f} s)")
    assert latency < 1.5 * step_time + 1.0, (latency, step_time)
    assert server.history(prompt_id)["status"]["status_str"] == "error"

    # The same graph again (a new cache key): equal to the clean run, so no patched model, gradient
    # state or half-finished guidance survived the interruption.
    after = run(server, guided_graph(seed=seed, steps=steps, salt=100 + after_steps))
    assert "sampler" in executed_nodes(after["events"])
    assert saved(after["history"])["digest"] == expected


def test_twenty_guided_runs_in_a_row_give_the_same_result_and_hold_memory(server):
    """The same seed each time, a new cache key each time (a pass-through's salt): the sampler runs
    twenty times on the cached model and VAE, and every result equals the first."""
    process = psutil.Process(server.process.pid)
    digests, resident = [], []
    for salt in range(20):
        result = run(server, guided_graph(seed=77, steps=2, salt=salt))
        assert "sampler" in executed_nodes(result["events"]), salt
        digests.append(saved(result["history"])["digest"])
        resident.append(process.memory_info().rss)
    print(f"resident memory after runs 1, 2, 10, 20: {[round(resident[i] / 2**20) for i in (0, 1, 9, 19)]} MiB")
    assert digests == [digests[0]] * 20
    assert resident[-1] <= 1.10 * resident[1], [round(value / 2**20) for value in resident]


def wait_all(server, ws, prompt_ids: list[str], timeout: float = 300.0) -> dict[str, list[dict]]:
    """Events per prompt until every one of them has succeeded; fails on any error or interruption."""
    events = {prompt_id: [] for prompt_id in prompt_ids}
    done = set()
    deadline = time.monotonic() + timeout
    ws.settimeout(5)
    while done != set(prompt_ids):
        assert time.monotonic() < deadline, f"{len(done)} of {len(prompt_ids)} prompts finished in {timeout} s"
        try:
            message = ws.recv()
        except Exception as error:  # a websocket timeout: poll again
            if "timed out" in str(error).lower():
                continue
            raise
        if isinstance(message, bytes):
            continue
        event = json.loads(message)
        prompt_id = event.get("data", {}).get("prompt_id")
        if prompt_id not in events:
            continue
        events[prompt_id].append(event)
        assert event["type"] not in ("execution_error", "execution_interrupted"), json.dumps(event)[:2000]
        if event["type"] == "execution_success":
            done.add(prompt_id)
    return events


def test_a_queue_of_ten_mixed_prompts_matches_the_prompts_run_one_by_one(server):
    def prompt(index, salt):
        seed = 300 + index
        if index % 3 == 2:
            return plain_graph(seed=seed, salt=salt)
        return guided_graph(seed=seed, salt=salt, mode="dps" if index % 3 == 0 else "fast")

    alone = [saved(run(server, prompt(index, salt=0))["history"])["digest"] for index in range(10)]
    assert len(set(alone)) == 10

    ws, client_id = server.connect()
    try:
        prompt_ids = [server.queue_prompt(prompt(index, salt=1), client_id) for index in range(10)]
        events = wait_all(server, ws, prompt_ids)
    finally:
        ws.close()
    queued = []
    for prompt_id in prompt_ids:
        assert "sampler" in executed_nodes(events[prompt_id])
        queued.append(saved(server.history(prompt_id))["digest"])
    assert queued == alone
