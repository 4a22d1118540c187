"""ComfyUI IMAGE <-> engine layout (nodes/image_layout.py): channels, copies, and clear errors."""

import pytest
import torch

from testkit.host import load_pack

load_pack()

from comfyui_dps.nodes.image_layout import to_comfy, to_engine  # noqa: E402


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_to_engine_gives_an_rgb_copy_for_every_channel_count(channels):
    image = torch.rand(2, 5, 7, channels, dtype=torch.float64)
    out = to_engine(image)
    assert out.shape == (2, 3, 5, 7) and out.dtype == torch.float32 and out.is_contiguous()
    source = image[..., :1].expand(-1, -1, -1, 3) if channels < 3 else image[..., :3]
    assert torch.equal(out, source.permute(0, 3, 1, 2).float())
    out.fill_(7)  # a copy: the input is never aliased
    assert image.max() <= 1


def test_to_engine_names_the_input_in_its_errors():
    with pytest.raises(ValueError, match=r"picture: expected an IMAGE of shape \[batch, height, width, channels\]"):
        to_engine(torch.rand(5, 7, 3), "picture")
    with pytest.raises(ValueError, match="picture: expected 1 .* or 4 .* channels, got 5"):
        to_engine(torch.rand(1, 5, 7, 5), "picture")
    with pytest.raises(ValueError, match="picture: contains NaN or infinite pixel values"):
        to_engine(torch.full((1, 2, 2, 3), float("nan")), "picture")
    with pytest.raises(ValueError, match="picture: expected real floating-point pixel values"):
        to_engine(torch.zeros(1, 2, 2, 3, dtype=torch.uint8), "picture")


def test_to_comfy_shows_grey_clamps_and_never_aliases():
    picture = torch.tensor([[[[-1.0, 0.5], [2.0, 0.25]]]])  # one channel
    out = to_comfy(picture)
    assert out.shape == (1, 2, 2, 3)
    assert torch.equal(out[..., 0], torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])) and torch.equal(out[..., 0], out[..., 2])
    rgb = torch.rand(1, 3, 2, 2)
    shown = to_comfy(rgb)
    shown.fill_(0)
    assert rgb.min() >= 0 and rgb.max() > 0
    assert torch.equal(to_comfy(torch.ones(1, 2, 2, 2) * torch.tensor([0.2, 0.6]).reshape(1, 2, 1, 1))[..., 0],
                       torch.full((1, 2, 2), 0.4))
    complex_picture = torch.full((1, 1, 2, 2), 0.6 + 0.8j)
    torch.testing.assert_close(to_comfy(complex_picture), torch.ones(1, 2, 2, 3))
