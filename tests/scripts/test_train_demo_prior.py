"""scripts/train_demo_prior.py, run for a few steps on the CPU as its documented command runs it:
a fixed seed gives the same weights twice, an interrupted run resumes where its checkpoint left
off, and what it writes loads through the pack's own loader and denoises through ComfyUI.

A tiny network (32 channels, two levels, 32 px crops) keeps each run to seconds.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from testkit.host import comfyui_path, load_pack

pack = load_pack()
pytestmark = pytest.mark.slow

from comfyui_dps.nodes import demo_prior  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_demo_prior.py"
TINY = ["--device", "cpu", "--threads", "1", "--channels", "32", "--mult", "1,2", "--crop", "32",
        "--batch", "2", "--minutes", "5", "--eval-every", "1e9", "--save-every", "1e9", "--print-every", "1e9"]


def train(tmp_path: pathlib.Path, name: str, *extra: str, run: str = "") -> tuple[pathlib.Path, str]:
    """Run the script with its checkpoints in `name`-ckpt; returns (the exported weights, what it
    printed)."""
    out = tmp_path / f"{name}{run}.safetensors"
    command = [sys.executable, str(SCRIPT), *TINY, "--comfyui", str(comfyui_path()), "--out", str(out),
               "--ckpt-dir", str(tmp_path / f"{name}-ckpt"), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, done.stdout


def load_script():
    spec = importlib.util.spec_from_file_location("train_demo_prior", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    first, _ = train(tmp, "a", "--steps", "4")
    again, _ = train(tmp, "b", "--steps", "4")
    part, _ = train(tmp, "c", "--steps", "2")
    resumed, printed = train(tmp, "c", "--steps", "4", "--resume", run="-resumed")
    return {"first": first, "again": again, "part": part, "resumed": resumed, "resumed_printed": printed,
            "tmp": tmp}


def test_fixed_seed_gives_the_same_weights(runs):
    first, again = load_file(str(runs["first"])), load_file(str(runs["again"]))
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_resume_continues_from_the_checkpoint(runs):
    assert "resumed from" in runs["resumed_printed"] and "at step 2" in runs["resumed_printed"]
    header = demo_prior.read_header(runs["resumed"])
    assert int(header["dps.steps"]) == 4
    state = json.loads((runs["tmp"] / "c-ckpt" / "state.json").read_text())
    assert state["step"] == 4
    log = [json.loads(line) for line in (runs["tmp"] / "c-ckpt" / "log.jsonl").read_text().splitlines()]
    starts = [row["step"] for row in log if row["kind"] == "start"]
    assert starts == [0, 2]
    # The weights moved on from the interrupted run's.
    part, resumed = load_file(str(runs["part"])), load_file(str(runs["resumed"]))
    assert any(not torch.equal(part[k], resumed[k]) for k in part)


def test_exported_weights_load_and_denoise_through_comfyui(runs):
    header = demo_prior.read_header(runs["first"])
    config = json.loads(header["dps.unet_config"])
    assert config["model_channels"] == 32 and config["channel_mult"] == [1, 2]
    assert header["dps.complete"] == "true"
    assert set(json.loads(header["dps.heldout_eval"])["psnr_db"]) == {str(s) for s in (
        0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 14.0)}
    model_patcher, _ = demo_prior.load_demo_prior(runs["first"])
    model = model_patcher.model
    x0 = torch.zeros(1, 3, 32, 32)
    sigma = torch.tensor([1.0])
    with torch.inference_mode():
        denoised = model.apply_model(x0 + sigma * torch.randn_like(x0), sigma)
    assert denoised.shape == x0.shape and torch.isfinite(denoised).all()


def test_wallpapers_join_the_training_photographs_downscaled(tmp_path):
    """--wallpapers reads WALLPAPER_IMAGES from the folder the wallpaper packages were unpacked into
    (written here as small stand-in files at the packages' paths) and caps their longer side."""
    import numpy as np
    from PIL import Image

    script = load_script()
    root = tmp_path / "wallpapers"
    rng = np.random.default_rng(0)
    for i, (path, _, _) in enumerate(script.WALLPAPER_IMAGES.values()):
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        size = (2000, 500) if i == 0 else (300, 200)  # (width, height)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(file)
    npz = tmp_path / "photos.npz"
    done = subprocess.run([sys.executable, str(SCRIPT), "--wallpapers", str(root), "--wallpaper-sets", "plasma,lomiri",
                           "--dump-photos", str(npz)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(npz) as photos:
        names = set(photos.files)
        first = photos[next(iter(script.WALLPAPER_IMAGES))]
        others = [photos[name] for name in list(script.WALLPAPER_IMAGES)[1:]]
    assert names == set(script.TRAIN_IMAGES) | set(script.WALLPAPER_IMAGES) | set(script.HELDOUT_IMAGES)
    assert first.shape == (320, script.WALLPAPER_MAX_SIDE, 3) and first.dtype == np.uint8
    assert all(o.shape == (200, 300, 3) for o in others)
    assert not set(script.WALLPAPER_IMAGES) & set(script.HELDOUT_IMAGES)


def test_an_unknown_wallpaper_set_is_refused_by_name():
    done = subprocess.run([sys.executable, str(SCRIPT), "--wallpaper-sets", "plasma,lomri", "--dump-photos", "unused.npz"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode != 0
    assert "--wallpaper-sets: expected a comma-separated choice of lomiri, plasma, got 'plasma,lomri'" in done.stderr


def test_colour_permutation_shuffles_the_given_share_of_crops(monkeypatch):
    """--colour-permutation P: a share P of the crops get their RGB channels in a random order (a
    sixth of those orders is the identity), the rest keep them; P = 0 leaves every crop's colours."""
    script = load_script()
    channels = torch.tensor([-0.5, 0.0, 0.5])
    monkeypatch.setattr(script, "load_photo", lambda name: channels[:, None, None].expand(3, 64, 64).clone())
    shuffled = {}
    for share in (0.0, 0.6):
        crops = script.CropSampler({"flat": 1.0}, 32, "cpu", seed=0, permute=share).batch(600)
        colours = crops.mean(dim=(2, 3))
        assert all(sorted(c.tolist()) == pytest.approx(channels.tolist()) for c in colours)
        shuffled[share] = int((~torch.isclose(colours, channels).all(dim=1)).sum())
    assert shuffled[0.0] == 0
    assert abs(shuffled[0.6] - 600 * 0.6 * 5 / 6) < 50  # binomial: expected 300, sd about 12


def test_a_colour_permutation_share_outside_0_to_1_is_refused():
    done = subprocess.run([sys.executable, str(SCRIPT), "--colour-permutation", "1.5", "--dump-photos", "unused.npz"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode != 0
    assert "--colour-permutation: expected a share from 0 to 1, got 1.5" in done.stderr
