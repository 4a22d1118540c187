"""Writes the DAPS example workflows (issue 13) into workflows/: demo-prior phase retrieval, SD1.5 4x
super-resolution and Flux 4x super-resolution, each DPS DAPS Sampler -> SamplerCustomAdvanced with a Note
on settings, and a thumbnail (the measured picture with a caption; the phase-retrieval one shows the
log Fourier magnitudes, or a DAPS sample from the demo prior when --sample is given). Dev tool:

    .venv/bin/python scripts/daps_workflows.py [--sample path/to/daps_sample.png]
"""

from __future__ import annotations

import argparse
import json
import pathlib

from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
COLUMN, ROW = 330, 220  # grid pitch on the canvas; nodes are at most 300 x 190 (plus a 30 px title bar)
#: Saved views (as the other workflows): the demo at 0.9, where its Note reads at 9 px, with canvas (0, 0)
#: below the tab bar and the Run toolbar; the model workflows, which hold more nodes, at 0.62.
DEMO_VIEW = {"scale": 0.9, "offset": [85, 150]}
MODEL_VIEW = {"scale": 0.62, "offset": [129, 256]}

DAPS_SETTINGS = (
    "DPS DAPS Sampler settings: langevin_steps 20 and step_size 0.5 are the defaults that need no tuning "
    "(step_size is a fraction of the stability limit of each Langevin step, set per sample from the measured "
    "curvature of the misfit, so it holds for any operator and noise level; lower it to 0.2-0.3 for a more "
    "exact posterior at the cost of slower mixing). x0_estimate 'denoiser (1 call)' is the cheapest; 'ODE (3 "
    "steps)' gives sharper estimates for three times the model calls. The scheduler's steps are the annealing "
    "levels (50 for super-resolution; phase retrieval needs 100); each level costs one model call (without a backward pass) plus "
    "langevin_steps decoder forward and backward passes for latent models. Change RandomNoise's seed for "
    "another posterior sample."
)


class Graph:
    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, kind, col, row, widgets=None, inputs=(), outputs=(), size=(300, 190)):
        node = {"id": len(self.nodes) + 1, "type": kind, "pos": [col * COLUMN, row * ROW + 40], "size": list(size),
                "flags": {}, "order": len(self.nodes), "mode": 0,
                "inputs": [{"name": name, "type": kind_, "link": None} for name, kind_ in inputs],
                "outputs": [{"name": name, "type": kind_, "links": []} for name, kind_ in outputs],
                "properties": {"Node name for S&R": kind}, "widgets_values": list(widgets or [])}
        self.nodes.append(node)
        return node

    def link(self, source, slot, target, name):
        target_slot = next(i for i, socket in enumerate(target["inputs"]) if socket["name"] == name)
        kind = source["outputs"][slot]["type"]
        link_id = len(self.links) + 1
        self.links.append([link_id, source["id"], slot, target["id"], target_slot, kind])
        source["outputs"][slot]["links"].append(link_id)
        target["inputs"][target_slot]["link"] = link_id

    def workflow(self, view=MODEL_VIEW):
        return {"id": "00000000-0000-4000-8000-0000000000d3", "revision": 0, "last_node_id": len(self.nodes),
                "last_link_id": len(self.links), "nodes": self.nodes, "links": self.links, "groups": [],
                "config": {}, "extra": {"ds": dict(view)}, "version": 0.4}


def sampling_tail(g, model, measurement, vae, guider, scheduler, steps, prefix, vae_for_daps=True, col=3,
                  save_height=420):
    """DAPS sampler, sigmas, noise, latent, SamplerCustomAdvanced, decode and save; vae = (node, output slot)."""
    daps = g.node("DPSDAPSSampler", col, 0, [20, 0.5, "denoiser (1 call)"],
                  [("measurement", "DPS_MEASUREMENT"), ("vae", "VAE")], [("sampler", "SAMPLER")])
    g.link(measurement, 0, daps, "measurement")
    vae_node, vae_slot = vae
    if vae_for_daps:
        g.link(vae_node, vae_slot, daps, "vae")
    sigmas = g.node("BasicScheduler", col, 1, [scheduler, steps, 1.0], [("model", "MODEL")], [("SIGMAS", "SIGMAS")])
    g.link(model, 0, sigmas, "model")
    noise = g.node("RandomNoise", col, 2, [42, "fixed"], [], [("NOISE", "NOISE")])
    latent = g.node("DPSEmptyLatent", col, 3, [1], [("measurement", "DPS_MEASUREMENT"), ("vae", "VAE")],
                    [("latent", "LATENT")])
    g.link(measurement, 0, latent, "measurement")
    if vae_for_daps:
        g.link(vae_node, vae_slot, latent, "vae")
    run = g.node("SamplerCustomAdvanced", col + 1, 0, [], [("noise", "NOISE"), ("guider", "GUIDER"),
                                                          ("sampler", "SAMPLER"), ("sigmas", "SIGMAS"),
                                                          ("latent_image", "LATENT")],
                 [("output", "LATENT"), ("denoised_output", "LATENT")])
    g.link(noise, 0, run, "noise")
    g.link(guider, 0, run, "guider")
    g.link(daps, 0, run, "sampler")
    g.link(sigmas, 0, run, "sigmas")
    g.link(latent, 0, run, "latent_image")
    decode = g.node("VAEDecode", col + 1, 1, [], [("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")])
    g.link(run, 0, decode, "samples")
    g.link(vae_node, vae_slot, decode, "vae")
    save = g.node("SaveImage", col + 1, 2, [prefix], [("images", "IMAGE")], [], size=(300, save_height))
    g.link(decode, 0, save, "images")


def measured(g, photo, size, operator, widgets, noise_level, col=1):
    image = g.node("DPSExampleImage", col, 0, [photo, size], [], [("image", "IMAGE")])
    op = g.node(operator, col, 1, widgets, [], [("operator", "DPS_OPERATOR")])
    simulate = g.node("DPSSimulateMeasurement", col, 2, ["gaussian", noise_level, 0],
                      [("image", "IMAGE"), ("operator", "DPS_OPERATOR")],
                      [("measurement", "DPS_MEASUREMENT"), ("degraded", "IMAGE")])
    g.link(image, 0, simulate, "image")
    g.link(op, 0, simulate, "operator")
    preview = g.node("PreviewImage", col, 3, [], [("images", "IMAGE")], [], size=(300, 200))
    g.link(simulate, 1, preview, "images")
    return simulate


def demo_phase_retrieval():
    g = Graph()
    g.node("Note", 0, 0, [
        "DAPS phase retrieval with the bundled demo prior\n\nNothing to download: the demo prior ships with the "
        "pack. The held-out photograph (astronaut, 64 px) is measured by its Fourier magnitudes with 2x "
        "oversampling (DPS Phase Retrieval Operator) under Gaussian noise 0.02; DAPS samples an image whose "
        "Fourier magnitudes match. Phase retrieval cannot tell an image from its 180-degree rotation, so either "
        "may come out. The demo prior is a pixel model: leave the DAPS sampler's vae empty.\n\n" + DAPS_SETTINGS +
        "\n\nMeasured (README, DAPS section; 64 px photos, 100 levels as here): 6 and 7 of 8 DAPS samples per "
        "photo explained the measurement (residual within 1.2x the noise; 3 of 8 with 25 levels), none of DPS KSampler's dps mode at 100 steps; "
        "the others stop in a wrong basin: try another seed."], size=(300, 640))
    prior = g.node("DPSLoadDemoPrior", 2, 1, [], [], [("model", "MODEL"), ("vae", "VAE"),
                                                     ("conditioning", "CONDITIONING")], size=(300, 120))
    simulate = measured(g, "astronaut", 64, "DPSPhaseRetrievalOperator", [2.0], 0.02)
    guider = g.node("BasicGuider", 2, 0, [], [("model", "MODEL"), ("conditioning", "CONDITIONING")],
                    [("GUIDER", "GUIDER")])
    g.link(prior, 0, guider, "model")
    g.link(prior, 2, guider, "conditioning")
    daps_tail_pixel(g, prior, simulate, guider)
    return g.workflow(DEMO_VIEW)


def daps_tail_pixel(g, prior, simulate, guider):
    """The pixel model's tail: no VAE into DAPS or the latent (3 channels, full size)."""
    sampling_tail(g, prior, simulate, (prior, 1), guider, "normal", 100, "DPS/daps-phase-retrieval", vae_for_daps=False,
                  save_height=220)
    # At the demo's larger view the last column must stay above the minimap: a flat VAE Decode and the
    # Save Image right under it.
    for node in g.nodes:
        if node["type"] == "VAEDecode":
            node["size"] = [300, 50]
        if node["type"] == "SaveImage":
            node["pos"][1] = 370


def sd15_super_resolution():
    g = Graph()
    g.node("Note", 0, 0, [
        "DAPS 4x super-resolution with Stable Diffusion 1.5\n\nModels: put v1-5-pruned-emaonly.safetensors in "
        "ComfyUI/models/checkpoints/ (https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive).\n\nThe "
        "held-out photograph is shrunk 4x (bicubic) with Gaussian noise 0.05; DAPS anneals along the scheduler's "
        "sigmas, and at each level draws a latent whose decoded image explains the small picture (Langevin steps "
        "through the VAE decoder, connected to the DAPS sampler and to DPS Empty Latent). CFGGuider's prompt "
        "steers the content as in any SD workflow (cfg 4).\n\n" + DAPS_SETTINGS], size=(300, 700))
    ckpt = g.node("CheckpointLoaderSimple", 0, 4, ["v1-5-pruned-emaonly.safetensors"], [],
                  [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], size=(300, 120))
    simulate = measured(g, "astronaut", 512, "DPSSuperResolutionOperator", [4, "bicubic"], 0.05)
    positive = g.node("CLIPTextEncode", 2, 0, ["a photograph of an astronaut in a white space suit, natural "
                                               "light, sharp focus, detailed"], [("clip", "CLIP")],
                      [("CONDITIONING", "CONDITIONING")])
    negative = g.node("CLIPTextEncode", 2, 1, ["blurry, lowres, watermark, text"], [("clip", "CLIP")],
                      [("CONDITIONING", "CONDITIONING")])
    g.link(ckpt, 1, positive, "clip")
    g.link(ckpt, 1, negative, "clip")
    guider = g.node("CFGGuider", 2, 2, [4.0], [("model", "MODEL"), ("positive", "CONDITIONING"),
                                               ("negative", "CONDITIONING")], [("GUIDER", "GUIDER")])
    g.link(ckpt, 0, guider, "model")
    g.link(positive, 0, guider, "positive")
    g.link(negative, 0, guider, "negative")
    sampling_tail(g, ckpt, simulate, (ckpt, 2), guider, "normal", 50, "DPS/daps-sd15-super-resolution")
    return g.workflow()


def flux_super_resolution():
    g = Graph()
    g.node("Note", 0, 0, [
        "DAPS 4x super-resolution with Flux.1 dev\n\nModels:\n- ComfyUI/models/diffusion_models/flux1-dev."
        "safetensors (https://huggingface.co/Comfy-Org/flux1-dev)\n- ComfyUI/models/text_encoders/clip_l."
        "safetensors and t5xxl_fp16.safetensors (https://huggingface.co/comfyanonymous/flux_text_encoders)\n- "
        "ComfyUI/models/vae/ae.safetensors (https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged)\n\n"
        "A flow model: the 'simple' scheduler's sigmas start at 1 (pure noise) and DAPS re-noises with "
        "x = (1 - sigma) x0 + sigma noise. Nothing is differentiated through Flux itself, only through its VAE "
        "decoder, so DAPS fits where dps does not.\n\n" + DAPS_SETTINGS], size=(300, 700))
    unet = g.node("UNETLoader", 0, 4, ["flux1-dev.safetensors", "default"], [], [("MODEL", "MODEL")], size=(300, 120))
    clip = g.node("DualCLIPLoader", 2, 3, ["clip_l.safetensors", "t5xxl_fp16.safetensors", "flux", "default"], [],
                  [("CLIP", "CLIP")])
    vae = g.node("VAELoader", 2, 4, ["ae.safetensors"], [], [("VAE", "VAE")], size=(300, 120))
    simulate = measured(g, "astronaut", 512, "DPSSuperResolutionOperator", [4, "bicubic"], 0.05)
    text = g.node("CLIPTextEncode", 2, 0, ["a photograph of an astronaut in a white space suit, natural light, "
                                           "sharp focus, detailed"], [("clip", "CLIP")],
                  [("CONDITIONING", "CONDITIONING")])
    g.link(clip, 0, text, "clip")
    flux = g.node("FluxGuidance", 2, 1, [3.5], [("conditioning", "CONDITIONING")], [("CONDITIONING", "CONDITIONING")])
    g.link(text, 0, flux, "conditioning")
    guider = g.node("BasicGuider", 2, 2, [], [("model", "MODEL"), ("conditioning", "CONDITIONING")],
                    [("GUIDER", "GUIDER")])
    g.link(unet, 0, guider, "model")
    g.link(flux, 0, guider, "conditioning")
    sampling_tail(g, unet, simulate, (vae, 0), guider, "simple", 28, "DPS/daps-flux-super-resolution")
    return g.workflow()


def fourier_magnitudes(photo):
    """The log Fourier magnitudes of `photo` at 64 px, 2x oversampled (what phase retrieval measures)."""
    import numpy as np

    x = np.asarray(photo.convert("L").resize((64, 64)), dtype=np.float64) / 255
    magnitude = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(np.pad(x, 32), norm="ortho"))))
    return Image.fromarray((255 * magnitude / magnitude.max()).astype(np.uint8))


def thumbnail(path, caption, picture=None):
    # 400 x 400: the size of the template browser's cards (and of every other workflow's thumbnail).
    canvas = Image.new("RGB", (400, 400), (32, 34, 40))
    if picture is not None:
        canvas.paste(picture.convert("RGB").resize((340, 340)), (30, 12))
    ImageDraw.Draw(canvas).text((12, 370), caption, fill=(235, 235, 235))
    canvas.save(path, format="JPEG", quality=88)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=pathlib.Path, help="a DAPS phase-retrieval sample for the thumbnail")
    args = parser.parse_args()
    photo = Image.open(ROOT / "nodes" / "example_images" / "astronaut.png")
    small = photo.resize((128, 128), Image.Resampling.BICUBIC)
    for name, build, caption, picture in [
        ("daps-demo-prior-phase-retrieval", demo_phase_retrieval, "DAPS: phase retrieval, demo prior",
         Image.open(args.sample) if args.sample else fourier_magnitudes(photo)),
        ("daps-sd15-super-resolution", sd15_super_resolution, "DAPS: 4x super-resolution, SD1.5 (input shown)",
         small),
        ("daps-flux-super-resolution", flux_super_resolution, "DAPS: 4x super-resolution, Flux (input shown)",
         small),
    ]:
        (WORKFLOWS / f"{name}.json").write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
        thumbnail(WORKFLOWS / f"{name}.jpg", caption, picture)
        print(f"wrote workflows/{name}.json and .jpg")


if __name__ == "__main__":
    main()
