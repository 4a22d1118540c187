"""The one size rule between a latent and a measurement, with errors that say how to fix it."""

from __future__ import annotations


def check_sizes(measurement, scale: int, latent_shape, name: str = "latent_image") -> None:
    """ValueError unless a latent of `latent_shape` renders (at `scale` image pixels per latent
    pixel) to the image size the measurement explains, in a batch the measurement can serve."""
    height, width = latent_shape[-2] * scale, latent_shape[-1] * scale
    want_h, want_w = measurement.image_size
    if (height, width) != (want_h, want_w):
        if want_h % scale or want_w % scale:
            raise ValueError(
                f"measurement: its image size {want_w}x{want_h} is not a multiple of the VAE's scale {scale}, so "
                f"no latent renders to it; crop or pad the measured image to a multiple of {scale}"
            )
        raise ValueError(
            f"{name}: a {latent_shape[-1]}x{latent_shape[-2]} latent renders to {width}x{height} pixels, "
            f"but the measurement explains {want_w}x{want_h} images: use a {want_w // scale}x{want_h // scale} "
            f"latent (the 'DPS Empty Latent' node makes one)"
        )
    batch, measured = latent_shape[0], measurement.y.shape[0]
    if measured not in (1, batch):
        raise ValueError(
            f"{name}: batch {batch} does not match the measurement's batch {measured} "
            "(a measurement of batch 1 serves any batch; otherwise the batches must be equal)"
        )
