"""Every guidance mode through every model family in a real ComfyUI server: DPS KSampler with
tiny eps / v-prediction / flow models and a tiny VAE on a blur measurement runs to success and
saves a finite latent; the iterating modes accept solver_steps."""

import pytest

from graphs import tiny_blur_graph

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
