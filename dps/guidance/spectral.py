"""Cov[x0 | x_t] of a pixel model, estimated from the denoiser's own frequency response.

Tweedie's second moment makes the covariance the denoiser's Jacobian, (sigma_t^2 / alpha_t) dD/dx_t,
which costs a network pass per direction. Without any extra pass, one denoiser call already shows
how the model treats each spatial frequency: for a stationary Gaussian prior (power spectrum P(f)) the
denoiser is the Wiener filter, D^(f) = g(f) x^(f) with g = alpha P / (alpha^2 P + sigma^2), so the gain

    g(f) = Re(D^(f) conj(x^(f))) / |x^(f)|^2,   Cov[x0 | x_t] = (sigma_t^2 / alpha_t) F^-1 diag(g) F,

is read off the pair (x_t, D(x_t)) the sampler already has. Natural images are close to stationary,
with spectra that depend mostly on |f|, so the gain is pooled over rings of equal |f| (a least-squares
fit per ring, which also makes it robust for a non-linear denoiser) and clamped to [0, 1/alpha] (a
covariance between 0 and the prior's sigma^2 / alpha^2). Two refinements from imaging practice:

- the image is extended by half-sample symmetry, so the model has reflecting borders, not the
  wrap-around of a circulant that would correlate opposite edges; filters even in frequency on that
  extension are diagonal in the DCT-II basis, so the gain is fitted, and applied, per DCT coefficient
  (dct.py: transforms of the image's own size, a product with the cached DCT matrix);
- for 3 channels the gain is fitted per opponent-colour component (luma and two chroma axes,
  orthonormal), which captures the strong correlation between R, G and B.

The estimate replaces the isotropic r_t^2 I that pigdm's solve and proximal's prior term assume (it
is exact for a stationary prior, and equals r_t^2 I-type covariances for an uncorrelated one). It
needs x_t and D(x_t) on the operator's own pixel grid, so it serves pixel models only: a latent
model's covariance seen through the decoder is not stationary in latent frequencies.
"""

from __future__ import annotations

import torch

from .core import MIN_ALPHA, at_least_float32, posterior_scale
from .dct import dct2, idct2


def _colour_basis(channels: int, like: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows: luma and two opponent axes for 3 channels, else the channels themselves."""
    if channels != 3:
        return torch.eye(channels, dtype=like.dtype, device=like.device)
    basis = torch.tensor([[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=like.dtype, device=like.device)
    return basis / basis.norm(dim=1, keepdim=True)


def _mix(t: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,bc...->bk...", basis, t)


def _rings(height: int, width: int, device) -> torch.Tensor:
    """Ring index of each DCT-II coefficient of a height x width grid: its frequency |f| (k / 2n cycles per
    pixel per axis, as on the reflected grid's FFT) in steps of 1 / max(2 height, 2 width)."""
    fy = torch.arange(height, device=device) / (2 * height)
    fx = torch.arange(width, device=device) / (2 * width)
    radius = (fy[:, None].square() + fx[None, :].square()).sqrt()
    return torch.round(radius * max(2 * height, 2 * width)).long()


class SpectralCovariance:
    """Cov[x0 | x_t] per sample, in model units, from x_t and D(x_t) ([B, C, H, W]); `apply(z)` multiplies
    a batch shaped like x by it (times an optional factor, e.g. the renderer's scale squared)."""

    def __init__(self, x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, alpha: torch.Tensor):
        x = at_least_float32(x.detach())
        denoised = at_least_float32(denoised.detach()).to(x.device)
        batch, channels, height, width = x.shape
        self.size = (height, width)
        self.basis = _colour_basis(channels, x)
        spectrum_x, spectrum_d = self._spectrum(x), self._spectrum(denoised)
        rings = _rings(height, width, x.device)
        count = int(rings.max()) + 1
        index = rings.reshape(-1)
        cross = (spectrum_d * spectrum_x).reshape(batch, channels, -1)
        power = spectrum_x.square().reshape(batch, channels, -1)
        fit = torch.zeros(batch, channels, count, dtype=x.dtype, device=x.device)
        cross = fit.index_add(-1, index, cross)
        power = fit.index_add(-1, index, power)
        alpha = at_least_float32(alpha).reshape(-1).to(x.device)
        sigma = at_least_float32(sigma).reshape(-1).to(x.device)
        gain = cross / power.clamp(min=torch.finfo(x.dtype).tiny)
        gain = torch.minimum(gain.clamp(min=0), 1 / alpha.clamp(min=MIN_ALPHA).reshape(-1, 1, 1))
        variance = posterior_scale(sigma, alpha).expand(batch).reshape(-1, 1, 1) * gain
        #: Per sample, colour component and DCT-II coefficient [B, C, H, W].
        self.variance = variance[..., rings]

    def apply(self, z: torch.Tensor, factor: torch.Tensor | float = 1.0) -> torch.Tensor:
        """factor * Cov z for z shaped like x (symmetric, positive semi-definite)."""
        return factor * self.filter(z, self.variance)

    def filter(self, z: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """z filtered, per sample and colour component, by `gains` on the DCT-II coefficients of z's grid
        ([B or 1, C or 1, height, width], the covariance's or another, e.g. a measurement's; the result is
        symmetric in z)."""
        return self.from_components(self.filter_components(self.to_components(z), gains))

    def to_components(self, t: torch.Tensor) -> torch.Tensor:
        """t's colour components (an orthonormal change of basis over the channels)."""
        return _mix(at_least_float32(t), self.basis)

    def from_components(self, t: torch.Tensor) -> torch.Tensor:
        """The inverse of to_components."""
        return _mix(t, self.basis.T)

    def filter_components(self, z: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """`filter` for z already in colour components (to_components): a solve whose operator treats every
        channel alike can stay in them and skip two colour mixes per filter."""
        return idct2(dct2(z) * gains.to(z.dtype))

    def _spectrum(self, t: torch.Tensor) -> torch.Tensor:
        """The DCT-II of t's colour components [B, C, H, W] (the reflected grid's FFT, without its
        redundant mirror bins and phases)."""
        return dct2(self.to_components(t))

    def floored(self) -> "SpectralCovariance":
        """A copy whose variance is at least its own average per sample (mean_variance) in every colour
        component and coefficient: the shape at low frequencies is kept, the small high-frequency variances
        are raised, so a solve with it never weights a residual component by more than the isotropic solve
        at that average variance would (pigdm's mask solves; see pigdm.py)."""
        copy = object.__new__(SpectralCovariance)
        copy.__dict__.update(self.__dict__)
        floor = self.mean_variance().reshape(-1, *([1] * (self.variance.ndim - 1)))
        copy.variance = torch.maximum(self.variance, floor)
        return copy

    def mean_variance(self) -> torch.Tensor:
        """The average variance per element, per sample [B] (tr Cov / n)."""
        return self.variance.reshape(self.variance.shape[0], -1).mean(dim=1)
