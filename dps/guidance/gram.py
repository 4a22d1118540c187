"""Solves of pigdm's system (a A A^T + Sigma_y) v = b, per sample, for a linear operator A.

a = r_t^2 c^2 per sample ([B]), Sigma_y the noise variance per measured element (a 0-d tensor
for Gaussian noise, per element for Poisson noise; complex k-space counts as real pairs, each with
the same variance), b the residual in the measurement's own layout (complex for k-space); v comes
back in that layout. Exact where the operator allows it:

- masks (Inpainting, RandomInpainting): A A^T = diag(keep^2), a division;
- average super-resolution by s: A A^T = I / s^2 (each block of s x s pixels averages into one);
- colourisation: A A^T = sum of the squared luma weights, a scalar;
- circular blur (Gaussian noise): A A^T is circulant, diagonal in the FFT with |h^|^2, h = A(delta);
- Fourier undersampling: A maps a *real* image, so A A^T = M (I + J) / 2 M where J b(k) = conj b(-k)
  pairs each frequency with its mirror; sampled pairs see a projection, a frequency sampled
  without its mirror sees 1/2, unsampled ones 0: a division per pair;

and by conjugate gradients (cg.py) with the operator and its adjoint otherwise (bicubic
super-resolution, padded blur, compositions, circular blur under Poisson noise).
"""

from __future__ import annotations

import torch

from ..operators import Colorization, Convolution, FourierUndersampling, SuperResolution
from ..operators.inpainting import Masking
from ..measurement import as_real
from .cg import conjugate_gradients
from .dct import dct

#: Cap on CG iterations of the solves with a spectral covariance (pigdm's masks, proximal), below cg.py's
#: general cap: with a photograph's x_t an 80% random mask's solve runs into 100 from sigma 10 to about 5
#: (45-70 to sigma 2), most of proximal's extra cost in a whole run, for no effect on the result. Measured
#: on the tuning photographs (scripts/mode_photo_check.py, proximal, 4 samples): posterior means 21.677 /
#: 25.121 dB at 100, 21.676 / 25.121 at 30, 21.672 / 25.115 at 15; a 40 px box's solves stay under 40.
#: Early steps' estimates are re-made by the steps after them, so a partly converged solve (its largest,
#: smoothest components first) is all they need.
COVARIANCE_MAX_ITERATIONS = 30


def noise_variance(measurement, like: torch.Tensor) -> torch.Tensor:
    """Sigma_y for `solve`: the measurement's noise variance per element (0-d for Gaussian noise)
    on `like`'s device, real, for a residual `like` in the measurement's layout."""
    y = measurement.y.to(device=like.device, dtype=like.dtype)
    return measurement.noise.std(y).square()


def from_real(real: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of as_real for a tensor laid out like `like` (complex again if `like` is)."""
    return torch.view_as_complex(real.contiguous()) if like.is_complex() else real


def _per_sample(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    scale = scale.to(device=like.device, dtype=like.real.dtype if like.is_complex() else like.dtype).reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(like.shape[0])
    return scale.reshape(-1, *([1] * (like.ndim - 1)))


def closed_form(operator) -> str | None:
    """The name of the exact solve used for `operator` under Gaussian noise, or None (conjugate
    gradients). Poisson noise keeps every closed form but the FFT ones."""
    if isinstance(operator, Masking):
        return "diagonal"
    if isinstance(operator, SuperResolution) and operator.kernel == "average":
        return "block"
    if isinstance(operator, Colorization):
        return "scalar"
    if isinstance(operator, Convolution) and operator.boundary == "circular":
        return "fft"
    if isinstance(operator, FourierUndersampling):
        return "kspace"
    return None


def _circular_spectrum(operator: Convolution, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """|FFT(h)|^2 for the impulse response h = A(delta) of a circular blur on this grid."""
    delta = torch.zeros(1, 1, *size, dtype=like.dtype, device=like.device)
    delta[..., 0, 0] = 1
    return torch.fft.fft2(operator.forward(delta)).abs().square()


def _mirror(b: torch.Tensor) -> torch.Tensor:
    """J b: b(-k) conjugated, in the centred layout (frequency 0 at index n // 2 of each axis)."""
    for dim in (-2, -1):
        n = b.shape[dim]
        index = (2 * (n // 2) - torch.arange(n, device=b.device)) % n
        b = b.index_select(dim, index)
    return b.conj()


def solve(operator, b: torch.Tensor, *, scale: torch.Tensor, noise_variance: torch.Tensor,
          max_iterations: int | None = None, tolerance: float | None = None) -> torch.Tensor:
    """v with (a A A^T + Sigma_y) v = b per sample (a = `scale` [B], Sigma_y = `noise_variance`
    broadcastable to the real view of b). No graph is built. `max_iterations` and `tolerance` are
    those of conjugate gradients (cg.py's defaults when None); closed forms ignore them."""
    with torch.no_grad():
        a = _per_sample(scale, b)
        s = noise_variance.to(device=b.device, dtype=a.dtype)
        scalar_noise = s.numel() == 1
        kind = closed_form(operator)
        if kind == "diagonal":
            keep = operator.keep_weights(b)
            return b / (a * keep.square() + s)
        if kind == "block":
            return b / (a / operator.scale_factor**2 + s)
        if kind == "scalar":
            return b / (a * operator.weights.square().sum().item() + s)
        if kind == "fft" and scalar_noise:
            spectrum = _circular_spectrum(operator, tuple(b.shape[-2:]), b)
            return torch.fft.ifft2(torch.fft.fft2(b) / (a * spectrum + s.reshape(()))).real.to(b.dtype)
        if kind == "kspace" and scalar_noise:
            s = s.reshape(())
            m = operator.mask_like(b).to(torch.bool)
            mirrored = m[(2 * (m.shape[0] // 2) - torch.arange(m.shape[0], device=m.device)) % m.shape[0]]
            both, alone = m & mirrored, m & ~mirrored
            projected = b / s - (a / (s * (a + s))) * (b + _mirror(b)) / 2
            return torch.where(both, projected, torch.where(alone, b / (s + a / 2), b / s))
        return _conjugate_gradient_solve(operator, b, a, s, max_iterations, tolerance)


def _conjugate_gradient_solve(operator, b, a, s, max_iterations, tolerance) -> torch.Tensor:
    real_b = as_real(b)
    a_real = a.reshape(-1, *([1] * (real_b.ndim - 1)))

    def apply(z: torch.Tensor) -> torch.Tensor:
        zb = from_real(z, b)
        return a_real * as_real(operator.forward(operator.adjoint(zb))) + s * z

    v, _ = conjugate_gradients(apply, real_b, max_iterations=max_iterations, tolerance=tolerance)
    return from_real(v, b)


def solve_with_covariance(operator, b: torch.Tensor, *, covariance, noise_variance: torch.Tensor,
                          factor: torch.Tensor | float) -> torch.Tensor:
    """v with (A C A^T + Sigma_y) v = b per sample, C = factor ([B] or a number) times a `spectral.SpectralCovariance`
    (in image units), by conjugate gradients (at most COVARIANCE_MAX_ITERATIONS). Preconditioned by the same
    problem with A's own stationary part (stationary_preconditioner) where it has one, else by the exact solve
    for C ~ its average variance times I where the operator has a closed form. No graph is built."""
    with torch.no_grad():
        s = noise_variance.to(device=b.device, dtype=b.real.dtype if b.is_complex() else b.dtype)
        scale = _per_sample(torch.as_tensor(factor), b)

        precondition = stationary_preconditioner(operator, covariance, scale, s, b)
        if precondition is not None:
            # Its operators treat every channel alike, so they commute with the covariance's orthonormal colour
            # mixing: the whole solve runs on colour components, where C is one DCT filter per component
            # (same iterates, rotated; two colour mixes fewer per filter).
            gains = scale * covariance.variance

            def apply_components(z: torch.Tensor) -> torch.Tensor:
                return operator.forward(covariance.filter_components(operator.adjoint(z), gains)) + s * z

            v, _ = conjugate_gradients(apply_components, covariance.to_components(b), precondition=precondition,
                                      max_iterations=COVARIANCE_MAX_ITERATIONS)
            return covariance.from_components(v).to(b.dtype)

        def apply(z: torch.Tensor) -> torch.Tensor:
            return as_real(operator.forward(scale * covariance.apply(operator.adjoint(from_real(z, b))))) + s * z

        kind = closed_form(operator)
        # Exact solves only: solve() falls back to CG itself where its closed form needs scalar noise.
        if kind in ("diagonal", "block", "scalar") or (kind and s.numel() == 1):
            average = scale.reshape(-1) * covariance.mean_variance().to(b.device, s.dtype)

            def precondition(r: torch.Tensor) -> torch.Tensor:
                return as_real(solve(operator, from_real(r, b), scale=average, noise_variance=s))

        v, _ = conjugate_gradients(apply, as_real(b), precondition=precondition,
                                  max_iterations=COVARIANCE_MAX_ITERATIONS)
        return from_real(v, b)


def _negate_frequency(spectrum: torch.Tensor, dim: int) -> torch.Tensor:
    """spectrum(-f) along `dim` (FFT layout: frequency 0 first)."""
    return torch.roll(spectrum.flip(dim), 1, dim)


def stationary_preconditioner(operator, covariance, scale: torch.Tensor, s: torch.Tensor, like: torch.Tensor):
    """An approximate inverse of A C A^T + s I for a spectral C, for operators whose action is (nearly)
    diagonal in the DCT-II with C's:
    - a blur (its |h^|^2 on the covariance's reflected grid): the exact inverse where borders do not matter;
    - super-resolution: the inverse of the diagonal of A C A^T in the measurement grid's DCT-II (its
      shrinking matrices in DCT bases, squared), aliasing included: with the demo prior CG took 1-2
      iterations for 4x bicubic SR from sigma 10 to 0.3, against 5-47 with the isotropic closed form;
    - a mask K: K (C + s)^-1 K + (I - K) / s. With the demo prior CG takes 57-95 iterations for its 80%
      random mask at sigma 10, 5-18 from sigma 5 down (a 40 px box: 20-26, 3-17), on a smoothed random
      picture; with a photograph's x_t (picture plus noise) 100, the cap, at sigma 10 and 29 at sigma 2
      (box 58 and 12). A coarse space of the lowest 4x4 to 12x12 DCT modes (deflated CG) cut that to
      28-100 at sigma 10, for more work per solve than it saved (prototype); solving for C^1/2 A^T v in the
      image's DCT coordinates instead, (s + C^1/2 A^T A C^1/2) w = C^1/2 A^T r with a diagonal preconditioner,
      halved the transforms per iteration but needed 2-6x the iterations for the same accuracy of the
      update. Neither is done. Scaling C by the fraction kept p, as a zero-filled scattered sample keeps
      p of a smooth image's low frequencies, took 0-6 more on both masks at every noise level, so it is
      not done.
    It acts on colour components (covariance.to_components), as solve_with_covariance's solve does; these
    operators treat every channel alike (a mask: one for all channels), so they commute with the mixing.
    Symmetric positive definite. None for other operators, per-channel masks or per-element noise. At
    high noise C spans orders of magnitude across frequencies, which the isotropic preconditioner cannot
    follow (CG then ran into its cap of 100 iterations)."""
    if s.numel() != 1 or like.is_complex():
        return None
    height, width = covariance.size
    s = s.reshape(())
    if isinstance(operator, Convolution):
        # |h^|^2 on the reflected grid (the operator's own cached kernel FFT; real input, so columns 0..W
        # suffice), made even in each axis as the reflected grid's filters must be (exact for symmetric
        # kernels): averaging over -f_y does both, as |h^(f)|^2 = |h^(-f)|^2. Its first H x W bins are then
        # the filter's gains on the DCT-II coefficients.
        response = operator.kernel_spectrum((2 * height, 2 * width), like).abs().square()
        response = ((response + _negate_frequency(response, -2)) / 2)[..., :height, :width]
        inverse = 1 / (scale * response * covariance.variance + s)
        return lambda r: covariance.filter_components(r, inverse)
    if isinstance(operator, SuperResolution):
        # y = D_h x D_w^T per channel: in DCT bases, T = Q_out D Q_in^T per axis, and the diagonal of
        # A C A^T in the output's DCT-II is (T_h^2) variance (T_w^2)^T (squares elementwise), aliases included.
        shrink_h, shrink_w = (dct(dct(operator.axis_matrix(size, like), 0), 1).square() for size in (height, width))
        inverse = 1 / (scale * (shrink_h @ covariance.variance @ shrink_w.mT) + s)
        return lambda r: covariance.filter_components(r, inverse)
    if isinstance(operator, Masking):
        keep = operator.keep_weights(like)
        if keep.ndim >= 3 and keep.shape[-3] != 1:
            return None
        inverse = 1 / (scale * covariance.variance + s)
        return lambda r: keep * covariance.filter_components(keep * r, inverse) + (1 - keep) * r / s
    return None
