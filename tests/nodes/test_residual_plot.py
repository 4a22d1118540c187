"""The residual plot (nodes/residual_plot.py): a real picture whose curves sit where the values say."""

import math

import torch

from testkit.host import load_pack

load_pack()

from comfyui_dps.nodes.residual_plot import COLOURS, FONT_PX, residual_plot  # noqa: E402


def test_a_comfy_image_with_one_curve_per_sample_falling_to_the_noise_level():
    residuals = [[100.0, 3.0], [10.0, 2.0], [1.0, 1.0]]  # three calls, two samples
    image = residual_plot(residuals, final=[1.0, 1.0], width=400, height=300)
    assert image.shape == (1, 300, 400, 3) and 0 <= image.min() and image.max() <= 1
    pixels = (image[0] * 255).round().to(torch.int64)
    for colour in COLOURS[:2]:
        hits = (pixels == torch.tensor(colour)).all(dim=-1).nonzero()
        assert len(hits) > 20, colour
        # The curve starts high on the left (log scale) and ends lower on the right.
        left = hits[hits[:, 1] < hits[:, 1].min() + 10]
        right = hits[hits[:, 1] > hits[:, 1].max() - 10]
        assert left[:, 0].float().mean() < right[:, 0].float().mean()
    assert not (pixels == torch.tensor(COLOURS[2])).all(dim=-1).any()  # no third sample


def test_no_steps_and_odd_values_still_draw():
    assert residual_plot([], final=[]).shape == (1, 400, 640, 3)
    image = residual_plot([[0.0, math.inf], [float("nan"), 1e-9]], final=[math.nan, 0.5])
    assert bool(torch.isfinite(image).all())


def test_the_labels_are_drawn_large_enough_to_read_when_the_preview_shrinks_the_plot():
    """Text of FONT_PX (18) pixels: dark pixels of the y-axis labels span at least 12 rows per decade label
    (Pillow's default bitmap font, 11 px, was unreadable in a Preview Image node at 100% zoom)."""
    image = residual_plot([[100.0], [1.0]], final=[1.0])
    dark = (image[0] < 0.3).all(dim=-1)
    labels = dark[:, : 4 * FONT_PX - 10]  # the column left of the axis holds only the decade labels
    rows = labels.any(dim=1).nonzero().flatten()
    assert len(rows) > 0
    runs, start = [], int(rows[0])
    for previous, row in zip(rows[:-1].tolist(), rows[1:].tolist(), strict=True):
        if row != previous + 1:
            runs.append(previous - start + 1)
            start = row
    runs.append(int(rows[-1]) - start + 1)
    assert max(runs) >= 12, runs
