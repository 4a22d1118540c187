"""An analytic Gaussian prior wrapped as a real ComfyUI diffusion model (tests only).

x0 ~ N(mu, Sigma) over a small pixel-space "latent" [1, 3, H, W] (values roughly in [-1, 1]).
Its exact denoiser E[x0 | x_t] is known in closed form, and for a linear operator with Gaussian
noise so is the posterior. The network slot of ComfyUI's BaseModel holds a module that returns,
for the model family at hand (EPS, V_PREDICTION or FLOW), exactly the output ComfyUI's
model-sampling converts back into that denoiser, so ComfyUI's own schedules, input scaling,
noise scaling and samplers are all exercised.
"""

from __future__ import annotations

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models_base

from .tiny_models import MODEL_TYPES


class GaussianPrior:
    """N(mu, Sigma) over flattened images of shape `shape` (float64 maths)."""

    def __init__(self, shape=(3, 4, 4), seed=0, correlation=1.5, scale=0.3):
        self.shape = tuple(shape)
        generator = torch.Generator().manual_seed(seed)
        c, h, w = self.shape
        n = c * h * w
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], 1).double()
        spatial = torch.exp(-torch.cdist(pos, pos) ** 2 / (2 * correlation**2))
        colour = torch.tensor([[1.0, 0.7, 0.5], [0.7, 1.0, 0.7], [0.5, 0.7, 1.0]], dtype=torch.float64)
        self.cov = scale**2 * torch.kron(colour, spatial) + 1e-3 * torch.eye(n, dtype=torch.float64)
        self.mean = (0.4 * torch.rand(n, generator=generator, dtype=torch.float64) - 0.2)
        self.n = n

    def sample(self, count: int, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        chol = torch.linalg.cholesky(self.cov)
        z = torch.randn(count, self.n, generator=generator, dtype=torch.float64)
        return (self.mean + z @ chol.T).reshape(count, *self.shape)

    def denoiser(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t] for x_t = alpha x0 + sigma eps, per sample (alpha, sigma of shape [B])."""
        flat = x.reshape(x.shape[0], -1).double()
        out = torch.empty_like(flat)
        eye = torch.eye(self.n, dtype=torch.float64)
        pairs = torch.stack([alpha.double(), sigma.double()], 1)
        for a, s in torch.unique(pairs, dim=0).tolist():  # samplers share sigma across a batch
            rows = (pairs[:, 0] == a) & (pairs[:, 1] == s)
            gain = a * self.cov @ torch.linalg.inv(a * a * self.cov + s * s * eye)
            out[rows] = self.mean + (flat[rows] - a * self.mean) @ gain.T
        return out.reshape(x.shape)

    def conditional(self, x_t: torch.Tensor, alpha: float, sigma: float):
        """Mean [B, n] and covariance [n, n] of x0 | x_t."""
        eye = torch.eye(self.n, dtype=torch.float64)
        prec = torch.linalg.inv(self.cov)
        if alpha == 0:
            return self.mean.expand(x_t.shape[0], -1), self.cov
        cov = torch.linalg.inv(prec + (alpha / sigma) ** 2 * eye)
        flat = x_t.reshape(x_t.shape[0], -1).double()
        mean = (prec @ self.mean + alpha * flat / sigma**2) @ cov.T
        return mean, cov


def linear_posterior(mean, cov, matrix, offset, y, noise_sigma):
    """Posterior N(m, C) of x given y = matrix @ x + offset + N(0, noise_sigma^2) and x ~ N(mean, cov).

    `mean` may be [B, n] (one prior mean per sample) with a shared `cov`; y is [m] or [B, m]."""
    gram = matrix @ cov @ matrix.T + noise_sigma**2 * torch.eye(matrix.shape[0], dtype=torch.float64)
    gain = cov @ matrix.T @ torch.linalg.inv(gram)
    residual = y - offset - mean @ matrix.T
    return mean + residual @ gain.T, cov - gain @ matrix @ cov


def operator_matrix(operator, shape) -> torch.Tensor:
    """The matrix of a linear operator on images of `shape`, column by column (float64)."""
    n = int(torch.tensor(shape).prod())
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return operator.forward(basis).reshape(n, -1).T.contiguous()


def image_posterior(prior: GaussianPrior, operator, y: torch.Tensor, noise_sigma: float):
    """The exact posterior of x given a measurement y of the image (x + 1) / 2.

    y = A (x + 1) / 2 + noise = B x + c + noise with B = A / 2 and c = A 1 / 2. Returns
    (B, c, posterior mean [n], posterior covariance [n, n])."""
    matrix = operator_matrix(operator, prior.shape) / 2
    offset = matrix @ torch.ones(prior.n, dtype=torch.float64)
    mean, cov = linear_posterior(prior.mean[None], prior.cov, matrix, offset, y.reshape(-1).double(), noise_sigma)
    return matrix, offset, mean[0], cov


class ExactDenoiserNet(torch.nn.Module):
    """Stands in the UNet slot: returns the family's model output for the exact denoiser."""

    def __init__(self, prior: GaussianPrior, model_type: str):
        super().__init__()
        self.prior = prior
        self.model_type = model_type
        self.dtype = torch.float32
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device and dtype

    def forward(self, xc, t, context=None, control=None, transformer_options=None, **kwargs):
        sigma = transformer_options["sigmas"].double().reshape(-1)
        s = sigma.reshape(-1, 1, 1, 1)
        if self.model_type == "flow":
            x = xc.double()
            alpha = 1 - sigma
            denoised = self.prior.denoiser(x, alpha, sigma)
            return ((x - denoised) / s).to(xc.dtype)  # CONST: denoised = x - sigma * v
        x = xc.double() * (s**2 + 1).sqrt()  # EPS/V input scaling: xc = x / sqrt(sigma^2 + 1)
        denoised = self.prior.denoiser(x, torch.ones_like(sigma), sigma)
        if self.model_type == "eps":
            return ((x - denoised) / s).to(xc.dtype)
        # V_PREDICTION: denoised = x / (s^2 + 1) - v * s / sqrt(s^2 + 1)
        return ((x / (s**2 + 1) - denoised) * (s**2 + 1).sqrt() / s).to(xc.dtype)


class GaussianPriorConfig(comfy.supported_models_base.BASE):
    unet_config = {"disable_unet_model_creation": True}
    unet_extra_config = {}
    latent_format = comfy.latent_formats.ChromaRadiance
    memory_usage_factor = 1.0


def gaussian_prior_model(prior: GaussianPrior, model_type: str = "eps", device=None):
    """A ComfyUI ModelPatcher whose denoiser is the exact one of `prior`, loaded on `device`
    (default ComfyUI's device; the prior's matrices are on the CPU, so pass the CPU where ComfyUI
    would pick a GPU)."""
    config = GaussianPriorConfig({"disable_unet_model_creation": True})
    if model_type == "flow":
        config.sampling_settings = {"shift": 1.0, "multiplier": 1000}
    model = comfy.model_base.BaseModel(config, model_type=MODEL_TYPES[model_type], device="cpu")
    model.diffusion_model = ExactDenoiserNet(prior, model_type)
    device = comfy.model_management.get_torch_device() if device is None else device
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)
