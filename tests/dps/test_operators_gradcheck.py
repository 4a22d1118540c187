"""Autograd gives the true derivative (finite differences, float64) for every operator,
and for the noise likelihoods that DPS differentiates."""

import pytest
import torch
from test_operators_cases import ALL, image, one_thread  # noqa: F401 (autouse)

from comfyui_dps.dps.measurement import simulate
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise
from comfyui_dps.dps.operators import FourierUndersampling, GaussianBlur, PhaseRetrieval, SuperResolution


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


@pytest.mark.parametrize("name", sorted(n for n in ALL if ALL[n]().is_linear))
def test_gradcheck_adjoint(name):
    op, size = _small_case(name)
    y = op(image(batch=1, size=size, seed=8)).detach().requires_grad_()
    assert torch.autograd.gradcheck(op.adjoint, (y,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_phase_retrieval_gradient_is_finite_where_the_spectrum_vanishes():
    # A zero image has |FFT| = 0 everywhere: without the epsilon the gradient would be NaN.
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    PhaseRetrieval(2.0)(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradcheck_gaussian_nll():
    noise = GaussianNoise(0.1)
    y = image(batch=2, size=(4, 4), seed=1)
    pred = image(batch=2, size=(4, 4), seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: noise.negative_log_likelihood(p, y), (pred,))


@pytest.mark.parametrize("low", [0.0, -0.5])
def test_gradcheck_poisson_nll(low):
    # low = -0.5 puts predictions below zero: the quadratic continuation must be smooth too.
    noise = PoissonNoise(30.0)
    y = torch.poisson(30 * image(batch=2, size=(4, 4), seed=3)) / 30
    pred = (low + image(batch=2, size=(4, 4), seed=4)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: noise.negative_log_likelihood(p, y), (pred,))


@pytest.mark.parametrize(
    ("operator", "noise"),
    [
        (SuperResolution(2), GaussianNoise(0.05)),
        (FourierUndersampling(4, 0.1, 0), GaussianNoise(0.05)),
        (GaussianBlur(5, 1.0), PoissonNoise(50.0)),
        (PhaseRetrieval(2.0), GaussianNoise(0.05)),
    ],
)
def test_gradcheck_measurement_chi2_and_nll_through_the_operator(operator, noise):
    truth = image(batch=1, size=(8, 8), seed=5)
    m = simulate(truth, operator, noise, seed=1)
    x = image(batch=2, size=(8, 8), seed=6).requires_grad_()
    assert torch.autograd.gradcheck(m.chi2, (x,), atol=1e-5, rtol=1e-4, fast_mode=True)
    assert torch.autograd.gradcheck(m.negative_log_likelihood, (x,), atol=1e-5, rtol=1e-4, fast_mode=True)
