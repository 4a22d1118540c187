"""Operator nodes through the real ComfyUI node classes, run under inference mode as ComfyUI runs them.

Each node must build exactly the engine operator its widgets describe (checked by applying both to
the same picture), report bad values with the input's name, and never modify its inputs.
"""

import hashlib

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

from comfy_api.latest import io  # noqa: E402

from comfyui_dps.dps.operators import (  # noqa: E402
    Colorization,
    Composition,
    FourierUndersampling,
    GaussianBlur,
    Inpainting,
    MotionBlur,
    PhaseRetrieval,
    RandomInpainting,
    SuperResolution,
    camera_shake_kernel,
)

nodes = pack.nodes.operator_nodes


def run(node, **inputs):
    """node.execute as ComfyUI calls it: under inference mode; returns the output tuple."""
    with torch.inference_mode():
        out = node.execute(**inputs)
    assert isinstance(out, io.NodeOutput)
    return out.result


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def picture(batch=1, height=48, width=48, channels=3, seed=0):
    """A ComfyUI IMAGE [B, H, W, C] in [0, 1]."""
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def engine(image):
    return image[..., :3].permute(0, 3, 1, 2).contiguous()


MASK = (torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(3)) > 0.5).float()

CASES = {
    "inpainting": (nodes.DPSInpaintingOperator, {"mask": MASK}, lambda: Inpainting(MASK)),
    "random_inpainting": (nodes.DPSRandomInpaintingOperator, {"missing_fraction": 0.7, "seed": 5},
                          lambda: RandomInpainting(0.7, 5)),
    "super_resolution": (nodes.DPSSuperResolutionOperator, {"scale_factor": 4, "kernel": "bicubic"},
                         lambda: SuperResolution(4, "bicubic")),
    "super_resolution_average": (nodes.DPSSuperResolutionOperator, {"scale_factor": 3, "kernel": "average"},
                                 lambda: SuperResolution(3, "average")),
    "gaussian_blur": (nodes.DPSGaussianBlurOperator, {"kernel_size": 9, "sigma": 1.5}, lambda: GaussianBlur(9, 1.5)),
    "motion_blur": (nodes.DPSMotionBlurOperator, {"kernel_size": 15, "intensity": 0.5, "seed": 2},
                    lambda: MotionBlur(camera_shake_kernel(15, 0.5, 2))),
    "colorization": (nodes.DPSColorizationOperator, {}, Colorization),
    "fourier": (nodes.DPSFourierUndersamplingOperator, {"acceleration": 4.0, "center_fraction": 0.08, "seed": 1},
                lambda: FourierUndersampling(4.0, 0.08, 1)),
    "phase_retrieval": (nodes.DPSPhaseRetrievalOperator, {"oversampling": 2.0}, lambda: PhaseRetrieval(2.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_node_operator_equals_the_engine_operator(case):
    node, inputs, build = CASES[case]
    (operator,) = run(node, **inputs)
    reference = build()
    assert type(operator) is type(reference)
    x = engine(picture())
    with torch.inference_mode():
        assert torch.equal(operator(x), reference(x)), case


def test_defaults_follow_the_dps_paper():
    defaults = {}
    for node in nodes.NODES:
        for item in node.define_schema().inputs:
            defaults[(node.define_schema().node_id, item.id)] = getattr(item, "default", None)
    assert defaults[("DPSGaussianBlurOperator", "kernel_size")] == 61
    assert defaults[("DPSGaussianBlurOperator", "sigma")] == 3.0
    assert defaults[("DPSMotionBlurOperator", "kernel_size")] == 61
    assert defaults[("DPSMotionBlurOperator", "intensity")] == 0.5
    assert defaults[("DPSSuperResolutionOperator", "scale_factor")] == 4
    assert defaults[("DPSSuperResolutionOperator", "kernel")] == "bicubic"
    assert defaults[("DPSRandomInpaintingOperator", "missing_fraction")] == 0.92
    # Every default builds a working operator (MASK and operator inputs aside).
    for node, kwargs in ((nodes.DPSGaussianBlurOperator, {}), (nodes.DPSMotionBlurOperator, {}),
                         (nodes.DPSSuperResolutionOperator, {}), (nodes.DPSRandomInpaintingOperator, {}),
                         (nodes.DPSFourierUndersamplingOperator, {}), (nodes.DPSPhaseRetrievalOperator, {})):
        node_id = node.define_schema().node_id
        values = {k[1]: v for k, v in defaults.items() if k[0] == node_id and v is not None}
        (operator,) = run(node, **values, **kwargs)
        with torch.inference_mode():
            operator(engine(picture(height=64, width=64)))


def test_every_node_is_documented():
    for node in nodes.NODES:
        schema = node.define_schema()
        assert schema.node_id.startswith("DPS") and schema.category == "DPS/operators", schema.node_id
        assert schema.display_name and " " in schema.display_name and schema.display_name != schema.node_id
        assert schema.description.strip(), schema.node_id
        for item in schema.inputs:
            assert item.tooltip, (schema.node_id, item.id)
        assert schema.outputs, schema.node_id
        for item in schema.outputs:
            assert item.tooltip and item.display_name, (schema.node_id, item.display_name)
    ids = [node.define_schema().node_id for node in nodes.NODES]
    assert set(ids) == {
        "DPSInpaintingOperator", "DPSRandomInpaintingOperator", "DPSSuperResolutionOperator",
        "DPSGaussianBlurOperator", "DPSMotionBlurOperator", "DPSColorizationOperator",
        "DPSFourierUndersamplingOperator", "DPSPhaseRetrievalOperator", "DPSComposeOperators",
        "DPSPreviewOperator",
    }


def test_operator_outputs_are_the_custom_socket_type():
    for node in nodes.NODES:
        schema = node.define_schema()
        if schema.node_id != "DPSPreviewOperator":
            assert [o.get_io_type() for o in schema.outputs] == ["DPS_OPERATOR"], schema.node_id


@pytest.mark.parametrize("factor", [5, 6, 7])
def test_unsupported_super_resolution_factor_is_a_clear_error(factor):
    with pytest.raises(ValueError, match=r"^scale_factor: expected one of 2, 3, 4, 8"):
        run(nodes.DPSSuperResolutionOperator, scale_factor=factor, kernel="bicubic")
    message = nodes.DPSSuperResolutionOperator.validate_inputs(scale_factor=factor)
    assert isinstance(message, str) and message.startswith("scale_factor:") and "2, 3, 4, 8" in message


@pytest.mark.parametrize("factor", [2, 3, 4, 8, None])
def test_supported_factors_pass_validation(factor):
    assert nodes.DPSSuperResolutionOperator.validate_inputs(scale_factor=factor) is True


@pytest.mark.parametrize("node, inputs, name", [
    (nodes.DPSGaussianBlurOperator, {"kernel_size": 4, "sigma": 1.0}, "kernel_size"),
    (nodes.DPSMotionBlurOperator, {"kernel_size": 8, "intensity": 0.5, "seed": 0}, "kernel_size"),
    (nodes.DPSMotionBlurOperator, {"kernel_size": 9, "intensity": 1.5, "seed": 0}, "intensity"),
    (nodes.DPSRandomInpaintingOperator, {"missing_fraction": 1.0, "seed": 0}, "missing_fraction"),
    (nodes.DPSFourierUndersamplingOperator, {"acceleration": 4.0, "center_fraction": 0.5, "seed": 0},
     "center_fraction"),
    (nodes.DPSPhaseRetrievalOperator, {"oversampling": 0.5}, "oversampling"),
    (nodes.DPSInpaintingOperator, {"mask": torch.full((1, 8, 8), 2.0)}, "mask"),
    (nodes.DPSMotionBlurOperator, {"kernel_size": 9, "intensity": 0.5, "seed": 0,
                                   "kernel_image": torch.zeros(1, 9, 9, 3)}, "kernel_image"),
    (nodes.DPSMotionBlurOperator, {"kernel_size": 9, "intensity": 0.5, "seed": 0,
                                   "kernel_image": torch.ones(2, 9, 9, 3)}, "kernel_image"),
    (nodes.DPSMotionBlurOperator, {"kernel_size": 9, "intensity": 0.5, "seed": 0,
                                   "kernel_image": torch.full((1, 9, 9, 3), float("nan"))}, "kernel_image"),
])
def test_bad_values_name_the_input(node, inputs, name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        run(node, **inputs)


def test_kernel_image_becomes_a_normalised_grey_kernel():
    kernel = torch.zeros(1, 7, 9, 4)  # RGBA: alpha must be ignored
    kernel[0, 3, 1:8, :3] = torch.tensor([0.2, 0.4, 0.6])
    kernel[0, 2, 4, :3] = 0.9
    kernel[..., 3] = 1.0
    before = digest(kernel)
    (operator,) = run(nodes.DPSMotionBlurOperator, kernel_size=61, intensity=0.5, seed=0, kernel_image=kernel)
    assert digest(kernel) == before
    grey = kernel[0, :, :, :3].double().mean(dim=-1)
    assert operator.kernel.shape == (7, 9)
    assert torch.allclose(operator.kernel, grey / grey.sum(), atol=1e-7)
    assert abs(float(operator.kernel.sum()) - 1) < 1e-12
    # A grey kernel picture gives the same operator as its RGB version.
    (same,) = run(nodes.DPSMotionBlurOperator, kernel_size=61, intensity=0.5, seed=0,
                  kernel_image=kernel[..., :1].clone() * 0 + grey[None, :, :, None].float())
    assert torch.allclose(same.kernel, operator.kernel, atol=1e-7)


def test_compose_applies_first_then_second():
    (blur,) = run(nodes.DPSGaussianBlurOperator, kernel_size=5, sigma=1.0)
    (sr,) = run(nodes.DPSSuperResolutionOperator, scale_factor=2, kernel="average")
    (both,) = run(nodes.DPSComposeOperators, first=blur, second=sr)
    assert isinstance(both, Composition)
    x = engine(picture())
    with torch.inference_mode():
        assert torch.equal(both(x), sr(blur(x)))
    assert both.image_size((24, 24)) == (48, 48)


def test_inpainting_mask_is_not_modified_and_not_shared():
    mask = MASK.clone()
    before = digest(mask)
    (operator,) = run(nodes.DPSInpaintingOperator, mask=mask)
    assert digest(mask) == before
    x = engine(picture())
    with torch.inference_mode():
        expected = operator(x)
        mask.fill_(0.5)  # a later edit of ComfyUI's cached mask must not leak into the operator
        assert torch.equal(operator(x), expected)
    # 1 = missing: the masked pixels are zero in A(x), the kept ones unchanged.
    keep = (1 - MASK)[:, None]
    assert torch.equal(expected, x * keep)


@pytest.mark.parametrize("case", ["super_resolution", "gaussian_blur", "colorization", "inpainting", "fourier",
                                  "phase_retrieval"])
def test_preview_shows_what_the_operator_does(case):
    node, inputs, build = CASES[case]
    (operator,) = run(node, **inputs)
    image = picture()
    before = digest(image)
    (preview,) = run(nodes.DPSPreviewOperator, image=image, operator=operator)
    assert digest(image) == before
    reference = build()
    with torch.inference_mode():
        expected = reference.measurement_to_image(reference(engine(image)))
    if expected.shape[1] == 1:
        expected = expected.expand(-1, 3, -1, -1)
    assert preview.shape == (1, *expected.shape[-2:], 3) and preview.dtype == torch.float32
    assert torch.allclose(preview, expected.permute(0, 2, 3, 1).clamp(0, 1))
    assert float(preview.min()) >= 0 and float(preview.max()) <= 1


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_preview_accepts_grey_and_alpha_pictures(channels):
    (sr,) = run(nodes.DPSSuperResolutionOperator, scale_factor=2, kernel="average")
    image = picture(channels=channels)
    (preview,) = run(nodes.DPSPreviewOperator, image=image, operator=sr)
    rgb = image[..., :1].expand(-1, -1, -1, 3) if channels < 3 else image[..., :3]
    with torch.inference_mode():
        expected = SuperResolution(2, "average")(engine(rgb.contiguous()))
    assert preview.shape == (1, 24, 24, 3)
    assert torch.allclose(preview, expected.permute(0, 2, 3, 1).clamp(0, 1))


def test_preview_errors_name_the_image():
    (sr,) = run(nodes.DPSSuperResolutionOperator, scale_factor=4, kernel="bicubic")
    with pytest.raises(ValueError, match=r"^image: height 30 is not divisible"):
        run(nodes.DPSPreviewOperator, image=picture(height=30, width=32), operator=sr)
    bad = picture()
    bad[0, 3, 3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^image: .*NaN"):
        run(nodes.DPSPreviewOperator, image=bad, operator=sr)
    with pytest.raises(ValueError, match=r"^image: .*channels"):
        run(nodes.DPSPreviewOperator, image=picture(channels=5), operator=sr)
