"""pigdm's solves of (a A A^T + Sigma_y) v = b (dps/guidance/gram.py) against dense float64 linear
algebra: A is built column by column from the operator on basis images, complex measurements as
real pairs."""

import pytest
import torch

from comfyui_dps.dps.guidance import cg, gram
from comfyui_dps.dps.guidance.spectral import SpectralCovariance
from comfyui_dps.dps.measurement import as_real
from comfyui_dps.dps.operators import (Colorization, Composition, Convolution, FourierUndersampling, GaussianBlur,
                                       Inpainting, RandomInpainting, SuperResolution)
from testkit.gaussian_case import dense

SCALE = torch.tensor([0.2, 0.01], dtype=torch.float64)  # a = r^2 c^2 per sample


def measurement_like(operator, shape, generator):
    probe = operator(torch.zeros(shape, dtype=torch.float64))
    b = torch.randn(as_real(probe).shape, generator=generator, dtype=torch.float64)
    return torch.view_as_complex(b) if probe.is_complex() else b


def dense_solve(operator, b, noise_variance, shape):
    matrix = dense(operator, shape[1:])
    out = []
    for i in range(b.shape[0]):
        rb = as_real(b[i:i + 1]).reshape(-1)
        variance = torch.broadcast_to(noise_variance, as_real(b).shape)[i].reshape(-1)
        system = SCALE[i] * matrix @ matrix.T + torch.diag(variance)
        out.append(torch.linalg.solve(system, rb))
    return torch.stack(out).reshape(as_real(b).shape)


def fractional_mask():
    generator = torch.Generator().manual_seed(3)
    return torch.rand(6, 8, generator=generator, dtype=torch.float64).round() * 0.7


CASES = {
    "inpainting": (lambda: Inpainting(fractional_mask()), (2, 3, 6, 8), "diagonal"),
    "random inpainting": (lambda: RandomInpainting(0.7, seed=1), (2, 3, 6, 8), "diagonal"),
    "average SR": (lambda: SuperResolution(2, "average"), (2, 3, 8, 6), "block"),
    "average SR x3": (lambda: SuperResolution(3, "average"), (2, 2, 6, 9), "block"),
    "colourisation": (Colorization, (2, 3, 5, 4), "scalar"),
    "circular blur": (lambda: GaussianBlur(5, 1.0, boundary="circular"), (2, 2, 6, 8), "fft"),
    "circular blur, large kernel": (lambda: GaussianBlur(9, 2.0, boundary="circular"), (2, 1, 7, 5), "fft"),
    "circular motion blur": (lambda: Convolution(torch.tensor([[0.0, 1, 2], [0, 0, 1]]), "circular"), (2, 1, 6, 7),
                             "fft"),
    "Fourier, even": (lambda: FourierUndersampling(2.0, 0.25, seed=2), (2, 1, 6, 8), "kspace"),
    "Fourier, odd": (lambda: FourierUndersampling(2.0, 0.2, seed=5), (2, 2, 5, 7), "kspace"),
    "bicubic SR": (lambda: SuperResolution(2, "bicubic"), (2, 3, 8, 8), None),
    "reflect blur": (lambda: GaussianBlur(5, 1.0), (2, 3, 6, 6), None),
    "zero-padded blur": (lambda: GaussianBlur(3, 0.8, boundary="zeros"), (2, 1, 6, 6), None),
    "blur then SR": (lambda: Composition(GaussianBlur(3, 0.8), SuperResolution(2, "bicubic")), (2, 3, 8, 8), None),
    "blur then Fourier": (lambda: Composition(GaussianBlur(3, 0.8), FourierUndersampling(2.0, 0.25, seed=1)),
                          (2, 1, 6, 6), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_solve_matches_dense_linear_algebra_under_gaussian_noise(name):
    build, shape, kind = CASES[name]
    operator = build()
    assert gram.closed_form(operator) == kind
    b = measurement_like(operator, shape, torch.Generator().manual_seed(1))
    variance = torch.tensor(0.05**2, dtype=torch.float64)
    v = gram.solve(operator, b, scale=SCALE, noise_variance=variance, tolerance=1e-12, max_iterations=500)
    assert v.shape == b.shape and v.dtype == b.dtype
    torch.testing.assert_close(as_real(v), dense_solve(operator, b, variance, shape), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ["inpainting", "average SR", "colourisation", "circular blur", "reflect blur"])
def test_each_solve_matches_dense_linear_algebra_under_per_element_noise(name):
    """Poisson noise: Sigma_y differs per element (and here per sample); the FFT solve hands over to CG."""
    build, shape, _ = CASES[name]
    operator = build()
    generator = torch.Generator().manual_seed(2)
    b = measurement_like(operator, shape, generator)
    variance = 0.001 + 0.01 * torch.rand(b.shape, generator=generator, dtype=torch.float64)
    v = gram.solve(operator, b, scale=SCALE, noise_variance=variance, tolerance=1e-12, max_iterations=500)
    torch.testing.assert_close(v, dense_solve(operator, b, variance, shape), rtol=1e-8, atol=1e-8)


def test_a_batch_one_noise_variance_serves_every_sample():
    operator = Inpainting(fractional_mask())
    b = measurement_like(operator, (2, 3, 6, 8), torch.Generator().manual_seed(4))
    variance = 0.002 + 0.01 * torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    v = gram.solve(operator, b, scale=SCALE, noise_variance=variance)
    torch.testing.assert_close(v, dense_solve(operator, b, variance, (2, 3, 6, 8)))


def test_float32_solves_stay_float32():
    operator = SuperResolution(2, "bicubic")
    b = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(6))
    v = gram.solve(operator, b, scale=SCALE.float(), noise_variance=torch.tensor(0.0025))
    assert v.dtype == torch.float32
    reference = dense_solve(operator, b.double(), torch.tensor(0.0025, dtype=torch.float64), (2, 3, 8, 8))
    error = (v.double() - reference).flatten(1).norm(dim=1) / reference.flatten(1).norm(dim=1)
    assert error.max() < 10 * cg.TOLERANCE


def spectral_covariance(shape, generator, sigmas) -> SpectralCovariance:
    """The spectral covariance of a non-linear denoiser for a random x_t of `shape` (2 samples, at noise levels
    `sigmas`)."""
    x = 5 * torch.randn(shape, generator=generator, dtype=torch.float64)
    return SpectralCovariance(x, torch.tanh(x / 3) + 0.1 * x, torch.tensor(sigmas, dtype=torch.float64),
                              torch.ones(2, dtype=torch.float64))


def dense_covariance_systems(operator, shape, covariance, factor, noise):
    """Per sample i, the dense matrix of (A factor[i] C A^T + diag(noise[i])) (noise[i] flat, real layout)."""
    matrix = dense(operator, shape[1:])
    n = matrix.shape[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape[1:])
    for i in range(shape[0]):
        single = torch.stack([covariance.apply(basis[j:j + 1].expand(shape[0], *shape[1:]))[i].reshape(-1)
                              for j in range(n)], 1)
        yield factor[i] * matrix @ single @ matrix.T + torch.diag(noise[i])


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("per_element", [False, True], ids=["gaussian", "per-element noise"])
def test_each_solve_with_a_spectral_covariance_matches_dense_linear_algebra(name, per_element):
    """(A f C A^T + Sigma_y) v = b for the spectral covariance of a non-linear denoiser (correlated, its
    variance spread over orders of magnitude, as at high noise), f per sample: by CG with the
    stationary preconditioner (blurs, masks), the isotropic closed form or none."""
    build, shape, _ = CASES[name]
    operator = build()
    generator = torch.Generator().manual_seed(7)
    b = measurement_like(operator, shape, generator)
    covariance = spectral_covariance(shape, generator, [5.0, 0.3])
    factor = torch.tensor([0.25, 0.5], dtype=torch.float64)
    variance = (0.001 + 0.01 * torch.rand(as_real(b).shape, generator=generator, dtype=torch.float64)
                if per_element else torch.tensor(0.05**2, dtype=torch.float64))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cg, "TOLERANCE", 1e-12)
        patch.setattr(gram, "COVARIANCE_MAX_ITERATIONS", 3000)
        v = gram.solve_with_covariance(operator, b, covariance=covariance, noise_variance=variance, factor=factor)
    noise = torch.broadcast_to(variance, as_real(b).shape).reshape(shape[0], -1)
    for i, system in enumerate(dense_covariance_systems(operator, shape, covariance, factor, noise)):
        torch.testing.assert_close(as_real(v[i:i + 1]).reshape(-1),
                                   torch.linalg.solve(system, as_real(b[i:i + 1]).reshape(-1)), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", ["random inpainting", "colourisation", "bicubic SR"])
def test_a_solve_with_a_spectral_covariance_stops_at_its_own_cap(name):
    """COVARIANCE_MAX_ITERATIONS bounds the work of every spectral solve (stationary or isotropic
    preconditioner), whatever cg.py's general cap; the capped answer is still a partial solve, closer to the
    exact one in the system's own norm than no solve at all."""
    build, shape, _ = CASES[name]
    operator = build()
    generator = torch.Generator().manual_seed(11)
    b = measurement_like(operator, shape, generator)
    covariance = spectral_covariance(shape, generator, [5.0, 5.0])
    variance = torch.tensor(0.02**2, dtype=torch.float64)
    runs = []

    def counted(*args, **kwargs):
        v, iterations = cg.conjugate_gradients(*args, **kwargs)
        runs.append(iterations)
        return v, iterations

    def solve(cap):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cg, "TOLERANCE", 1e-14)
            patch.setattr(gram, "COVARIANCE_MAX_ITERATIONS", cap)
            patch.setattr(gram, "conjugate_gradients", counted)
            return gram.solve_with_covariance(operator, b, covariance=covariance, noise_variance=variance, factor=1.0)

    exact, capped = solve(3000), solve(1)
    assert runs[0] > 1 and runs[1] == 1
    noise = torch.broadcast_to(variance, as_real(b).shape).reshape(shape[0], -1)
    for i, system in enumerate(dense_covariance_systems(operator, shape, covariance, [1.0, 1.0], noise)):
        error = as_real(capped[i:i + 1] - exact[i:i + 1]).reshape(-1)
        start = as_real(exact[i:i + 1]).reshape(-1)
        assert 0 < error @ system @ error < start @ system @ start


@pytest.mark.parametrize("name", ["inpainting", "random inpainting", "reflect blur", "zero-padded blur",
                                  "circular motion blur", "bicubic SR", "average SR x3"])
def test_the_stationary_preconditioner_is_symmetric_positive_definite(name):
    """Conjugate gradients need it so (an asymmetric motion kernel included). None would fail here."""
    build, shape, _ = CASES[name]
    operator = build()
    generator = torch.Generator().manual_seed(8)
    x = 5 * torch.randn(shape, generator=generator, dtype=torch.float64)
    covariance = SpectralCovariance(x, torch.tanh(x / 3) + 0.1 * x, torch.tensor([8.0, 8.0], dtype=torch.float64),
                                    torch.ones(2, dtype=torch.float64))
    s = torch.tensor(0.02**2, dtype=torch.float64)
    scale = torch.full((2, 1, 1, 1), 0.25, dtype=torch.float64)
    like = operator(torch.zeros(shape, dtype=torch.float64))  # the measurement's grid
    precondition = gram.stationary_preconditioner(operator, covariance, scale, s, like)
    n = like[0].numel()
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *like.shape[1:])
    matrix = torch.stack([precondition(e.expand(2, *like.shape[1:]))[0].reshape(-1) for e in basis], 1)
    torch.testing.assert_close(matrix, matrix.T, rtol=1e-9, atol=1e-9)
    assert torch.linalg.eigvalsh(matrix).min() > 0


def photo_like_covariance(shape, seed):
    """The spectral covariance of a Wiener denoiser at sigma 8 for a photograph-like prior (power falling
    as 1 / |f|^2, per DCT coefficient): variance over orders of magnitude, as at high noise."""
    from comfyui_dps.dps.guidance.dct import dct2, idct2
    from comfyui_dps.dps.guidance.spectral import _rings

    height, width = shape[-2:]
    power = 400.0 / (1 + _rings(height, width, "cpu").double()).square()
    sigma = 8.0
    gain = power / (power + sigma**2)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = idct2(dct2(x) * (power + sigma**2).sqrt())  # x_t = x0 + sigma * noise, in distribution
    # Channels shrunk unequally: each colour component then has its own gains.
    shrink = torch.linspace(1, 0.5, shape[1], dtype=torch.float64).reshape(1, -1, 1, 1)
    return SpectralCovariance(x, idct2(dct2(x) * gain) * shrink, torch.tensor([sigma] * shape[0], dtype=torch.float64),
                              torch.ones(shape[0], dtype=torch.float64))


@pytest.mark.parametrize("kernel", ["bicubic", "average"])
def test_the_super_resolution_preconditioner_is_the_diagonal_in_the_output_dct(kernel):
    """For each output DCT-II basis image b_k of each colour component, <b_k, P b_k> = 1 / (<b_k, M b_k> + s),
    M = A f C A^T on colour components (the solve's space): P is the inverse of the diagonal of M + s I in
    that basis (the Jacobi preconditioner)."""
    from comfyui_dps.dps.guidance.dct import idct2

    operator = SuperResolution(2, kernel)
    shape = (2, 3, 8, 6)
    covariance = photo_like_covariance(shape, 13)
    s = torch.tensor(0.02**2, dtype=torch.float64)
    scale = torch.tensor([0.25, 0.5], dtype=torch.float64).reshape(2, 1, 1, 1)
    like = operator(torch.zeros(shape, dtype=torch.float64))
    precondition = gram.stationary_preconditioner(operator, covariance, scale, s, like)
    n = like[0].numel()
    coefficients = torch.eye(n, dtype=torch.float64).reshape(n, *like.shape[1:])
    for image in idct2(coefficients):
        batch = image.expand(2, *like.shape[1:])
        rgb = covariance.from_components(batch)
        system = covariance.to_components(operator(scale * covariance.apply(operator.adjoint(rgb)))) + s * batch
        diagonal = (batch * system).sum(dim=(1, 2, 3))
        torch.testing.assert_close((batch * precondition(batch)).sum(dim=(1, 2, 3)), 1 / diagonal,
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernel", ["bicubic", "average"])
def test_the_super_resolution_preconditioner_cuts_iterations(kernel):
    """4x super-resolution at high noise: CG needs well under half the iterations of the isotropic
    closed form's (the preconditioner used before)."""
    operator = SuperResolution(4, kernel)
    shape = (2, 3, 64, 64)
    covariance = photo_like_covariance(shape, 11)
    s = torch.tensor(0.02**2, dtype=torch.float64)
    b = covariance.to_components(operator(torch.randn(shape, generator=torch.Generator().manual_seed(12),
                                                      dtype=torch.float64)))

    def system(z):  # on colour components, as the solve runs
        return operator(covariance.filter_components(operator.adjoint(z), covariance.variance)) + s * z

    scale = torch.ones(2, 1, 1, 1, dtype=torch.float64)
    diagonal = gram.stationary_preconditioner(operator, covariance, scale, s, b)
    average = covariance.mean_variance()

    def isotropic(r):  # a multiple of I in the operator's own terms: the same on components
        return gram.solve(operator, r, scale=average, noise_variance=s)

    _, with_diagonal = cg.conjugate_gradients(system, b, precondition=diagonal)
    _, with_isotropic = cg.conjugate_gradients(system, b, precondition=isotropic)
    assert with_diagonal < with_isotropic / 2, (with_diagonal, with_isotropic)
