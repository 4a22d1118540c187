"""Every guidance mode through every model family in a real ComfyUI server: DPS KSampler with
tiny eps / v-prediction / flow models and a tiny VAE on a blur measurement runs to success and
saves a finite latent; the iterating modes accept solver_steps. The DAPS sampler does the same
through SamplerCustomAdvanced for every family."""

import pytest

from graphs import node, tiny_blur_graph

pytestmark = pytest.mark.server

MODES = ["dps", "fast", "pigdm", "proximal", "moment"]


@pytest.mark.parametrize("family", ["eps", "v_prediction", "flow"])
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_runs_each_model_family(server, mode, family):
    graph = tiny_blur_graph(steps=2, mode=mode, model_type=family, size=32)
    graph["save"]["inputs"]["filename_prefix"] = f"modes_{mode}_{family}"
    if mode in ("proximal", "moment"):
        graph["sampler"]["inputs"]["solver_steps"] = 2
    result = server.run_prompt(graph)
    assert result["history"]["status"]["status_str"] == "success", result["history"]["status"]
    saved = result["history"]["outputs"]["save"]["tensors"][0]
    assert saved["finite"] and saved["shape"] == [1, 4, 4, 4]


@pytest.mark.parametrize("family", ["eps", "v_prediction", "flow"])
def test_the_daps_sampler_runs_each_model_family(server, family):
    """DPS DAPS Sampler -> SamplerCustomAdvanced with ComfyUI's own guider, scheduler and noise nodes."""
    graph = tiny_blur_graph(steps=2, model_type=family, size=32)
    del graph["sampler"]
    graph.update({
        "daps": node("DPSDAPSSampler", measurement=["simulate", 0], vae=["vae", 0], langevin_steps=2, step_size=0.5,
                     x0_estimate="ODE (3 steps)"),
        "guider": node("BasicGuider", model=["model", 0], conditioning=["cond", 0]),
        "sigmas": node("BasicScheduler", model=["model", 0], scheduler="karras", steps=3, denoise=1.0),
        "noise": node("RandomNoise", noise_seed=5),
        "run": node("SamplerCustomAdvanced", noise=["noise", 0], guider=["guider", 0], sampler=["daps", 0],
                    sigmas=["sigmas", 0], latent_image=["latent", 0]),
    })
    graph["save"]["inputs"].update(filename_prefix=f"daps_{family}", latent=["run", 0])
    result = server.run_prompt(graph)
    assert result["history"]["status"]["status_str"] == "success", result["history"]["status"]
    saved = result["history"]["outputs"]["save"]["tensors"][0]
    assert saved["finite"] and saved["shape"] == [1, 4, 4, 4]
