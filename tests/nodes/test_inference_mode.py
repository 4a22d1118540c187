"""The way out of inference mode (nodes/inference_mode.py): weights made by loader nodes become
usable by autograd without a copy, keep what the loader set on them, and inputs are copied, never
changed."""

import torch

from testkit.host import load_pack

load_pack()

from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import Inpainting  # noqa: E402
from comfyui_dps.nodes.inference_mode import autograd_ready, made_in_inference_mode, ordinary_copy  # noqa: E402


def loader_made_module():
    with torch.inference_mode():
        module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
        module.eval()
        module[0].weight._model_dtype = torch.float16  # newer ComfyUI's loader sets such attributes
    return module


def test_weights_become_ordinary_in_place_share_memory_and_keep_their_attributes():
    module = loader_made_module()
    pointers = [t.data_ptr() for t in [*module.parameters(), *module.buffers()]]
    assert all(made_in_inference_mode(p) for p in module.parameters())
    replaced = autograd_ready(module)
    assert replaced == 4 + 2 + 3  # two Linear layers' weights and biases; BatchNorm's weight, bias, 3 buffers
    assert not any(made_in_inference_mode(t) for t in [*module.parameters(), *module.buffers()])
    assert [t.data_ptr() for t in [*module.parameters(), *module.buffers()]] == pointers  # no copy
    assert not any(p.requires_grad for p in module.parameters())
    assert module[0].weight._model_dtype == torch.float16
    assert autograd_ready(module) == 0  # nothing left to do


def test_input_gradients_flow_through_a_readied_module_and_match_finite_differences():
    module = loader_made_module().double()
    autograd_ready(module)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(module(x).square().sum(), x)
    direction = torch.randn(3, 4, dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        finite = (module(x + eps * direction).square().sum() - module(x - eps * direction).square().sum()) / (2 * eps)
    torch.testing.assert_close((gradient * direction).sum(), finite, rtol=1e-6, atol=1e-9)


def test_a_tensor_made_in_inference_mode_whose_data_was_replaced_is_still_recognised():
    with torch.inference_mode():
        parameter = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    parameter.data = torch.zeros(3)  # Module.to() does this
    assert made_in_inference_mode(parameter)
    assert not made_in_inference_mode(torch.zeros(3))


def test_ordinary_copy_copies_a_measurement_and_leaves_the_original_alone():
    with torch.inference_mode():
        picture = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        measurement = simulate(picture, Inpainting(torch.zeros(8, 8)), GaussianNoise(0.1), seed=1)
    copy = ordinary_copy(measurement)
    assert measurement.y.is_inference() and not copy.y.is_inference()
    assert torch.equal(copy.y, measurement.y) and copy.y.data_ptr() != measurement.y.data_ptr()
    assert copy.operator is not measurement.operator
