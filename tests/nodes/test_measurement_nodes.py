"""Measurement nodes (Measurement, Simulate Measurement, Load Measurement, Measurement Info) through the
real ComfyUI node classes, under inference mode as ComfyUI runs them."""

import hashlib
import io as bytes_io

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from testkit.host import load_pack

pack = load_pack()

from comfy_api.latest import io  # noqa: E402

from comfyui_dps.dps.measurement import Measurement, simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise, PoissonNoise  # noqa: E402
from comfyui_dps.dps.operators import (  # noqa: E402
    Colorization,
    Composition,
    FourierUndersampling,
    GaussianBlur,
    Inpainting,
    PhaseRetrieval,
    SuperResolution,
)

meas = pack.nodes.measurement_nodes
load = pack.nodes.load_measurement_node
ops = pack.nodes.operator_nodes


def run(node, **inputs):
    with torch.inference_mode():
        out = node.execute(**inputs)
    assert isinstance(out, io.NodeOutput)
    return out.result


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def picture(batch=1, height=16, width=16, channels=3, seed=0):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def engine(image):
    return image.permute(0, 3, 1, 2).contiguous()


def measure(image, operator, noise_model="gaussian", noise_level=0.05):
    (measurement,) = run(meas.DPSMeasurement, image=image, operator=operator, noise_model=noise_model,
                         noise_level=noise_level)
    return measurement


# ----------------------------------------------------------------------------- Measurement


def test_low_resolution_picture_explains_a_four_times_larger_image():
    image = picture(height=16, width=24)
    before = digest(image)
    m = measure(image, SuperResolution(4, "bicubic"))
    assert digest(image) == before
    assert isinstance(m, Measurement)
    assert m.image_size == (64, 96)
    assert torch.equal(m.y, engine(image))
    assert isinstance(m.noise, GaussianNoise) and m.noise.sigma == 0.05
    info, width, height = run(meas.DPSMeasurementInfo, measurement=m)
    assert (width, height) == (96, 64)
    assert "4x super-resolution (bicubic)" in info and "96x64" in info and "sigma 0.05" in info
    assert "[1, 3, 16, 24]" in info


def test_measurement_does_not_alias_the_input_picture():
    image = picture()
    m = measure(image, GaussianBlur(5, 1.0))
    y = m.y.clone()
    with torch.inference_mode():
        image.add_(1.0)  # ComfyUI hands the same cached tensor to other nodes
    assert torch.equal(m.y, y)


def test_mask_of_the_wrong_size_is_an_error_naming_mask():
    (operator,) = run(ops.DPSInpaintingOperator, mask=torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match=r"^mask: size 32x32 \(width x height\) does not match the image size 16x16 \(width x height\)"):
        measure(picture(), operator)
    # The right size works and keeps the observed pixels.
    m = measure(picture(), Inpainting(torch.zeros(16, 16)))
    assert m.image_size == (16, 16)


def test_composed_operators_are_checked_to_the_end():
    # Blur then 2x SR: a 16x16 picture explains 32x32; an inpainting mask after SR must be 16x16.
    m = measure(picture(), Composition(GaussianBlur(3, 1.0), SuperResolution(2, "average")))
    assert m.image_size == (32, 32)
    bad = Composition(SuperResolution(2, "average"), Inpainting(torch.zeros(8, 8)))
    with pytest.raises(ValueError, match=r"^mask: "):
        measure(picture(), bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_are_an_error_naming_image(value):
    image = picture()
    image[0, 5, 7, 2] = value
    with pytest.raises(ValueError, match=r"^image: .*NaN or infinite"):
        measure(image, GaussianBlur(3, 1.0))
    with pytest.raises(ValueError, match=r"^image: .*NaN or infinite"):
        run(meas.DPSSimulateMeasurement, image=image, operator=GaussianBlur(3, 1.0), noise_model="gaussian",
            noise_level=0.05, seed=0)


def test_rgba_picture_drops_alpha():
    image = picture(channels=4)
    m = measure(image, SuperResolution(2, "average"))
    assert m.y.shape == (1, 3, 16, 16)
    assert torch.equal(m.y, engine(image[..., :3]))
    assert m.image_size == (32, 32)


def test_grey_picture_is_replicated_or_used_as_luma():
    grey = picture(channels=1)
    m = measure(grey, GaussianBlur(3, 1.0))
    assert m.y.shape == (1, 3, 16, 16)
    assert torch.equal(m.y, engine(grey).expand(-1, 3, -1, -1))
    luma = measure(grey, Colorization())
    assert luma.y.shape == (1, 1, 16, 16) and luma.image_size == (16, 16)
    assert torch.allclose(luma.y, engine(grey), atol=1e-6)
    rgb = picture()
    with torch.inference_mode():
        expected = Colorization()(engine(rgb))
    assert torch.allclose(measure(rgb, Colorization()).y, expected)


def test_batch_of_pictures_is_a_batch_of_observations():
    m = measure(picture(batch=3), SuperResolution(2, "bicubic"))
    assert m.batch_size == 3 and m.image_size == (32, 32)


@pytest.mark.parametrize("operator", [FourierUndersampling(4.0, 0.08, 0), PhaseRetrieval(2.0)])
def test_pictures_cannot_be_fourier_measurements(operator):
    with pytest.raises(ValueError, match=r"^image: .*cannot be read from a picture; load (it|them) from a file"):
        measure(picture(), operator)


def test_poisson_noise_level_is_the_photon_count():
    m = measure(picture(), GaussianBlur(3, 1.0), "poisson", 250.0)
    assert isinstance(m.noise, PoissonNoise) and m.noise.photon_count == 250.0
    info, _, _ = run(meas.DPSMeasurementInfo, measurement=m)
    assert "250 photons" in info
    with pytest.raises(ValueError, match=r"^noise_level: .*photon count"):
        measure(picture(), GaussianBlur(3, 1.0), "poisson", 0.0)


def test_noise_level_tooltip_explains_both_models():
    schema = meas.DPSMeasurement.define_schema()
    level = next(item for item in schema.inputs if item.id == "noise_level")
    assert level.default == 0.05
    assert "standard deviation" in level.tooltip and "photon count" in level.tooltip


# ---------------------------------------------------------------------- Simulate Measurement


def simulate_node(image, operator, noise_model="gaussian", noise_level=0.05, seed=0):
    return run(meas.DPSSimulateMeasurement, image=image, operator=operator, noise_model=noise_model,
               noise_level=noise_level, seed=seed)


def test_simulation_is_the_engine_simulation_and_deterministic_per_seed():
    image = picture(batch=2, height=32, width=32)
    before = digest(image)
    operator = SuperResolution(4, "bicubic")
    m1, degraded = simulate_node(image, operator, seed=7)
    m2, degraded2 = simulate_node(image, operator, seed=7)
    m3, _ = simulate_node(image, operator, seed=8)
    assert digest(image) == before
    with torch.inference_mode():
        reference = simulate(engine(image), operator, GaussianNoise(0.05), seed=7)
    assert torch.equal(m1.y, reference.y) and torch.equal(m1.y, m2.y) and torch.equal(degraded, degraded2)
    assert not torch.equal(m1.y, m3.y)
    assert m1.image_size == (32, 32) and m1.y.shape == (2, 3, 8, 8)
    # Shown at the size of the image it explains: each measured pixel repeated 4 x 4 (nearest neighbour).
    assert degraded.shape == (2, 32, 32, 3) and degraded.dtype == torch.float32
    assert float(degraded.min()) >= 0 and float(degraded.max()) <= 1
    assert torch.equal(degraded[:, ::4, ::4], m1.y.clamp(0, 1).permute(0, 2, 3, 1))
    assert torch.equal(degraded[:, 3::4, 3::4], degraded[:, ::4, ::4])
    # The degraded picture is a new tensor: editing it cannot change the measurement.
    with torch.inference_mode():
        degraded.zero_()
    assert torch.equal(m1.y, m2.y)


def test_simulation_with_poisson_noise_and_grey_and_rgba_pictures():
    for channels in (1, 4):
        image = picture(height=16, width=16, channels=channels)
        m, degraded = simulate_node(image, GaussianBlur(3, 1.0), "poisson", 50.0, seed=1)
        assert m.y.shape == (1, 3, 16, 16) and degraded.shape == (1, 16, 16, 3)
        counts = m.y * 50  # photon counts / photon_count
        assert torch.allclose(counts, counts.round(), atol=1e-4)
        assert isinstance(m.noise, PoissonNoise) and m.noise.photon_count == 50.0


def test_simulated_k_space_is_complex_with_a_viewable_picture():
    m, degraded = simulate_node(picture(height=32, width=32), FourierUndersampling(4.0, 0.08, 0), seed=2)
    assert m.y.is_complex() and m.y.shape == (1, 3, 32, 32) and m.image_size == (32, 32)
    assert degraded.shape == (1, 32, 32, 3) and float(degraded.min()) >= 0 and float(degraded.max()) <= 1
    (info, width, height) = run(meas.DPSMeasurementInfo, measurement=m)
    assert "complex" in info and (width, height) == (32, 32)


def test_simulation_errors_name_the_image():
    with pytest.raises(ValueError, match=r"^image: height 30 is not divisible by the super-resolution factor 4"):
        simulate_node(picture(height=30, width=32), SuperResolution(4, "bicubic"))
    with pytest.raises(ValueError, match=r"^mask: "):
        simulate_node(picture(height=16, width=16), Inpainting(torch.zeros(8, 8)))


def test_measurement_nodes_are_documented():
    for node in (*meas.NODES, *load.NODES):
        schema = node.define_schema()
        assert schema.category == "DPS/measurement" and schema.description.strip()
        assert schema.display_name and schema.display_name != schema.node_id
        for item in [*schema.inputs, *schema.outputs]:
            assert item.tooltip, (schema.node_id, getattr(item, "id", None))
        for item in schema.outputs:
            assert item.display_name, schema.node_id
    ids = {node.define_schema().node_id for node in (*meas.NODES, *load.NODES)}
    assert ids == {"DPSMeasurement", "DPSSimulateMeasurement", "DPSMeasurementInfo", "DPSLoadMeasurement"}


# -------------------------------------------------------------------------- Load Measurement


def png_bytes(array: np.ndarray) -> bytes:
    buffer = bytes_io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def load_node(file, operator, noise_model="gaussian", noise_level=0.05, key=""):
    (m,) = run(load.DPSLoadMeasurement, file=file, operator=operator, noise_model=noise_model,
               noise_level=noise_level, key=key)
    return m


def test_loads_a_16_bit_png_at_full_precision(input_dir):
    values = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257 + 1).astype(np.uint16)
    (input_dir / "low16.png").write_bytes(png_bytes(values))
    Image.open(input_dir / "low16.png").load()
    assert Image.open(input_dir / "low16.png").mode.startswith("I")
    m = load_node("low16.png", SuperResolution(4, "bicubic"))
    assert m.image_size == (64, 64)
    assert m.y.shape == (1, 3, 16, 16) and m.y.dtype == torch.float32
    expected = torch.from_numpy(values.astype(np.float64) / 65535).float()
    assert torch.equal(m.y[0, 0], expected) and torch.equal(m.y[0, 2], expected)
    # 16-bit precision is kept: neighbouring values differ by one 8-bit step + 1/65535, not by 8-bit steps.
    assert len(torch.unique(m.y)) == 256


def test_loads_a_png_in_a_subfolder_and_lists_it(input_dir):
    (input_dir / "sub").mkdir()
    (input_dir / "sub" / "g.png").write_bytes(png_bytes(np.full((8, 8, 3), 128, np.uint8)))
    (input_dir / "notes.txt").write_text("not a measurement")
    schema = load.DPSLoadMeasurement.define_schema()
    file_input = schema.inputs[0]
    assert file_input.id == "file" and file_input.options == ["sub/g.png"]
    assert file_input.as_dict().get("image_upload") is True
    m = load_node("sub/g.png", Colorization())
    assert m.y.shape == (1, 1, 8, 8) and torch.allclose(m.y, torch.full_like(m.y, 128 / 255), atol=1e-6)


def test_loads_complex_k_space_from_a_real_imaginary_safetensors_pair(input_dir):
    operator = FourierUndersampling(4.0, 0.08, 3)
    with torch.inference_mode(False):
        truth = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
        k = operator(truth)[0, 0]
    save_file({"kspace_real": k.real.contiguous(), "kspace_imag": k.imag.contiguous()},
              str(input_dir / "knee.safetensors"))
    for key in ("", "kspace"):
        m = load_node("knee.safetensors", operator, key=key)
        assert m.y.dtype == torch.complex64 and m.y.shape == (1, 1, 32, 32)
        assert torch.equal(m.y[0, 0], k)
        assert m.image_size == (32, 32)
        with torch.inference_mode(False):
            assert float(m.normalized_residual(truth.expand(1, 3, 32, 32))) < 1e-3
    with pytest.raises(ValueError, match=r"^noise_model: poisson noise needs a real"):
        load_node("knee.safetensors", operator, "poisson", 100.0)
    with pytest.raises(ValueError, match=r"^file 'knee.safetensors'.*complex"):
        load_node("knee.safetensors", GaussianBlur(3, 1.0))


def test_real_arrays_follow_the_documented_shape_rules(input_dir):
    data = np.random.default_rng(0).random((2, 3, 8, 12)).astype(np.float64)
    np.save(input_dir / "b.npy", data)
    np.save(input_dir / "c.npy", data[0])
    np.save(input_dir / "hw.npy", data[0, 0])
    np.save(input_dir / "five.npy", data[None])
    operator = SuperResolution(2, "average")
    m = load_node("b.npy", operator)
    assert m.y.shape == (2, 3, 8, 12) and m.y.dtype == torch.float32 and m.image_size == (16, 24)
    assert torch.equal(m.y, torch.from_numpy(data).float())
    assert load_node("c.npy", operator).y.shape == (1, 3, 8, 12)
    assert load_node("hw.npy", operator).y.shape == (1, 1, 8, 12)
    with pytest.raises(ValueError, match=r"^file 'five.npy': expected an array of shape \[h, w\]"):
        load_node("five.npy", operator)
    with pytest.raises(ValueError, match=r"^file 'c.npy': is real, but .* complex"):
        load_node("c.npy", FourierUndersampling(4.0, 0.08, 0))
    with pytest.raises(ValueError, match=r"^mask: size 4x4 \(width x height\) does not match the image size 12x8 \(width x height\)"):
        load_node("c.npy", Inpainting(torch.zeros(4, 4)))


def test_phase_retrieval_magnitudes_load_from_an_array(input_dir):
    operator = PhaseRetrieval(2.0)
    with torch.inference_mode(False):
        y = operator(torch.rand(1, 1, 10, 10, generator=torch.Generator().manual_seed(0)))
    np.save(input_dir / "mag.npy", y[0].numpy())
    m = load_node("mag.npy", operator)
    assert m.image_size == (10, 10) and m.y.shape == (1, 1, 20, 20)
    np.save(input_dir / "odd.npy", np.ones((1, 21, 21), np.float32))
    with pytest.raises(ValueError, match=r"^file 'odd.npy': height 21 is not an oversampled image size"):
        load_node("odd.npy", operator)


def test_refuses_a_pickled_npy(input_dir):
    np.save(input_dir / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert load.DPSLoadMeasurement.validate_inputs(file="evil.npy") is True  # it exists; reading refuses it
    with pytest.raises(ValueError, match=r"^file 'evil.npy'.*pickle"):
        load_node("evil.npy", GaussianBlur(3, 1.0))


def test_refuses_paths_outside_the_input_folder(input_dir):
    secret = input_dir.parent / "secret.png"
    secret.write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    for name in ("../secret.png", str(secret), "sub/../../secret.png"):
        message = load.DPSLoadMeasurement.validate_inputs(file=name)
        assert isinstance(message, str) and message.startswith("file: ") and "outside the input folder" in message
        with pytest.raises(ValueError, match=r"^file: .*outside the input folder"):
            load_node(name, GaussianBlur(3, 1.0))
    # A symlink inside the input folder that points outside is refused as well.
    (input_dir / "link.png").symlink_to(secret)
    assert "outside the input folder" in load.DPSLoadMeasurement.validate_inputs(file="link.png")
    with pytest.raises(ValueError, match=r"outside the input folder"):
        load_node("link.png", GaussianBlur(3, 1.0))


def test_missing_file_is_reported_at_validation(input_dir):
    message = load.DPSLoadMeasurement.validate_inputs(file="nothing.png")
    assert message.startswith("file: 'nothing.png' was not found in the input folder")
    assert load.DPSLoadMeasurement.validate_inputs(file="").startswith("file: no file chosen")
    assert "unsupported extension" in load.DPSLoadMeasurement.validate_inputs(file="photo.jpg")
    with pytest.raises(ValueError, match=r"^file 'nothing.png' was not found"):
        load_node("nothing.png", GaussianBlur(3, 1.0))


def test_fingerprint_is_the_file_sha256_and_follows_edits(input_dir):
    path = input_dir / "a.png"
    path.write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    assert load.DPSLoadMeasurement.validate_inputs(file="a.png") is True
    first = load.DPSLoadMeasurement.fingerprint_inputs(file="a.png", operator=None, noise_model="gaussian",
                                                       noise_level=0.05, key="")
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(png_bytes(np.ones((8, 8, 3), np.uint8)))
    second = load.DPSLoadMeasurement.fingerprint_inputs(file="a.png")
    assert second == hashlib.sha256(path.read_bytes()).hexdigest() and second != first
    assert load.DPSLoadMeasurement.fingerprint_inputs(file="../a.png") != first
