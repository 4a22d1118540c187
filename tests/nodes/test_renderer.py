"""The renderer (nodes/renderer.py): the guidance gradient through ComfyUI's own UNet and VAE decoders
matches finite differences, and `encode` maps images back to model space as ComfyUI does.

Models are built under torch.inference_mode(), as ComfyUI's loader nodes build them, so the test
also covers the way out of inference mode (`autograd_ready`)."""

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

from testkit.tiny_models import tiny_conditioning, tiny_kl_vae, tiny_taesd_vae, tiny_unet  # noqa: E402

from comfyui_dps.dps.guidance.core import posterior_scale  # noqa: E402
from comfyui_dps.dps.guidance.dps import dps_guidance  # noqa: E402
from comfyui_dps.dps.guidance.fast import fast_guidance  # noqa: E402
from comfyui_dps.dps.guidance.likelihood import plug_in_variance, variance_bound  # noqa: E402
from comfyui_dps.dps.measurement import simulate  # noqa: E402
from comfyui_dps.dps.noise import GaussianNoise  # noqa: E402
from comfyui_dps.dps.operators import GaussianBlur  # noqa: E402
from comfyui_dps.nodes.inference_mode import autograd_ready  # noqa: E402
from comfyui_dps.nodes.renderer import Renderer  # noqa: E402

VAES = {"taesd": tiny_taesd_vae, "kl": tiny_kl_vae}


@pytest.fixture(autouse=True)
def no_safety_bound(monkeypatch):
    """Random decoders give huge residuals, where the safety bound on the correction would
    rescale it: these tests check the gradient itself."""
    monkeypatch.setattr(pack.dps.guidance.core, "MAX_CORRECTION_RATIO", float("inf"))


def float64_setup(vae_kind, model_type="eps"):
    with torch.inference_mode():
        model = tiny_unet(model_type, seed=0, dtype=torch.float64)
        vae = VAES[vae_kind](seed=0)
    vae.first_stage_model.to(torch.float64)
    vae.vae_dtype = torch.float64
    vae.device = torch.device("cpu")
    assert any(p.is_inference() for p in model.model.parameters())
    autograd_ready(model.model)
    autograd_ready(vae.first_stage_model)
    assert not any(p.is_inference() for p in model.model.parameters())
    cond = tiny_conditioning(0)[0][0].double()
    generator = torch.Generator().manual_seed(1)
    picture = torch.rand(1, 3, 64, 64, generator=generator, dtype=torch.float64)
    measurement = simulate(picture, GaussianBlur(5, 1.0), GaussianNoise(0.05), seed=2)
    measurement = type(measurement)(measurement.y.double(), measurement.operator, measurement.noise,
                                    measurement.image_size)
    return model, vae, cond, measurement


@pytest.mark.parametrize("vae_kind", list(VAES))
def test_dps_gradient_through_unet_and_decoder_matches_finite_differences(vae_kind):
    model, vae, cond, measurement = float64_setup(vae_kind)
    render = Renderer(model, vae)
    sigma = torch.tensor([1.5], dtype=torch.float64)
    alpha = torch.ones(1, dtype=torch.float64)

    sampling = model.model.model_sampling

    def denoise(x):
        # ComfyUI's own UNet and EPS conversion, called below BaseModel.apply_model, which would
        # round the network output to float32 and make finite differences meaningless.
        net_input = sampling.calculate_input(sigma, x)
        output = model.model.diffusion_model(net_input, sampling.timestep(sigma).double(), context=cond)
        return sampling.calculate_denoised(sigma, output, x)

    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 8, 8, generator=generator, dtype=torch.float64) * 1.5
    direction = torch.randn(x.shape, generator=generator, dtype=torch.float64)

    with torch.no_grad():
        chi2 = measurement.chi2(render(denoise(x)))
    variance = plug_in_variance(chi2, measurement.num_elements, variance_bound(measurement, sigma, alpha))

    def objective(point):  # the loss guidance differentiates, with its plug-in variance held fixed
        with torch.no_grad():
            return (measurement.chi2(render(denoise(point))) / (2 * variance)).item()

    denoised = denoise(x).detach()
    guided = dps_guidance(x=x, sigma=sigma, alpha=alpha, denoise=denoise, render=render, measurement=measurement,
                          strength=1.0)
    gradient = (denoised - guided) / posterior_scale(sigma, alpha)
    eps = 1e-8  # ReLU kinks in the decoders: keep the step far below the distance to the nearest one
    finite = (objective(x + eps * direction) - objective(x - eps * direction)) / (2 * eps)
    analytic = (gradient * direction).sum().item()
    assert abs(analytic - finite) <= 1e-5 * max(1.0, abs(finite)), (analytic, finite)
    assert abs(finite) > 1e-3  # the check is not vacuous


@pytest.mark.parametrize("vae_kind", list(VAES))
def test_fast_gradient_through_decoder_matches_finite_differences(vae_kind):
    model, vae, cond, measurement = float64_setup(vae_kind)
    render = Renderer(model, vae)
    sigma = torch.tensor([0.8], dtype=torch.float64)
    alpha = torch.ones(1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(4)
    estimate = torch.randn(1, 4, 8, 8, generator=generator, dtype=torch.float64)
    direction = torch.randn(estimate.shape, generator=generator, dtype=torch.float64)

    def denoise(_):
        return estimate

    with torch.no_grad():
        chi2 = measurement.chi2(render(estimate))
    variance = plug_in_variance(chi2, measurement.num_elements, variance_bound(measurement, sigma, alpha))

    def objective(point):
        with torch.no_grad():
            return (measurement.chi2(render(point)) / (2 * variance)).item()

    guided = fast_guidance(x=estimate, sigma=sigma, alpha=alpha, denoise=denoise, render=render,
                           measurement=measurement, strength=1.0)
    gradient = (estimate - guided) / (sigma**2 / (alpha**2 + sigma**2))
    eps = 1e-8  # ReLU kinks in the decoders: keep the step far below the distance to the nearest one
    finite = (objective(estimate + eps * direction) - objective(estimate - eps * direction)) / (2 * eps)
    analytic = (gradient * direction).sum().item()
    assert abs(analytic - finite) <= 1e-5 * max(1.0, abs(finite)), (analytic, finite)
    assert abs(finite) > 1e-3


@pytest.mark.parametrize("vae_kind", list(VAES))
def test_encode_matches_comfyuis_own_vae_encode_in_model_space(vae_kind):
    with torch.inference_mode():
        model = tiny_unet("eps", seed=0)
        vae = VAES[vae_kind](seed=0)
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    renderer = Renderer(model, vae)
    with torch.inference_mode(False), torch.no_grad():
        renderer.prepare()
        latent = renderer.encode(image)
    with torch.inference_mode():
        expected = model.model.process_latent_in(vae.encode(image.movedim(1, -1)).float())
    assert latent.shape == (2, 4, 4, 4) and renderer.output_size(latent.shape) == (32, 32)
    assert renderer.data_range is None  # latents have no bound
    torch.testing.assert_close(latent.cpu(), expected.cpu(), rtol=1e-4, atol=1e-5)


def test_pixel_models_render_and_encode_by_the_affine_map():
    with torch.inference_mode():
        model = tiny_unet("eps", seed=0, pixel=True)
    renderer = Renderer(model)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(renderer(x), (x + 1) / 2)
    torch.testing.assert_close(renderer.encode(renderer(x)), x)
    assert renderer.scale == 1 and renderer.output_size(x.shape) == (8, 8)
    # Images of pixel models live in [-1, 1]; guidance methods may clamp their estimates to it.
    assert renderer.data_range == (-1.0, 1.0)
