"""DPS Posterior Statistics: a batch of posterior samples in; their mean, a per-pixel standard
deviation heat map and a text report out.

The posterior mean is the estimate that minimises the expected squared error (the fair comparison
with classical estimators in PSNR); the spread across samples shows where the measurement leaves
the image undetermined (holes, lost fine detail) and where it does not.
"""

from __future__ import annotations

import math

import torch
from comfy_api.latest import io

from . import types
from .image_layout import to_comfy, to_engine

#: An "inferno"-like colour ramp (black -> purple -> red -> orange -> pale yellow): ordered in
#: lightness, readable in grey print, distinct from photographs.
RAMP = torch.tensor([
    [0.001, 0.000, 0.014], [0.258, 0.039, 0.406], [0.578, 0.148, 0.404],
    [0.865, 0.317, 0.226], [0.988, 0.645, 0.040], [0.988, 0.998, 0.645],
])


def heat_map(values: torch.Tensor, top: float) -> torch.Tensor:
    """values [B, H, W] >= 0 as colours [B, 3, H, W]: 0 black, `top` and above pale yellow."""
    position = (values / top).clamp(0, 1) * (len(RAMP) - 1)
    low = position.floor().long().clamp(max=len(RAMP) - 2)
    fraction = (position - low).unsqueeze(-1)
    colours = RAMP[low] * (1 - fraction) + RAMP[low + 1] * fraction
    return colours.permute(0, 3, 1, 2)


def statistics(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [1, C, H, W], per-pixel standard deviation averaged over channels [1, H, W]) of a
    batch [B, C, H, W] of B >= 2 samples (unbiased variance)."""
    mean = samples.mean(dim=0, keepdim=True)
    spread = samples.var(dim=0, unbiased=True).mean(dim=0, keepdim=True).sqrt()
    return mean, spread


def report(count: int, spread: torch.Tensor, top: float,
           residuals: tuple[float | None, list[float]] | None) -> str:
    lines = [
        f"{count} samples. Posterior mean: the average image (the least-squares estimate).",
        f"Per-pixel standard deviation across samples (0-1 pixel scale, averaged over channels): "
        f"mean {spread.mean().item():.4f}, 99th percentile {spread.flatten().quantile(0.99).item():.4f}, "
        f"max {spread.max().item():.4f}.",
        f"Heat map scale: black = 0, pale yellow = {top:.4f} or more.",
        f"Monte Carlo error of the mean: about {spread.mean().item() / math.sqrt(count):.4f} per pixel.",
    ]
    if residuals is not None:
        mean_residual, sample_residuals = residuals
        if mean_residual is not None:
            lines.append(f"Residual of the mean against the measurement: {mean_residual:.3f} x noise level.")
        lines.append(f"Residuals of the samples: {', '.join(f'{v:.3f}' for v in sample_residuals)} x noise level.")
    return "\n".join(lines)


class DPSPosteriorStatistics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DPSPosteriorStatistics",
            display_name="DPS Posterior Statistics (mean and uncertainty)",
            category="DPS/analysis",
            description="Several posterior samples of the same measurement in (set batch_size on the latent, "
                        "then decode); the posterior mean (best in PSNR), a heat map of the per-pixel standard "
                        "deviation (where the measurement leaves the image uncertain) and a report out.",
            inputs=[
                io.Image.Input("samples", tooltip="A batch of at least 2 posterior samples of one measurement."),
                io.Float.Input("heat_scale", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Leave at 0 to scale the heat map to its own maximum. Set a value (e.g. "
                                       "0.1) to compare maps across runs: that standard deviation shows as pale "
                                       "yellow."),
                types.Measurement.Input("measurement", optional=True,
                                        tooltip="Optional: the measurement the samples explain; the report then "
                                                "gives the residual of the mean and of each sample."),
            ],
            outputs=[
                io.Image.Output(display_name="mean", tooltip="The posterior mean image."),
                io.Image.Output(display_name="std_heat_map",
                                tooltip="Per-pixel standard deviation across samples (scale in the report)."),
                io.String.Output(display_name="report", tooltip="The figures behind the two images."),
            ],
        )

    @classmethod
    def execute(cls, samples, heat_scale=0.0, measurement=None) -> io.NodeOutput:
        pictures = to_engine(samples, "samples")
        if pictures.shape[0] < 2:
            raise ValueError("samples: expected a batch of at least 2 posterior samples (set batch_size on the "
                             f"latent), got {pictures.shape[0]}")
        if not (heat_scale >= 0 and math.isfinite(heat_scale)):
            raise ValueError(f"heat_scale: expected 0 (automatic) or a positive number, got {heat_scale}")
        mean, spread = statistics(pictures)
        top = heat_scale if heat_scale > 0 else max(spread.max().item(), 1e-6)
        residuals = None
        if measurement is not None:
            measured = measurement.to(device=pictures.device, dtype=pictures.dtype)
            measured.check_image(pictures)
            # A measurement per sample has no single image its mean would explain.
            mean_residual = float(measured.normalized_residual(mean)[0]) if measured.batch_size == 1 else None
            residuals = (mean_residual, [float(v) for v in measured.normalized_residual(pictures)])
        return io.NodeOutput(to_comfy(mean), to_comfy(heat_map(spread, top)),
                             report(pictures.shape[0], spread, top, residuals))


NODES = [DPSPosteriorStatistics]
