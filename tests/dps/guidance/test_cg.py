"""Batched (preconditioned) conjugate gradients (dps/guidance/cg.py) against dense float64 solves."""

import torch

from comfyui_dps.dps.guidance import cg


def spd_batch(n=12, count=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mats = []
    for k in range(count):
        q = torch.randn(n, n, generator=generator, dtype=torch.float64)
        mats.append(q @ q.T + (0.1 + k) * torch.eye(n, dtype=torch.float64))
    return torch.stack(mats), torch.randn(count, n, generator=generator, dtype=torch.float64)


def matvec(mats):
    return lambda z: (mats @ z[..., None])[..., 0]


def test_conjugate_gradients_matches_dense_per_sample_and_stops_each_sample_on_its_own():
    mats, b = spd_batch()
    b[2] = 0  # a zero right-hand side: zero solution, no division by zero
    v, iterations = cg.conjugate_gradients(matvec(mats), b, max_iterations=100, tolerance=1e-12)
    torch.testing.assert_close(v, torch.linalg.solve(mats, b[..., None])[..., 0], rtol=1e-9, atol=1e-9)
    assert v[2].abs().max() == 0 and iterations <= 3 * 12


def test_conjugate_gradients_respects_its_iteration_cap():
    mats = torch.diag(torch.linspace(0.01, 1.0, 50, dtype=torch.float64))[None]
    b = torch.ones(1, 50, dtype=torch.float64)
    _, iterations = cg.conjugate_gradients(matvec(mats), b, max_iterations=5, tolerance=1e-14)
    assert iterations == 5


def test_a_preconditioner_gives_the_same_solution_in_fewer_iterations():
    # An ill-conditioned diagonal system plus a small symmetric perturbation; the diagonal's inverse
    # is a good preconditioner, so PCG must need far fewer iterations than plain CG.
    generator = torch.Generator().manual_seed(1)
    n = 60
    diagonal = torch.logspace(-3, 0, n, dtype=torch.float64)
    q = 1e-4 * torch.randn(n, n, generator=generator, dtype=torch.float64)
    mats = (torch.diag(diagonal) + q @ q.T)[None].expand(2, n, n)
    b = torch.randn(2, n, generator=generator, dtype=torch.float64)
    exact = torch.linalg.solve(mats, b[..., None])[..., 0]
    plain, plain_iterations = cg.conjugate_gradients(matvec(mats), b, max_iterations=500, tolerance=1e-10)
    pre, pre_iterations = cg.conjugate_gradients(matvec(mats), b, max_iterations=500, tolerance=1e-10,
                                                 precondition=lambda r: r / diagonal)
    torch.testing.assert_close(pre, exact, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(plain, exact, rtol=1e-6, atol=1e-6)
    assert pre_iterations * 3 < plain_iterations


def test_the_identity_preconditioner_reproduces_plain_conjugate_gradients_exactly():
    mats, b = spd_batch(seed=3)
    plain, n1 = cg.conjugate_gradients(matvec(mats), b, max_iterations=7, tolerance=1e-14)
    same, n2 = cg.conjugate_gradients(matvec(mats), b, max_iterations=7, tolerance=1e-14, precondition=lambda r: r)
    assert n1 == n2 == 7 and torch.equal(plain, same)
