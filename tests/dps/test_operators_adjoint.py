"""Exact adjoints: <A x, y> = <x, A* y> for every linear operator, in float64."""

import pytest
import torch
from test_operators_cases import LINEAR, NONLINEAR, image, inner, like, one_thread  # noqa: F401 (autouse)


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
    from comfyui_dps.dps.operators import Convolution, MotionBlur

    for op in (MotionBlur.camera_shake(61, 0.5, seed=4), Convolution(torch.rand(3, 4, dtype=torch.float64))):
        for size in ((7, 5), (1, 1), (2, 9)):
            x = image(batch=1, size=size, seed=5)
            y = like(op(x), seed=6)
            lhs, rhs = inner(op(x), y), inner(x, op.adjoint(y))
            assert abs(float(lhs - rhs)) <= 1e-6 * abs(float(lhs))
