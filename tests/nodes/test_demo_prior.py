"""The bundled demo prior, loaded from the shipped file and run through the real ComfyUI.

1. The file: safetensors only, under 20 MB, with its training record in the header.
2. The node: schema, outputs, in-memory cache with a fresh ModelPatcher per run.
3. ComfyUI's own sampler (comfy.sample.sample, euler) draws a plausible 64x64 image.
4. On a held-out photograph (astronaut: never trained on) the prior denoises far better than an
   untrained copy of the same network.
"""

import json
import math

import pytest
import torch

from testkit.host import load_pack

pack = load_pack()

import comfy.model_patcher  # noqa: E402
import comfy.sample  # noqa: E402

from comfyui_dps.nodes import demo_prior, demo_prior_node  # noqa: E402

PATH = demo_prior.DEFAULT_PATH


@pytest.fixture(scope="module")
def prior():
    return demo_prior.load_demo_prior(PATH)


def test_file_is_small_safetensors_with_its_training_record():
    assert PATH.suffix == ".safetensors"
    assert PATH.stat().st_size <= 20 * 1024 * 1024
    meta = demo_prior.read_header(PATH)
    config = json.loads(meta["dps.unet_config"])
    assert config["in_channels"] == config["out_channels"] == 3
    assert config["context_dim"] is None and not any(config["transformer_depth"])
    assert meta["dps.model_type"] in demo_prior.MODEL_TYPES
    trained_on = json.loads(meta["dps.training_images"])
    held_out = json.loads(meta["dps.heldout_images"])
    assert {"astronaut", "coffee"} <= set(held_out)
    assert not set(trained_on) & set(held_out)
    for key in ("dps.steps", "dps.final_loss", "dps.machine", "dps.date", "dps.command"):
        assert meta[key]
    assert meta.get("dps.complete") == "true"


def test_node_outputs_model_vae_and_conditioning():
    schema = demo_prior_node.DPSLoadDemoPrior.GET_SCHEMA()
    assert schema.node_id == "DPSLoadDemoPrior" and schema.category == "DPS/models"
    assert not schema.inputs
    assert [o.display_name for o in schema.outputs] == ["model", "vae", "conditioning"]
    assert all(o.tooltip for o in schema.outputs) and schema.description
    assert demo_prior_node.DPSLoadDemoPrior in demo_prior_node.NODES

    first = demo_prior_node.DPSLoadDemoPrior.execute()
    second = demo_prior_node.DPSLoadDemoPrior.execute()
    model, vae, cond = first.result
    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    # cached: the same network, but a fresh patcher each run
    assert second.result[0] is not model and second.result[0].model is model.model
    assert vae.latent_channels == 3 and vae.downscale_ratio == 1
    assert isinstance(cond, list) and cond[0][0].ndim == 3


def test_euler_sample_is_a_plausible_image(prior):
    model, vae = prior
    latent = torch.zeros(1, 3, 64, 64)
    noise = comfy.sample.prepare_noise(latent, 0)
    cond = demo_prior.empty_conditioning()
    out = comfy.sample.sample(model, noise, 20, 1.0, "euler", "normal", cond, cond, latent,
                              disable_pbar=True, seed=0)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    # in range before the VAE clamps it
    assert (out.abs() > 1.1).float().mean() < 0.01
    image = vae.decode(out)
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()
    assert 0.0 <= image.min() and image.max() <= 1.0
    # not collapsed to a flat colour, and not noise: neighbouring pixels are strongly correlated
    assert image.std() > 0.03
    x = image[0] - image[0].mean(dim=(0, 1))
    corr = (x[1:] * x[:-1]).sum() / (x * x).sum()
    assert corr > 0.6, corr


def heldout_crop():
    skimage_data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float()[None] / 127.5 - 1.0
    img = torch.nn.functional.interpolate(img, scale_factor=0.5, mode="bilinear", antialias=True)
    return img[:, :, 40:104, 70:134].clamp(-1, 1)  # 64x64: face and helmet edge


def x0_mse(base_model, x0, sigmas, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for s in sigmas:
            eps = torch.randn(x0.shape, generator=g)
            sigma = torch.tensor([s])
            x0_hat = base_model.apply_model(x0 + s * eps, sigma)
            out.append(((x0_hat - x0) ** 2).mean().item())
    return out


def test_denoises_a_heldout_photo_far_better_than_an_untrained_net(prior):
    model, _ = prior
    trained = model.model
    config = json.loads(demo_prior.read_header(PATH)["dps.unet_config"])
    model_type = demo_prior.read_header(PATH)["dps.model_type"]
    torch.manual_seed(0)
    untrained = demo_prior.build_model(config, model_type)
    demo_prior.init_weights(untrained, zero_out=False)  # PyTorch default init throughout
    shrink = demo_prior.build_model(config, model_type)
    demo_prior.init_weights(shrink)  # zero output conv: x0_hat = x / (1 + sigma^2)

    x0 = heldout_crop()
    sigmas = [0.05, 0.1, 0.2, 0.5, 1.0]
    ours = x0_mse(trained, x0, sigmas)
    for name, other in (("random init", untrained), ("zero-output init", shrink)):
        theirs = x0_mse(other, x0, sigmas)
        gains = [10 * math.log10(b / a) for a, b in zip(ours, theirs, strict=True)]  # dB better than the other
        report = ", ".join(f"sigma {s}: {a:.3g} vs {b:.3g}" for s, a, b in zip(sigmas, ours, theirs, strict=True))
        assert min(gains) > 3.0 and sum(gains) / len(gains) > 6.0, f"x0-MSE trained vs {name}: {report}"
    # and in absolute terms: noise removed, not just shrunk (PSNR in dB for a [-1, 1] range)
    psnr = [10 * math.log10(4.0 / m) for m in ours]
    noisy = [10 * math.log10(4.0 / s**2) for s in sigmas]
    assert all(p > n + 3 for p, n in zip(psnr, noisy, strict=True)), (psnr, noisy)
