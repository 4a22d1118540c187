"""A measurement: the observed y together with the operator and noise model that produced it.

y has a batch axis first. A batch-1 y serves an image batch of any size (every image is
compared with the same observation); a batch-N y pairs item by item with an image batch of N.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .noise import NoiseModel
from .operators.base import Operator, tensor_to


def as_real(t: torch.Tensor) -> torch.Tensor:
    """Complex tensors (k-space) as real pairs (torch.view_as_real), real ones as they are."""
    return torch.view_as_real(t) if t.is_complex() else t


@dataclass(frozen=True)
class Measurement:
    """y [B, ...] observed through `operator` with `noise` (GaussianNoise or PoissonNoise);
    image_size = (H, W) of the image it explains, derived from y when not given.
    The tensors are stored as given and never modified; callers clone if they will edit."""

    y: torch.Tensor
    operator: Operator
    noise: NoiseModel
    image_size: tuple[int, int] | None = None

    def __post_init__(self):
        if not isinstance(self.y, torch.Tensor) or self.y.dim() < 3:
            shape = tuple(self.y.shape) if isinstance(self.y, torch.Tensor) else type(self.y)
            raise ValueError(f"measurement: expected a tensor [B, ..., h, w], got {shape}")
        if not isinstance(self.noise, NoiseModel):
            raise ValueError(f"noise: expected a noise model (GaussianNoise or PoissonNoise), "
                             f"got {type(self.noise).__name__}")
        size = self.image_size
        if size is None:
            size = self.operator.image_size(tuple(self.y.shape[-2:]))
        object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))

    def to(self, device=None, dtype: torch.dtype | None = None) -> Measurement:
        """A copy with y, the operator and the noise model on `device` (and y's values, the
        operator's tensors in `dtype` when given; complex y in the matching complex dtype).
        This measurement is left as it is."""
        return dataclasses.replace(self, y=tensor_to(self.y, device, dtype),
                                   operator=self.operator.to(device, dtype), noise=self.noise.to(device, dtype))

    @property
    def batch_size(self) -> int:
        return self.y.shape[0]

    @property
    def num_elements(self) -> int:
        """Real numbers per batch item (a complex entry counts 2)."""
        return as_real(self.y[0]).numel()

    def mean_noise_variance(self) -> float:
        """The noise variance averaged over the measured elements (of y itself for Poisson noise)."""
        std = self.noise.std(self.y)
        return float(std.square().mean()) if std.dim() else float(std) ** 2

    def check_image(self, image: torch.Tensor) -> None:
        """ValueError unless `image` is a batch this measurement can explain."""
        if image.dim() != 4:
            raise ValueError(f"image: expected a tensor of shape [B, C, H, W], "
                             f"got {tuple(image.shape)}")
        if self.batch_size not in (1, image.shape[0]):
            raise ValueError(f"measurement batch size {self.batch_size} does not match the "
                             f"image batch size {image.shape[0]} (a measurement batch must be "
                             f"1 or equal to the image batch)")
        if tuple(image.shape[-2:]) != self.image_size:
            raise ValueError(f"image: size {image.shape[-1]}x{image.shape[-2]} (width x height) does not "
                             f"match the measurement's image size {self.image_size[1]}x{self.image_size[0]}")

    def residual(self, image: torch.Tensor) -> torch.Tensor:
        """y - A(image), batched like the image."""
        self.check_image(image)
        prediction = self.operator(image)
        return self.y.to(device=prediction.device, dtype=prediction.dtype) - prediction

    def _std(self, like: torch.Tensor) -> torch.Tensor:
        y = self.y.to(device=like.device, dtype=like.dtype)
        return self.noise.std(y)

    def whitened_residual(self, image: torch.Tensor) -> torch.Tensor:
        """Residual divided by the noise std, as a real tensor (complex as real pairs, i.e.
        torch.view_as_real layout); at the noise level its entries have unit variance."""
        residual = self.residual(image)
        return as_real(residual) / self._std(residual)

    def chi2(self, image: torch.Tensor) -> torch.Tensor:
        """Sum of squared whitened residuals per image, [B]."""
        w = self.whitened_residual(image)
        return w.square().reshape(w.shape[0], -1).sum(dim=1)

    def normalized_residual(self, image: torch.Tensor) -> torch.Tensor:
        """sqrt(chi2 / num_elements) per image, [B]: about 1 when the image explains y down
        to the noise, much more when it does not. Entries that carry no noise pull it below 1:
        pixels an inpainting mask zeroes under Poisson noise, or unsampled k-space left at 0
        in a loaded file (simulated Gaussian noise lands there too, keeping the ratio at 1)."""
        return torch.sqrt(self.chi2(image) / self.num_elements)


def simulate(image: torch.Tensor, operator: Operator, noise: NoiseModel, seed: int = 0) -> Measurement:
    """Measure `image` [B, C, H, W]: y = noise.sample(operator(image), seed), detached."""
    with torch.no_grad():
        clean = operator(image)
        y = noise.sample(clean, seed)
    return Measurement(y=y, operator=operator, noise=noise, image_size=tuple(image.shape[-2:]))
