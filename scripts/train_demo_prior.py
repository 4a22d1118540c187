#!/usr/bin/env python
"""Train the pack's demo diffusion prior (a dev script: not shipped, not imported by the pack).

A small pixel-space diffusion model built on ComfyUI's own UNetModel and BaseModel (see
nodes/demo_prior.py, which this script imports from the pack so that training and loading share
one model definition), trained with ComfyUI's own discrete schedule (ModelSamplingDiscrete, SD's
linear betas, 1000 steps): each step draws timesteps uniformly from the 1000, takes their sigmas
from `model.model_sampling`, builds x_t = x0 + sigma * eps and calls `model.apply_model(x_t,
sigma)`, which applies ComfyUI's own input scaling and timestep mapping and returns the denoised
x0 estimate, exactly as ComfyUI's samplers will call it.

Loss: for v-prediction (the default) the v-MSE, which equals (1 + 1/sigma^2) * |x0_hat - x0|^2;
for eps the eps-MSE |x0_hat - x0|^2 / sigma^2. Both are logged for either model type.

Training data: photographs that ship inside scikit-image (`skimage.data`), public domain or CC0
by their docstrings (TRAIN_IMAGES below). `astronaut` and `coffee` are held out for evaluation.

Examples
--------
CPU configuration (2 cores: 80 min of training plus about 6 min of evaluation):
    .venv/bin/python scripts/train_demo_prior.py --device cpu --minutes 80 --crop 64 --batch 8
The shipped weights (one NVIDIA H200, 7.3 min; models/README.md has the exact record):
    python3 scripts/train_demo_prior.py --device cuda --minutes 7.3 --crop 128 --batch 64
Fine-tune an exported prior, e.g. on mixed crop sizes:
    python3 scripts/train_demo_prior.py --device cuda --init models/demo_prior.safetensors \
        --crop 128 --crop-sizes 64,96,128 --lr 1e-4 --minutes 2
Resume an interrupted run (same checkpoint folder):
    .venv/bin/python scripts/train_demo_prior.py --resume [--ckpt-dir .host/train/demo_prior]
Plot a log:
    .venv/bin/python scripts/train_demo_prior.py --plot LOG.jsonl --plot-out FIG.png

ComfyUI is found through --comfyui, else $COMFYUI_PATH, else .host/ComfyUI, else .devcopy.
"""

import argparse
import copy
import datetime
import importlib
import json
import math
import os
import pathlib
import platform
import sys
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]

# scikit-image sample photographs used for training, with the licence their docstrings state,
# and a sampling weight (colour photographs are scarce, so they are drawn more often).
TRAIN_IMAGES = {
    # name: (licence as stated in skimage.data, weight)
    "chelsea": ("CC0 by the photographer (Stefan van der Walt)", 2.0),
    "rocket": ("public domain (SpaceX launch photo of DSCOVR on Falcon 9)", 2.0),
    "retina": ("CC0 1.0 (Mikael Haggstrom, Wikimedia Commons)", 1.0),
    "hubble_deep_field": ("public domain (NASA / HubbleSite)", 0.7),
    "camera": ("CC0 by the photographer (Lav Varshney)", 1.5),
    "clock": ("public domain, released by the photographer (Stefan van der Walt)", 1.0),
    "brick": ("CC0 (CC0Textures, Bricks25)", 1.0),
    "grass": ("CC0 (DeviantArt, linolafett)", 1.0),
    "gravel": ("CC0 (CC0Textures, Gravel04)", 1.0),
    "text": ("public domain (Wikipedia File:Corner.png)", 0.5),
}
# Held out: never seen in training; the demo restores these.
HELDOUT_IMAGES = {
    "astronaut": "public domain (NASA Great Images, Eileen Collins)",
    "coffee": "CC0 by the photographer (Rachel Michetti), courtesy of Pikolo Espresso Bar",
}
# Colour photographs from Debian's wallpaper packages, added with --wallpapers
# (scripts/fetch_wallpapers.sh downloads and unpacks them into one folder): skimage.data has few
# colour photographs, and a prior that has seen mostly grey fills inpainting holes with grey. Paths
# are relative to that folder.
# plasma-workspace-wallpapers (KDE Plasma 5.27.5): licence and author as each wallpaper's
# metadata.json states. Left out: the illustrations and renders (Altai, Autumn, Canopee, ...) and
# ColorfulCups (a photograph of cups, kept out so that no training photograph resembles the held-out
# `coffee`).
# lomiri-wallpapers-16.04 and -20.04 (Debian 12): licence and author as debian/copyright states (added
# 2026-12-07 for a second fine-tune, which did not ship: models/README.md; --wallpaper-sets). Left
# out: the illustrations and renders (umang, Fossa, Infinite-Sea, Painting-Colors), analogpattern
# (not clearly a photograph) and Picture_0B (a fig on a dish: kept out, as ColorfulCups, so that no
# training photograph resembles `coffee`'s cup and saucer).
PLASMA = "usr/share/wallpapers/"
LOMIRI = "usr/share/backgrounds/"
WALLPAPER_IMAGES = {
    # name: (path, licence and author, weight)
    "plasma-BytheWater": (PLASMA + "BytheWater/contents/images/1280x800.jpg", "LGPL-3.0 (Maciej Wiklo)", 1.0),
    "plasma-EveningGlow": (PLASMA + "EveningGlow/contents/images/1280x800.jpg", "LGPL-3.0 (Ian Hex)", 1.0),
    "plasma-FallenLeaf": (PLASMA + "FallenLeaf/contents/images/1280x800.jpg", "LGPL-3.0 (Martin Klapetek)", 1.0),
    "plasma-Kite": (PLASMA + "Kite/contents/images/1280x800.jpg", "LGPL-3.0 (Risto Saukonpää)", 1.0),
    "plasma-OneStandsOut": (PLASMA + "OneStandsOut/contents/images/1280x800.jpg", "LGPL-3.0 (Risto Saukonpää)", 1.0),
    "plasma-Path": (PLASMA + "Path/contents/images/1280x800.jpg", "LGPL-3.0 (Risto Saukonpää)", 1.0),
    "plasma-Volna": (PLASMA + "Volna/contents/images/5120x2880.jpg", "CC-BY-SA-4.0 (Nikita Babin)", 1.0),
    "plasma-DarkestHour": (PLASMA + "DarkestHour/contents/images/1280x800.jpg", "LGPL-3.0 (Risto Saukonpää)", 0.5),
    "plasma-summer_1am": (PLASMA + "summer_1am/contents/images/1280x800.jpg", "LGPL-3.0 (Risto Saukonpää)", 0.5),
    "plasma-ColdRipple": (PLASMA + "ColdRipple/contents/images/1280x800.jpg", "LGPL-3.0 (Risto Saukonpää)", 0.5),
    "plasma-Grey": (PLASMA + "Grey/contents/images/1280x800.jpg", "LGPL-3.0 (Sigi Sagi)", 0.5),
    "lomiri-Bridge": (LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0 (Sander Klootwijk)", 1.0),
    "lomiri-Dragonfly": (LOMIRI + "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0 (Bolly)", 1.0),
    "lomiri-Picture_1A": (LOMIRI + "Picture_1A_by_freespace.jpg", "CC-BY-4.0 (Trevor \"Freespace\")", 1.0),
    "lomiri-Wine": (LOMIRI + "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0 (Jakub Mede)", 1.0),
    "lomiri-aitzgorri": (LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)", 1.0),
    "lomiri-free": (LOMIRI + "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0 (Peter Nerlich)", 1.0),
    "lomiri-friends": (LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)", 1.0),
    "lomiri-greentock": (LOMIRI + "greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0 (Peter Nerlich)", 1.0),
    "lomiri-life": (LOMIRI + "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)", 1.0),
    "lomiri-picosdeeuropa": (LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)", 1.0),
    "lomiri-seeding": (LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0 (Clemens Engelhardt)", 1.0),
    "lomiri-sunset": (LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0 (Aitzol Berasategi)", 1.0),
    "lomiri-Kleiber": (LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0 (Lukas Baubkus)", 1.0),
}
WALLPAPER_MAX_SIDE = 1280  # larger originals are downscaled on loading, as the others come

# Left out on purpose: coins, immunohistochemistry ("no known copyright restrictions", not an
# explicit PD/CC0 dedication), moon, page, stereo_motorcycle, lfw_subset (no licence stated),
# cell, microaneurysms, horse, logo, checkerboard (not photographs / too small).

EVAL_SIGMAS = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 14.0]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100000, help="maximum optimiser steps")
    p.add_argument("--minutes", type=float, default=80.0,
                   help="wall-clock training budget in minutes (over all resumed runs); the "
                        "cosine LR schedule follows max(step/steps, time/budget)")
    p.add_argument("--crop", type=int, default=64, help="training crop side (multiple of 16)")
    p.add_argument("--crop-sizes", default=None,
                   help="comma-separated crop sides drawn at random per step (default: --crop only); "
                        "mixing sizes keeps the net unbiased on images smaller than --crop")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--colour-permutation", type=float, default=0.2, metavar="P",
                   help="share of crops whose RGB channels are shuffled (0 to 1; the base run used 0.2)")
    p.add_argument("--channels", type=int, default=32, help="UNet model_channels (multiple of 32)")
    p.add_argument("--mult", default="1,2,3,4,4", help="UNet channel_mult, comma separated")
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--model-type", default="v_prediction", choices=["v_prediction", "eps"])
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--min-lr-ratio", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved weights")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--amp", choices=["auto", "bf16", "off"], default="auto",
                   help="bf16 autocast (auto: on for CUDA, off on CPU)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--out", default=str(ROOT / "models" / "demo_prior.safetensors"),
                   help="where the final EMA weights go (safetensors, with metadata)")
    p.add_argument("--save-dtype", choices=["fp16", "fp32"], default="fp16")
    p.add_argument("--ckpt-dir", default=str(ROOT / ".host" / "train" / "demo_prior"),
                   help="resumable checkpoint folder (git-ignored)")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT_DIR",
                   help="resume from CKPT_DIR (default: --ckpt-dir)")
    p.add_argument("--save-every", type=float, default=300.0, help="checkpoint every N seconds")
    p.add_argument("--eval-every", type=float, default=None,
                   help="held-out eval every N seconds (default: 60 on CUDA, 900 on CPU, where one eval "
                        "costs about a minute; eval time is not counted in --minutes)")
    p.add_argument("--print-every", type=float, default=10.0, help="progress line every N seconds")
    p.add_argument("--log", default=None, help="JSONL log (default: CKPT_DIR/log.jsonl)")
    p.add_argument("--machine", default=None, help="machine description for the metadata")
    p.add_argument("--comfyui", default=None, help="ComfyUI folder (holding comfy/)")
    p.add_argument("--photos", default=None, metavar="NPZ",
                   help="read the photographs from NPZ (written by --dump-photos) instead of skimage.data")
    p.add_argument("--dump-photos", default=None, metavar="NPZ",
                   help="only write the training and held-out photographs (uint8) to NPZ and exit")
    p.add_argument("--wallpapers", default=None, metavar="DIR",
                   help="also train on the colour photographs of WALLPAPER_IMAGES, read from DIR (the "
                        "unpacked wallpaper packages: scripts/fetch_wallpapers.sh)")
    p.add_argument("--wallpaper-sets", default="plasma", metavar="SETS",
                   help="which of WALLPAPER_IMAGES --wallpapers adds, by name prefix, comma-separated: plasma "
                        "(the shipped prior's fine-tune) and/or lomiri (tried in a second fine-tune, not shipped)")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="start from an exported prior (safetensors written by this script): fine-tuning")
    p.add_argument("--plot", default=None, metavar="LOG", help="only plot LOG (JSONL) and exit")
    p.add_argument("--plot-out", default=None, help="figure path for --plot")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- set-up


def find_comfyui(arg):
    for cand in [arg, os.environ.get("COMFYUI_PATH"), ROOT / ".host" / "ComfyUI", ROOT / ".devcopy"]:
        if cand and (pathlib.Path(cand) / "comfy").is_dir():
            return pathlib.Path(cand)
    sys.exit("ComfyUI not found: pass --comfyui or set COMFYUI_PATH")


def import_comfy(path, device):
    import torch

    sys.path.insert(0, str(path))
    from comfy.cli_args import args as comfy_args

    if device.type == "cpu" or not torch.cuda.is_available():
        comfy_args.cpu = True
    import comfy.model_management  # noqa: F401  (reads the args once)

    # demo_prior imports the engine's padding relatively, so it is loaded as the pack's module; the
    # pack's package stays bare (its __init__ would register every node, and pull in all of ComfyUI).
    pack = types.ModuleType("comfyui_dps")
    pack.__path__ = [str(ROOT)]
    sys.modules.setdefault("comfyui_dps", pack)
    return importlib.import_module("comfyui_dps.nodes.demo_prior")


def describe_machine(device):
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, torch {torch.__version__}"


# ----------------------------------------------------------------------------- data


PHOTOS_NPZ = None  # set by --photos
WALLPAPERS_DIR = None  # set by --wallpapers
WALLPAPER_SETS = ("plasma",)  # set by --wallpaper-sets: the name prefixes of WALLPAPER_IMAGES trained on


def wallpaper_set(name):
    """The set (package) a WALLPAPER_IMAGES name belongs to: its prefix, e.g. 'plasma'."""
    return name.split("-")[0]


def training_images():
    """{name: (licence, weight)} of every photograph this run trains on."""
    images = dict(TRAIN_IMAGES)
    if WALLPAPERS_DIR is not None:
        images.update({k: (v[1], v[2]) for k, v in WALLPAPER_IMAGES.items() if wallpaper_set(k) in WALLPAPER_SETS})
    return images


def photo_uint8(name):
    import numpy as np

    if name in WALLPAPER_IMAGES:
        from PIL import Image

        img = Image.open(pathlib.Path(WALLPAPERS_DIR) / WALLPAPER_IMAGES[name][0])
        img = img.convert("RGB")
        scale = WALLPAPER_MAX_SIDE / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        return np.asarray(img)
    if PHOTOS_NPZ is not None:
        with np.load(PHOTOS_NPZ) as f:
            return f[name]
    import skimage.data

    return np.asarray(getattr(skimage.data, name)())


def load_photo(name):
    """A skimage.data photograph as a float32 CHW tensor in [-1, 1], grey replicated to RGB."""
    import numpy as np
    import torch

    img = photo_uint8(name)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).contiguous() * 2.0 - 1.0


def pyramid(img, crop, scales):
    """Antialiased downscales of one image that still hold a crop."""
    import torch.nn.functional as F

    out = []
    for s in scales:
        h, w = round(img.shape[1] * s), round(img.shape[2] * s)
        if min(h, w) < crop:
            continue
        if s == 1.0:
            out.append(img)
        else:
            out.append(F.interpolate(img[None], size=(h, w), mode="bilinear", antialias=True,
                                     align_corners=False)[0].clamp(-1, 1))
    return out


class CropSampler:
    """Random crops with mild downscaling, horizontal flips and, for a share of them, channel permutations."""

    def __init__(self, names_weights, crop, device, seed, permute):
        # `crop`: the smallest crop side that will be asked for; `permute`: the share of crops
        # whose RGB channels are shuffled
        import numpy as np

        # Downscaling only (never upscaling, which would teach the prior that blur is natural):
        # factors 1 ... 1/4 in quarter octaves, so the prior also sees the sizes the demo uses.
        scales = [2.0 ** (-k / 4) for k in range(9)]
        self.sources, self.weights = [], []
        for name, weight in names_weights.items():
            levels = [lvl.to(device) for lvl in pyramid(load_photo(name), crop, scales)]
            self.sources.append((name, levels))
            self.weights.append(weight)
        self.weights = np.asarray(self.weights) / sum(self.weights)
        self.crop = crop
        self.permute = permute
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed):
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def batch(self, n, crop=None):
        import torch

        c = crop or self.crop
        rng = self.rng
        out = []
        for i in rng.choice(len(self.sources), size=n, p=self.weights):
            levels = [lvl for lvl in self.sources[i][1] if min(lvl.shape[1:]) >= c]
            img = levels[rng.integers(len(levels))]
            y = rng.integers(img.shape[1] - c + 1)
            x = rng.integers(img.shape[2] - c + 1)
            patch = img[:, y:y + c, x:x + c]
            if rng.random() < 0.5:
                patch = patch.flip(-1)
            if rng.random() < self.permute:
                patch = patch[torch.as_tensor(rng.permutation(3), device=patch.device)]
            out.append(patch)
        return torch.stack(out)


def fixed_crops(names, crop, device, per_image=8, seed=1234):
    """Deterministic evaluation crops (at scales 1/2 and 1) of the given photographs."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        for level in pyramid(load_photo(name), crop, [1.0, 0.5]):
            for _ in range(per_image // 2):
                y = rng.integers(level.shape[1] - crop + 1)
                x = rng.integers(level.shape[2] - crop + 1)
                out.append(level[:, y:y + crop, x:x + crop])
    return torch.stack(out).to(device)


# ----------------------------------------------------------------------------- losses


def denoise(model, x0, sigma, eps, amp):
    import torch

    x_t = x0 + sigma.view(-1, 1, 1, 1) * eps
    with torch.autocast(device_type=x0.device.type, dtype=torch.bfloat16, enabled=amp):
        return model.apply_model(x_t, sigma).float()


def per_sample_losses(x0_hat, x0, sigma):
    err = ((x0_hat - x0) ** 2).mean(dim=(1, 2, 3))
    s2 = sigma ** 2
    return err / s2, err * (s2 + 1.0) / s2, err  # eps-MSE, v-MSE, x0-MSE


def evaluate(model, crops, amp, seed=99):
    """Held-out numbers: x0-MSE/PSNR at fixed sigmas, and eps-/v-losses averaged over 20
    timesteps spread uniformly over the 1000 (an estimate of the training objective)."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    ms = model.model_sampling
    res = {"psnr": {}, "mse": {}}
    with torch.no_grad():
        eps = torch.randn(crops.shape, generator=g).to(crops.device)
        for s in EVAL_SIGMAS:
            sigma = torch.full((crops.shape[0],), float(s), device=crops.device)
            mse = per_sample_losses(denoise(model, crops, sigma, eps, amp), crops, sigma)[2].mean().item()
            res["mse"][str(s)] = mse
            res["psnr"][str(s)] = 10 * math.log10(4.0 / max(mse, 1e-12))
        eps_l, v_l = [], []
        for t in torch.linspace(0, 999, 20).round().long():
            sigma = ms.sigmas.to(crops.device)[t].expand(crops.shape[0]).float()
            e, v, _ = per_sample_losses(denoise(model, crops, sigma, eps, amp), crops, sigma)
            eps_l.append(e.mean().item())
            v_l.append(v.mean().item())
    res["eps_loss"] = sum(eps_l) / len(eps_l)
    res["v_loss"] = sum(v_l) / len(v_l)
    return res


def blur_baseline(crops, seed=99):
    """An oracle Gaussian-blur denoiser (best width per sigma, chosen on the data itself):
    a yardstick for the held-out PSNRs."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator(device="cpu").manual_seed(seed)
    eps = torch.randn(crops.shape, generator=g).to(crops.device)
    out = {}
    for s in EVAL_SIGMAS:
        x_t = crops + s * eps
        best = None
        for width in [0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]:
            if width == 0:
                y = x_t
            else:
                r = int(math.ceil(3 * width))
                if r >= min(crops.shape[-2:]):
                    continue  # reflect padding needs a radius below the crop side (small --crop)
                k = torch.exp(-(torch.arange(-r, r + 1, device=crops.device, dtype=torch.float32) ** 2) / (2 * width ** 2))
                k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
                y = F.conv2d(F.pad(x_t, (r, r, 0, 0), mode="reflect"), k, groups=3)
                y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.transpose(-1, -2), groups=3)
            # best global gain too (shrinkage towards 0 helps at high noise)
            a = ((y * crops).sum() / (y * y).sum()).clamp(0, 1)
            mse = ((a * y - crops) ** 2).mean().item()
            best = mse if best is None else min(best, mse)
        out[str(s)] = 10 * math.log10(4.0 / best)
    return out


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(ckpt_dir, model, ema_model, opt, state):
    import torch
    from safetensors.torch import save_file

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().float().cpu().contiguous() for k, v in model.diffusion_model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().float().cpu().contiguous() for k, v in ema_model.diffusion_model.state_dict().items()})
    save_file(tensors, str(ckpt_dir / "weights.safetensors.tmp"))
    os.replace(ckpt_dir / "weights.safetensors.tmp", ckpt_dir / "weights.safetensors")
    # Optimizer moments: torch.save, in the dev checkpoint only (git-ignored, never shipped).
    torch.save(opt.state_dict(), ckpt_dir / "optim.pt.tmp")
    os.replace(ckpt_dir / "optim.pt.tmp", ckpt_dir / "optim.pt")
    (ckpt_dir / "state.json").write_text(json.dumps(state, indent=1))


def load_checkpoint(ckpt_dir, model, ema_model, opt, device):
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(ckpt_dir / "weights.safetensors"), device=str(device))
    model.diffusion_model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema_model.diffusion_model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_path = ckpt_dir / "optim.pt"
    if opt_path.exists():
        opt.load_state_dict(torch.load(opt_path, map_location=device, weights_only=True))
    return json.loads((ckpt_dir / "state.json").read_text())


def export(path, ema_model, unet_config, args, state, machine, final_eval, complete=True):
    import torch
    from safetensors.torch import save_file

    dtype = torch.float16 if args.save_dtype == "fp16" else torch.float32
    tensors = {k: v.detach().to(dtype).cpu().contiguous() for k, v in ema_model.diffusion_model.state_dict().items()}
    n_params = sum(v.numel() for v in tensors.values())
    meta = {
        "dps.format": "ComfyUI-DPS demo prior v1",
        "dps.unet_config": json.dumps(unet_config),
        "dps.model_type": args.model_type,
        "dps.latent_format": "ChromaRadiance (pixel space, 3 channels, [-1, 1])",
        "dps.model_sampling": "ModelSamplingDiscrete (SD linear betas 0.00085..0.012, 1000 steps)",
        "dps.parameters": str(n_params),
        "dps.training_images": json.dumps({k: v[0] for k, v in training_images().items()}),
        "dps.heldout_images": json.dumps(HELDOUT_IMAGES),
        "dps.steps": str(state["step"] + int(state.get("init", {}).get("steps") or 0)),
        "dps.stages": json.dumps((state.get("init_stages") or ([state["init"]] if state.get("init") else [])) + [
            {"steps": state["step"], "train_seconds": round(state["elapsed"]), "machine": machine,
             "command": state.get("command", ""), "crop_sizes": args.crop_sizes or str(args.crop)}]),
        "dps.train_seconds": f"{state['elapsed'] + float(state.get('init', {}).get('train_seconds') or 0):.0f}",
        "dps.final_loss": f"{state['ema_loss']:.5f}",
        "dps.final_loss_kind": f"EMA of the training {'v' if args.model_type == 'v_prediction' else 'eps'}-MSE",
        "dps.final_eps_loss": f"{state['ema_eps_loss']:.5f}",
        "dps.heldout_eval": json.dumps(final_eval),
        "dps.crop": args.crop_sizes or str(args.crop),
        "dps.batch": str(args.batch),
        "dps.lr": str(args.lr),
        "dps.ema": str(args.ema),
        "dps.seed": str(args.seed),
        "dps.machine": (f"{state['init']['machine']}; fine-tuned on {machine}" if state.get("init") else machine),
        "dps.date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dps.command": state.get("command", ""),
        "dps.saved_dtype": args.save_dtype,
        # smaller inputs are reflect-padded up to this at inference (see PaddedUNetModel)
        "dps.min_size": str(min(int(c) for c in (args.crop_sizes or str(args.crop)).split(","))),
        "dps.complete": "true" if complete else "false (intermediate export of a run in progress)",
    }
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return n_params


# ----------------------------------------------------------------------------- plotting


def plot(log_path, out_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in pathlib.Path(log_path).read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot([r["step"] for r in train], [r["ema_loss"] for r in train], label="train loss (EMA)")
    if evals:
        key = "v_loss" if rows[0].get("model_type", "v_prediction") == "v_prediction" else "eps_loss"
        ax.plot([r["step"] for r in evals], [r["heldout"][key] for r in evals], "o-", label="held-out (EMA weights)")
        ax.plot([r["step"] for r in evals], [r["train_crops"][key] for r in evals], "s--", label="training crops (EMA weights)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()
    ax = axes[1]
    if evals:
        for s in ["0.05", "0.2", "0.5", "1.0", "2.0"]:
            ax.plot([r["step"] for r in evals], [r["heldout"]["psnr"][s] for r in evals], label=f"sigma {s}")
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR of the x0 estimate (dB)")
    ax.set_title("held-out denoising (astronaut, coffee)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    print(f"wrote {out_path}")


# ----------------------------------------------------------------------------- training


def main(argv=None):
    global PHOTOS_NPZ, WALLPAPERS_DIR, WALLPAPER_SETS
    args = parse_args(argv)
    WALLPAPERS_DIR = args.wallpapers
    WALLPAPER_SETS = tuple(args.wallpaper_sets.split(","))
    known = {wallpaper_set(name) for name in WALLPAPER_IMAGES}
    if not set(WALLPAPER_SETS) <= known:
        sys.exit(f"--wallpaper-sets: expected a comma-separated choice of {', '.join(sorted(known))}, "
                 f"got {args.wallpaper_sets!r}")
    if not 0.0 <= args.colour_permutation <= 1.0:
        sys.exit(f"--colour-permutation: expected a share from 0 to 1, got {args.colour_permutation}")
    if args.dump_photos:
        import numpy as np

        np.savez_compressed(args.dump_photos, **{n: photo_uint8(n) for n in [*training_images(), *HELDOUT_IMAGES]})
        print(f"wrote {args.dump_photos}")
        return
    PHOTOS_NPZ = args.photos
    if args.plot:
        plot(args.plot, args.plot_out or str(pathlib.Path(args.plot).with_suffix(".png")))
        return

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count())
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if args.eval_every is None:
        args.eval_every = 900.0 if device.type == "cpu" else 60.0
    amp = (args.amp == "bf16") or (args.amp == "auto" and device.type == "cuda")

    dp = import_comfy(find_comfyui(args.comfyui), device)
    unet_config = dp.full_unet_config({
        "model_channels": args.channels,
        "channel_mult": [int(m) for m in args.mult.split(",")],
        "num_res_blocks": args.res_blocks,
        "image_size": args.crop,
    })
    factor = dp.downsampling_factor(unet_config)
    crop_sizes = [int(c) for c in args.crop_sizes.split(",")] if args.crop_sizes else [args.crop]
    if any(c % factor for c in [args.crop, *crop_sizes]):
        sys.exit(f"crop sides must be multiples of {factor}")

    torch.manual_seed(args.seed)
    # Padded like the shipped prior (metadata dps.min_size): training crops are never smaller, so
    # only the 64 px held-out evaluation is padded, as the pack runs such images.
    model = dp.build_model(unet_config, args.model_type, min_size=min(crop_sizes))
    dp.init_weights(model)
    model.to(device)
    model.diffusion_model.train()
    ema_model = copy.deepcopy(model).eval()
    for p in ema_model.parameters():
        p.requires_grad_(False)
    n_params = sum(p.numel() for p in model.diffusion_model.parameters())

    decay, no_decay = [], []
    for p in model.diffusion_model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.99))

    ckpt_dir = pathlib.Path(args.resume or args.ckpt_dir)
    log_path = pathlib.Path(args.log) if args.log else ckpt_dir / "log.jsonl"
    state = {"step": 0, "elapsed": 0.0, "ema_loss": None, "ema_eps_loss": None,
             "command": " ".join(["scripts/train_demo_prior.py"] + sys.argv[1:])}
    if args.init:
        from safetensors import safe_open
        from safetensors.torch import load_file

        init_sd = {k: v.float() for k, v in load_file(args.init).items()}
        model.diffusion_model.load_state_dict(init_sd)
        ema_model.diffusion_model.load_state_dict(init_sd)
        with safe_open(args.init, framework="pt") as f:
            init_meta = f.metadata() or {}
        state["init"] = {k[4:]: init_meta.get(k, "") for k in
                         ("dps.steps", "dps.train_seconds", "dps.machine", "dps.command", "dps.date", "dps.final_loss")}
        # The record of every stage before this one (an init that is itself a fine-tune has several).
        state["init_stages"] = json.loads(init_meta.get("dps.stages") or "[]") or [state["init"]]
        print(f"initialised from {args.init} ({init_meta.get('dps.steps')} steps)")
    if args.resume is not None and (ckpt_dir / "state.json").exists():
        state = load_checkpoint(ckpt_dir, model, ema_model, opt, device)
        print(f"resumed from {ckpt_dir} at step {state['step']} ({state['elapsed'] / 60:.1f} min)")
    elif args.resume is not None:
        print(f"nothing to resume in {ckpt_dir}: starting fresh")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a")

    def write_log(row):
        log.write(json.dumps(row) + "\n")
        log.flush()

    sampler = CropSampler({k: v[1] for k, v in training_images().items()}, min(crop_sizes), device, args.seed,
                          permute=args.colour_permutation)
    sampler.reseed(args.seed + state["step"])
    noise_gen = torch.Generator(device=device).manual_seed(args.seed + 1 + state["step"])
    eval_crop = min(args.crop, 128)
    heldout = fixed_crops(list(HELDOUT_IMAGES), eval_crop, device)
    train_crops = fixed_crops(["chelsea", "rocket", "camera", "brick"], eval_crop, device, per_image=4)
    heldout_small = fixed_crops(list(HELDOUT_IMAGES), 64, device)  # small images, padded as the pack runs them
    sigmas_all = ema_model.model_sampling.sigmas.to(device).float()
    machine = args.machine or describe_machine(device)
    budget = args.minutes * 60.0

    print(f"device {device} ({machine}), amp bf16: {amp}")
    print(f"UNet {json.dumps({k: unet_config[k] for k in ('model_channels', 'channel_mult', 'num_res_blocks')})}: "
          f"{n_params / 1e6:.2f} M parameters, model type {args.model_type}")
    print(f"crops {crop_sizes}, batch {args.batch}, budget {args.minutes} min / {args.steps} steps, "
          f"{len(training_images())} training photographs, held out: {', '.join(HELDOUT_IMAGES)}")
    write_log({"kind": "start", "step": state["step"], "args": vars(args), "machine": machine,
               "params": n_params, "model_type": args.model_type, "unet_config": unet_config})

    def progress():
        return max(state["step"] / args.steps, state["elapsed"] / budget)

    def lr_at():
        warm = min(1.0, (state["step"] + 1) / max(1, args.warmup))
        p = min(1.0, progress())
        return args.lr * warm * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))

    def run_eval():
        ev = {"kind": "eval", "step": state["step"], "elapsed": state["elapsed"],
              "heldout": evaluate(ema_model, heldout, amp), "train_crops": evaluate(ema_model, train_crops, amp),
              "heldout_64": evaluate(ema_model, heldout_small, amp)}
        write_log(ev)
        h = ev["heldout"]
        print(f"  eval step {state['step']}: held-out eps-loss {h['eps_loss']:.4f} v-loss {h['v_loss']:.4f} "
              f"| PSNR@sigma " + " ".join(f"{s}:{h['psnr'][str(s)]:.1f}" for s in (0.05, 0.2, 0.5, 1.0, 2.0))
              + f" | train crops v-loss {ev['train_crops']['v_loss']:.4f}"
              + f" | 64px held-out PSNR@0.05/0.2 {ev['heldout_64']['psnr']['0.05']:.1f}/{ev['heldout_64']['psnr']['0.2']:.1f}",
              flush=True)
        return ev

    t_last = time.time()
    t_print = t_save = t_eval = t_last
    steps_since, t_since = 0, t_last
    last_eval = None
    ema_params = list(ema_model.diffusion_model.parameters())
    params = list(model.diffusion_model.parameters())
    while progress() < 1.0:
        lr = lr_at()
        for group in opt.param_groups:
            group["lr"] = lr
        crop = crop_sizes[int(sampler.rng.integers(len(crop_sizes)))]
        # same pixels per step whatever the crop: batch scales with (max crop / crop)^2
        x0 = sampler.batch(max(1, round(args.batch * (max(crop_sizes) / crop) ** 2)), crop)
        t = torch.randint(0, len(sigmas_all), (x0.shape[0],), device=device, generator=noise_gen)
        sigma = sigmas_all[t]
        eps = torch.randn(x0.shape, device=device, generator=noise_gen)
        x0_hat = denoise(model, x0, sigma, eps, amp)
        eps_l, v_l, _ = per_sample_losses(x0_hat, x0, sigma)
        loss = (v_l if args.model_type == "v_prediction" else eps_l).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + state["step"]) / (10 + state["step"]))
            torch._foreach_lerp_(ema_params, params, 1.0 - d)

        loss_v, eps_v = loss.item(), eps_l.mean().item()
        if not math.isfinite(loss_v):
            sys.exit(f"loss is {loss_v} at step {state['step']}: stopping")
        state["ema_loss"] = loss_v if state["ema_loss"] is None else 0.99 * state["ema_loss"] + 0.01 * loss_v
        state["ema_eps_loss"] = eps_v if state["ema_eps_loss"] is None else 0.99 * state["ema_eps_loss"] + 0.01 * eps_v
        state["step"] += 1
        steps_since += 1
        now = time.time()
        state["elapsed"] += now - t_last
        t_last = now

        if now - t_print >= args.print_every or state["step"] == 1:
            rate = steps_since / max(now - t_since, 1e-9)
            left = min((args.steps - state["step"]) / max(rate, 1e-9), budget - state["elapsed"])
            print(f"step {state['step']:6d}  loss {loss_v:.4f}  ema loss {state['ema_loss']:.4f}  "
                  f"(eps-equiv {state['ema_eps_loss']:.4f})  lr {lr:.2e}  {rate:.2f} it/s  "
                  f"elapsed {state['elapsed'] / 60:.1f} min  ETA {max(left, 0) / 60:.1f} min", flush=True)
            write_log({"kind": "train", "step": state["step"], "elapsed": state["elapsed"], "loss": loss_v,
                       "ema_loss": state["ema_loss"], "ema_eps_loss": state["ema_eps_loss"], "lr": lr, "it_s": rate})
            t_print, steps_since, t_since = now, 0, now
        if now - t_eval >= args.eval_every:
            last_eval = run_eval()
            t_eval = t_last = time.time()
        if now - t_save >= args.save_every:
            save_checkpoint(ckpt_dir, model, ema_model, opt, state)
            # also the weights so far, so that a run killed later still leaves usable weights
            export(args.out, ema_model, unet_config, args, state, machine,
                   {"last_eval": last_eval["heldout"] if last_eval else None}, complete=False)
            t_save = t_last = time.time()

    save_checkpoint(ckpt_dir, model, ema_model, opt, state)
    last_eval = run_eval()
    baseline = blur_baseline(heldout)
    final_eval = {"psnr_db": {s: round(v, 2) for s, v in last_eval["heldout"]["psnr"].items()},
                  "oracle_gaussian_blur_psnr_db": {s: round(v, 2) for s, v in baseline.items()},
                  "psnr_db_64px": {s: round(v, 2) for s, v in last_eval["heldout_64"]["psnr"].items()},
                  "eps_loss": round(last_eval["heldout"]["eps_loss"], 5),
                  "v_loss": round(last_eval["heldout"]["v_loss"], 5),
                  "crops": f"{heldout.shape[0]} crops of {eval_crop}x{eval_crop} at scales 1 and 1/2"}
    write_log({"kind": "final", "step": state["step"], "elapsed": state["elapsed"], "final_eval": final_eval,
               "ema_loss": state["ema_loss"], "ema_eps_loss": state["ema_eps_loss"]})
    print("held-out PSNR (dB) by sigma, model vs oracle Gaussian blur:")
    for s in EVAL_SIGMAS:
        print(f"  sigma {s:>5}: {last_eval['heldout']['psnr'][str(s)]:6.2f}  vs  {baseline[str(s)]:6.2f}")
    n = export(args.out, ema_model, unet_config, args, state, machine, final_eval)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {n / 1e6:.2f} M parameters, {size / 1e6:.1f} MB, step {state['step']}, "
          f"final loss {state['ema_loss']:.4f} (eps-equiv {state['ema_eps_loss']:.4f})")


if __name__ == "__main__":
    main()
