"""The conventions every operator keeps: inputs untouched, float32 and float64, batches
independent, gradients flow, odd memory layouts accepted, and (where present) CUDA agrees
with the CPU."""

import pytest
import torch
from test_operators_cases import ALL, LINEAR, image, like, one_thread  # noqa: F401 (autouse)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("name", sorted(ALL))
def test_operators_never_modify_their_input(name):
    op = ALL[name]()
    x = image(seed=1)
    before = x.clone()
    y = op(x)
    torch.testing.assert_close(x, before, rtol=0, atol=0)
    if op.is_linear:
        y_before = y.clone()
        op.adjoint(y)
        op.pseudo_inverse(y)
        torch.testing.assert_close(y, y_before, rtol=0, atol=0)
    y_before = y.clone()
    op.measurement_to_image(y)
    torch.testing.assert_close(y, y_before, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_float32_and_float64_agree(name):
    op = ALL[name]()
    x64 = image(seed=2)
    y64 = op(x64)
    y32 = op(x64.float())
    assert y32.dtype == (torch.complex64 if y64.is_complex() else torch.float32)
    torch.testing.assert_close(y32, y64.to(y32.dtype), rtol=1e-4, atol=1e-5)
    # The per-dtype caches must not leak one dtype into the other.
    assert op(x64).dtype == y64.dtype
    if op.is_linear:
        z = like(y64, seed=3)
        a64, a32 = op.adjoint(z), op.adjoint(z.to(y32.dtype))
        assert a32.dtype == torch.float32 and a64.dtype == torch.float64
        torch.testing.assert_close(a32, a64.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(ALL))
def test_batch_items_are_independent(name):
    op = ALL[name]()
    x = image(batch=3, seed=4)
    y = op(x)
    for i in range(3):
        torch.testing.assert_close(y[i : i + 1], op(x[i : i + 1]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_gradients_flow_to_the_image(name):
    op = ALL[name]()
    x = image(batch=1, seed=5).requires_grad_()
    y = op(x)
    loss = (y.abs() ** 2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ALL))
def test_non_contiguous_inputs(name):
    op = ALL[name]()
    x = image(seed=6)
    odd = x.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, transposed strides
    assert not odd.is_contiguous()
    torch.testing.assert_close(op(odd), op(x), rtol=1e-12, atol=1e-12)
    channels_last = x.to(memory_format=torch.channels_last)
    torch.testing.assert_close(op(channels_last), op(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_image_size_explains_the_measurement(name):
    op = LINEAR[name]()
    y = op(image(seed=7))
    assert op.image_size(tuple(y.shape[-2:])) == (24, 24)


@CUDA
@pytest.mark.parametrize("name", sorted(ALL))
def test_cuda_matches_cpu(name):
    op = ALL[name]()
    x = image(seed=8)
    y = op(x.cuda())
    assert y.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), op(x), rtol=1e-9, atol=1e-9)
    if op.is_linear:
        z = like(op(x), seed=9)
        torch.testing.assert_close(op.adjoint(z.cuda()).cpu(), op.adjoint(z), rtol=1e-9, atol=1e-9)
