"""Random camera-shake kernels, after the "motionblur" generator (L. Borodenko) that the DPS
paper (Chung et al. 2023) used with size 61 and intensity 0.5.

The recipe, reimplemented here: a random walk of short steps (Beta(1, 30) lengths, longer and
more numerous with lower/higher intensity) whose directions stay within a cone that widens
with intensity and occasionally flips side (jitter); the walk is centred, randomly rotated,
drawn as a line on a canvas twice the kernel size, softened by a small Gaussian, shrunk by 2
and normalised to sum 1. Our rasteriser (dense point splatting, 2x2 averaging) differs from the
original's PIL drawing and Lanczos resize, so kernels are alike in law, not bit-identical.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks


def _walk(rng: np.random.Generator, diagonal: float, intensity: float) -> np.ndarray:
    """Complex positions of the walk (centred at 0, randomly rotated)."""
    max_length = 0.75 * diagonal * (rng.uniform() + rng.uniform(0, intensity ** 2))
    # (1 - intensity) shrinks the steps; the 0.01 keeps intensity 1 from needing endless steps.
    scale = (1 - intensity + 0.01) * diagonal
    steps: list[float] = []
    while sum(steps) < max_length:
        draw = rng.beta(1, 30, size=256) * scale
        steps.extend(draw[draw < max_length].tolist())
    steps_arr = np.asarray(steps)
    steps_arr = steps_arr[: int(np.searchsorted(np.cumsum(steps_arr), max_length)) + 1]

    max_angle = rng.uniform(0, intensity * math.pi)
    jitter = rng.beta(2, 20)
    angles = np.empty(len(steps_arr))
    angles[0] = rng.uniform(-math.pi, math.pi)
    for i in range(1, len(angles)):
        turn = rng.triangular(0, intensity * max_angle, max_angle + 1e-12)
        side = np.sign(angles[i - 1]) or 1.0
        angles[i] = -side * turn if rng.uniform() < jitter else side * turn
    path = np.cumsum(steps_arr * np.exp(1j * angles))
    return (path - path.mean()) * np.exp(1j * rng.uniform(0, math.pi))


def _draw(path: np.ndarray, canvas: int) -> np.ndarray:
    """Rasterise the polyline with bilinear splats every 0.25 px, saturating at 1 as a drawn
    line does."""
    image = np.zeros((canvas + 1, canvas + 1))
    points = [path[:1]]
    for a, b in zip(path[:-1], path[1:], strict=True):
        n = max(int(abs(b - a) / 0.25), 1)
        points.append(a + (b - a) * np.arange(1, n + 1) / n)
    p = np.concatenate(points) + canvas / 2 * (1 + 1j)
    x, y = p.real, p.imag
    inside = (x >= 0) & (y >= 0) & (x < canvas - 1) & (y < canvas - 1)
    x, y = x[inside], y[inside]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                      (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(image, (y0 + dy, x0 + dx), w)
    return np.minimum(image[:canvas, :canvas], 1.0)


def _soften(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image
    radius = int(math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    image = np.apply_along_axis(np.convolve, 0, image, g, mode="same")
    return np.apply_along_axis(np.convolve, 1, image, g, mode="same")


def camera_shake_kernel(size: int = 61, intensity: float = 0.5, seed: int = 0) -> torch.Tensor:
    """A random camera-shake blur kernel: float64 [size, size], non-negative, sum 1; the same
    seed always gives the same kernel. `size` >= 3 and odd; `intensity` in [0, 1]."""
    size = _checks.integer("size", size, minimum=3, odd=True)
    intensity = _checks.number("intensity", intensity, 0, 1)
    seed = _checks.seed("seed", seed)
    rng = np.random.default_rng(seed)
    canvas = 2 * size
    diagonal = math.sqrt(2) * canvas
    image = _draw(_walk(rng, diagonal, intensity), canvas)
    image = _soften(image, int(diagonal * 0.01))
    kernel = image.reshape(size, 2, size, 2).mean(axis=(1, 3))
    kernel = torch.from_numpy(np.clip(kernel, 0, None))
    total = kernel.sum()
    if total <= 0:  # cannot happen for a centred walk; keep the contract anyway
        kernel[size // 2, size // 2], total = 1.0, 1.0
    return kernel / total
