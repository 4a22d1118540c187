"""alpha_t and sigma_t read off ComfyUI's own model families (nodes/noise_levels.py)."""

import pytest
import torch

from testkit.host import load_pack

load_pack()

import comfy.model_sampling  # noqa: E402

from comfyui_dps.nodes.noise_levels import noise_levels  # noqa: E402



@pytest.mark.parametrize("prediction, flow", [(comfy.model_sampling.EPS, False), (comfy.model_sampling.V_PREDICTION, False),
                                              (comfy.model_sampling.CONST, True)])
def test_alpha_and_sigma_per_family(prediction, flow):
    base = comfy.model_sampling.ModelSamplingDiscreteFlow if flow else comfy.model_sampling.ModelSamplingDiscrete

    class Sampling(base, prediction):
        pass

    model_sampling = Sampling()
    sigma = torch.tensor([0.9, 0.3])
    levels = noise_levels(model_sampling, sigma)
    torch.testing.assert_close(levels.sigma, sigma)
    torch.testing.assert_close(levels.alpha, 1 - sigma if flow else torch.ones(2))


def test_a_family_that_adds_no_noise_is_an_error_naming_the_model():
    class ImageToImage(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return latent_image  # as IMG_TO_IMG_FLOW does in newer ComfyUI

    with pytest.raises(ValueError, match="model: Flux's sampling \\(ImageToImage\\) adds no noise"):
        noise_levels(ImageToImage(), torch.tensor([0.5]), "Flux")


def test_a_family_without_noise_scaling_is_an_error_naming_the_model():
    class Unknown:
        pass

    with pytest.raises(ValueError, match="model: Mystery's sampling \\(Unknown\\) does not say how it adds noise"):
        noise_levels(Unknown(), torch.tensor([0.5]), "Mystery")
