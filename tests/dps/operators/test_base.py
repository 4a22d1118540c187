"""The protocol every operator follows (base.py), checked on every case of the registry: exact
adjoints, inputs untouched, float32 and float64, batches independent, true gradients, odd memory
layouts, `to` another device or dtype, and (where present) CUDA agreeing with the CPU."""

import pytest
import torch
from operator_cases import ALL, LINEAR, NONLINEAR, image, inner, like

import comfyui_dps.dps.operators as ops
from comfyui_dps.dps.operators import Convolution, MotionBlur, Operator
from comfyui_dps.dps.operators.base import tensor_to

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def tensors_in(op) -> list[torch.Tensor]:
    """Every tensor an operator holds: its own, its memo's and its parts'."""
    found = []

    def walk(value):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, Operator):
            for item in vars(value).values():
                walk(item)

    walk(op)
    return found


# --- exact adjoints (float64) -------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LINEAR))
def test_adjoint_identity(name):
    op = LINEAR[name]()
    assert op.is_linear
    x = image(batch=2, seed=11)
    ax = op(x)
    y = like(ax, seed=12)
    lhs, rhs = inner(ax, y), inner(x, op.adjoint(y))
    assert abs(float(lhs - rhs)) <= 1e-6 * abs(float(lhs)), (float(lhs), float(rhs))


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_adjoint_is_linear_and_shaped_like_the_image(name):
    op = LINEAR[name]()
    x = image(batch=2, seed=3)
    y1, y2 = like(op(x), seed=4), like(op(x), seed=5)
    combined = op.adjoint(2.5 * y1 - y2)
    assert combined.shape == x.shape and combined.dtype == x.dtype
    torch.testing.assert_close(combined, 2.5 * op.adjoint(y1) - op.adjoint(y2), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_forward_is_linear(name):
    op = LINEAR[name]()
    x, z = image(seed=1), image(seed=2) - 0.5
    torch.testing.assert_close(op(3 * x - 2 * z), 3 * op(x) - 2 * op(z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(NONLINEAR))
def test_nonlinear_operators_have_no_adjoint(name):
    op = NONLINEAR[name]()
    assert not op.is_linear
    with pytest.raises(NotImplementedError):
        op.adjoint(op(image()))


def test_adjoint_identity_on_odd_sizes_with_kernels_bigger_than_the_image():
    # 7x5 images: the 61x61 reflect padding wraps around the mirror many times.
    for op in (MotionBlur.camera_shake(61, 0.5, seed=4), Convolution(torch.rand(3, 4, dtype=torch.float64))):
        for size in ((7, 5), (1, 1), (2, 9)):
            x = image(batch=1, size=size, seed=5)
            y = like(op(x), seed=6)
            lhs, rhs = inner(op(x), y), inner(x, op.adjoint(y))
            assert abs(float(lhs - rhs)) <= 1e-6 * abs(float(lhs))


# --- conventions --------------------------------------------------------------------------

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
    # The per-dtype memos must not leak one dtype into the other.
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


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_operator_has_a_name_and_a_repr(name):
    op = ALL[name]()
    assert isinstance(op.name, str) and op.name
    assert repr(op) != object.__repr__(op)


@pytest.mark.parametrize("op", [ops.GaussianBlur(3, 1.0), ops.SuperResolution(2), ops.Colorization(),
                                ops.FourierUndersampling(), ops.PhaseRetrieval(), ops.RandomInpainting(0.5)])
def test_images_must_be_4d(op):
    with pytest.raises(ValueError, match=r"^image: expected a tensor of shape \[B, C, H, W\], got \(3, 8, 8\)$"):
        op(torch.zeros(3, 8, 8))


# --- true derivatives (finite differences, float64) -----------------------------------------

def _small_case(name):
    """The operator and a small image size it accepts (keeps the Jacobians cheap)."""
    op = ALL[name]()
    size = (6, 6) if getattr(op, "scale_factor", None) == 3 else (8, 8)
    if hasattr(op, "keep"):  # fixed-mask inpainting: crop the 24x24 mask
        op = type(op)(1 - op.keep[..., : size[0], : size[1]])
    return op, size


# fast_mode checks random projections of the Jacobian instead of every entry: the same
# finite-difference comparison at a fraction of the cost.
@pytest.mark.parametrize("name", sorted(ALL))
def test_gradcheck_forward(name):
    op, size = _small_case(name)
    x = image(batch=1, size=size, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(op, (x,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_gradcheck_adjoint(name):
    op, size = _small_case(name)
    y = op(image(batch=1, size=size, seed=8)).detach().requires_grad_()
    assert torch.autograd.gradcheck(op.adjoint, (y,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


# --- to(device, dtype) ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL))
def test_to_moves_every_tensor_into_a_new_operator_and_leaves_the_original(name):
    op = ALL[name]()
    x = image(seed=9)
    y = op(x)  # fills the per-size memos on the CPU: they must not travel, nor be shared
    own = {id(t): (t, t.clone()) for t in tensors_in(op)}
    moved = op.to("meta")
    assert moved is not op and type(moved) is type(op) and moved.device == torch.device("meta")
    assert all(t.device.type == "meta" for t in tensors_in(moved))
    assert len(tensors_in(moved)) >= len(op.tensor_names)
    y_meta = moved(x.to("meta"))
    assert y_meta.device.type == "meta" and y_meta.shape == y.shape and y_meta.dtype == y.dtype
    if op.is_linear:
        assert moved.adjoint(y.to("meta")).shape == x.shape
    assert all(t.device.type == "meta" for t in tensors_in(moved))  # memo rebuilt there
    # The original kept its own tensors, untouched, and still gives the same answers.
    assert {id(t) for t in tensors_in(op)} == set(own)
    for t, before in own.values():
        assert t.device.type == "cpu"
        torch.testing.assert_close(t, before, rtol=0, atol=0)
    torch.testing.assert_close(op(x), y, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_to_a_dtype_gives_that_dtype_s_results(name):
    # An operator converts its float64 tensors to the image's dtype at every call; moved to
    # float32 it holds them converted once, so on float32 images the answers are the same bits.
    op = ALL[name]()
    single = op.to(dtype=torch.float32)
    assert all(t.dtype in (torch.float32, torch.complex64, torch.bool) for t in tensors_in(single))
    assert all(t.dtype == torch.float64 for t in tensors_in(op) if t.is_floating_point())
    x = image(seed=10, dtype=torch.float32)
    torch.testing.assert_close(single(x), op(x), rtol=0, atol=0)
    if op.is_linear:
        y = like(op(x), seed=11)
        torch.testing.assert_close(single.adjoint(y), op.adjoint(y), rtol=0, atol=0)
    # ...and in float64 it computes with float32-rounded tensors: close, not equal, to float64's.
    x64 = image(seed=10)
    torch.testing.assert_close(single(x64), op(x64), rtol=1e-6, atol=1e-6)


def test_to_without_arguments_is_a_copy_that_shares_the_tensors():
    op = ALL["inpainting-soft"]()
    same = op.to()
    assert same is not op and same.keep is op.keep  # tensors are never modified in place


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.bool, "float32"])
def test_to_rejects_dtypes_that_are_not_real_floating(dtype):
    with pytest.raises(ValueError, match=r"^dtype: expected a real floating dtype such as torch.float32, got"):
        ALL["gauss-5-reflect"]().to(dtype=dtype)


def test_tensor_to_keeps_the_kind_of_every_tensor():
    k_space = torch.zeros(2, dtype=torch.complex128)
    assert tensor_to(k_space, dtype=torch.float32).dtype == torch.complex64
    assert tensor_to(k_space.to(torch.complex64), dtype=torch.float64).dtype == torch.complex128
    assert tensor_to(torch.zeros(2, dtype=torch.bool), dtype=torch.float32).dtype == torch.bool
    assert tensor_to(torch.zeros(2, dtype=torch.int64), dtype=torch.float32).dtype == torch.int64
    real = torch.zeros(2, dtype=torch.float64)
    assert tensor_to(real) is real and tensor_to(real, "meta", torch.float16).dtype == torch.float16


# --- CUDA -----------------------------------------------------------------------------------

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


@CUDA
@pytest.mark.parametrize("name", sorted(ALL))
def test_operator_moved_to_cuda_matches_cpu(name):
    op = ALL[name]()
    x = image(seed=12)
    moved = op.to("cuda")
    y = moved(x.cuda())
    assert all(t.device.type == "cuda" for t in tensors_in(moved))
    torch.testing.assert_close(y.cpu(), op(x), rtol=1e-9, atol=1e-9)
    if op.is_linear:
        z = like(op(x), seed=13)
        torch.testing.assert_close(moved.adjoint(z.cuda()).cpu(), op.adjoint(z), rtol=1e-9, atol=1e-9)
