"""The example workflows in workflows/ against a real ComfyUI server: every node type exists, every
widget value is one the server accepts (model files included), every file converts to an API prompt,
documents itself in a Note, has a thumbnail, and is served by ComfyUI as a template of this pack.

Thumbnails: both frontends tested here (1.32.9 and 1.58.1) ask for a custom node's template thumbnail
at /api/workflow_templates/<pack>/<name>.jpg, the only format they ask for. ComfyUI 0.3.75 serves the
whole workflows/ folder there; newer ComfyUI (0.38.1, read from its source) serves only `.json` on that
route, so the .jpg answers 404 and the frontend shows its own placeholder image (seen in the browser
by tests/integration/test_frontend.py). The tests below accept either answer for a thumbnail.

The server gets its own base directory whose models/ folders hold EMPTY placeholder files named as the
workflows name them, so the loader combos list them; nothing is ever loaded from them.
"""

import io
import json
import pathlib
import urllib.error

import numpy as np
import pytest
from PIL import Image

from testkit.comfy_server import ComfyServer
from testkit.workflow_api import check_workflow, ui_to_api

pytestmark = pytest.mark.server

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
PACK_NAME = "ComfyUI-DPS"  # the folder name the server links this pack under
NOTE_TYPES = {"Note", "MarkdownNote"}

# The model files the shipped workflows load, by ComfyUI model folder. Files named in a workflow's
# properties.models (the frontend's missing-model list) are added to these.
PLACEHOLDER_MODELS = {
    "checkpoints": ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"],
    "diffusion_models": ["flux1-dev.safetensors"],
    "text_encoders": ["clip_l.safetensors", "t5xxl_fp16.safetensors"],
    "vae": ["ae.safetensors"],
}


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def workflow_id(path: pathlib.Path) -> str:
    return path.stem


#: ComfyUI's model loader nodes: a workflow with none of them runs right after install (demo prior).
LOADERS = {"CheckpointLoaderSimple", "UNETLoader", "DualCLIPLoader", "CLIPLoader", "VAELoader"}


def needs_no_download(workflow: dict) -> bool:
    return not LOADERS & {node["type"] for node in workflow["nodes"]}


# -- the base directory ----------------------------------------------------------------------------
def example_photo(size: int) -> Image.Image:
    """scikit-image's astronaut (NASA, public domain) at size x size."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.BICUBIC)


def inpainting_photo(size: int = 512) -> Image.Image:
    """The photo with a transparent hole: Load Image's MASK is 1 there (white = to generate)."""
    picture = example_photo(size).convert("RGBA")
    alpha = np.full((size, size), 255, dtype=np.uint8)
    alpha[size * 5 // 16: size * 11 // 16, size * 3 // 8: size * 11 // 16] = 0
    picture.putalpha(Image.fromarray(alpha))
    return picture


INPUT_PICTURES = {
    "dps_inpainting_photo.png": lambda: inpainting_photo(512),
    "dps_sharp_photo.png": lambda: example_photo(512),
    "dps_lowres_photo_128.png": lambda: example_photo(128),
    "dps_lowres_photo_256.png": lambda: example_photo(256),
}


def model_files(workflows) -> dict[str, set[str]]:
    files = {folder: set(names) for folder, names in PLACEHOLDER_MODELS.items()}
    for workflow in workflows:
        for node in workflow["nodes"]:
            for entry in node.get("properties", {}).get("models", []):
                files.setdefault(entry["directory"], set()).add(entry["name"])
    return files


def input_pictures(workflows) -> set[str]:
    names = set(INPUT_PICTURES)
    for workflow in workflows:
        for node in workflow["nodes"]:
            if node["type"] == "LoadImage" and node.get("widgets_values"):
                names.add(node["widgets_values"][0])
    return names


def prepare_base(base: pathlib.Path) -> pathlib.Path:
    """A ComfyUI base directory with empty placeholder model files and example input pictures for
    every workflow in workflows/."""
    workflows = [load(path) for path in WORKFLOWS]
    for folder, names in model_files(workflows).items():
        for name in names:
            target = base / "models" / folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
    for name in input_pictures(workflows):
        target = base / "input" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        make = INPUT_PICTURES.get(name, lambda: example_photo(512))
        make().save(target)
    return base


def start_server(base: pathlib.Path, **options) -> ComfyServer:
    """A server on a prepared base directory; options go to ComfyServer (e.g. front_end_root)."""
    return ComfyServer(extra_custom_nodes=[ROOT / "tests" / "dps_test_pack"], base_dir=prepare_base(base),
                       **options).start()


@pytest.fixture(scope="module")
def workflow_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("workflow-base"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def object_info(workflow_server):
    return workflow_server.object_info()


# -- tests ----------------------------------------------------------------------------------------
def test_there_are_example_workflows():
    names = {path.stem for path in WORKFLOWS}
    expected = {"sd15-inpainting", "sd15-super-resolution", "sd15-motion-deblur", "sdxl-super-resolution",
                "flux-inpainting", "custom-sampler-dps-guidance"}
    assert expected <= names, sorted(expected - names)


def test_placeholder_models_are_listed_by_the_loaders(object_info):
    """The base directory works: the loader combos list the placeholder files (else every check below
    would fail for a reason unrelated to the workflows)."""
    checkpoints = object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert "v1-5-pruned-emaonly.safetensors" in checkpoints, checkpoints
    assert "flux1-dev.safetensors" in object_info["UNETLoader"]["input"]["required"]["unet_name"][0]


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_is_accepted_by_the_server(path, object_info):
    workflow = load(path)
    assert workflow.get("version") == 0.4, "UI-format workflows are version 0.4"
    assert check_workflow(workflow, object_info) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_converts_to_an_api_prompt(path, object_info):
    workflow = load(path)
    prompt = ui_to_api(workflow, object_info)
    runnable = [node for node in workflow["nodes"] if node["type"] not in NOTE_TYPES and node.get("mode", 0) == 0]
    assert set(prompt) == {str(node["id"]) for node in runnable}
    # Every link lands in the prompt as [origin id, origin slot] of a node that is in the prompt.
    for node_id, entry in prompt.items():
        for name, value in entry["inputs"].items():
            if isinstance(value, list):
                assert value[0] in prompt, f"node {node_id}.{name} links to {value[0]}, which is not in the prompt"
    # An output node, so that queueing the prompt does something.
    assert any(object_info[entry["class_type"]].get("output_node") for entry in prompt.values())


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_links_are_consistent(path, object_info):
    """Links agree with the sockets they join: ids, slots and types on both ends (what the frontend
    relies on when it draws and serialises the graph), and no two nodes overlap on the canvas."""
    workflow = load(path)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]), "duplicate node ids"
    assert workflow["last_node_id"] >= max(nodes)
    links = {link[0]: link for link in workflow["links"]}
    assert workflow["last_link_id"] >= max(links, default=0)
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        source, sink = nodes[origin], nodes[target]
        assert link_id in source["outputs"][origin_slot]["links"], (link_id, source["type"])
        assert sink["inputs"][target_slot]["link"] == link_id, (link_id, sink["type"])
        assert source["outputs"][origin_slot]["type"] == kind, (link_id, source["type"], kind)
        assert sink["inputs"][target_slot]["type"] in (kind, "*"), (link_id, sink["type"], kind)
        info = object_info[source["type"]]
        assert info["output"][origin_slot] == kind, (link_id, source["type"], info["output"])
    for node in workflow["nodes"]:
        for socket in node.get("inputs", []):
            assert socket.get("link") is None or socket["link"] in links, (node["id"], socket["name"])
    boxes = [(node["id"], node["pos"][0], node["pos"][1] - 30, node["pos"][0] + node["size"][0],
              node["pos"][1] + node["size"][1]) for node in workflow["nodes"]]  # 30: the title bar
    for i, (a, ax0, ay0, ax1, ay1) in enumerate(boxes):
        for b, bx0, by0, bx1, by1 in boxes[i + 1:]:
            assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, f"nodes {a} and {b} overlap"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_explains_itself_in_a_note(path):
    workflow = load(path)
    notes = [node for node in workflow["nodes"] if node["type"] in NOTE_TYPES]
    assert notes, "an example workflow needs a Note saying what to load and how to tune it"
    text = "\n".join(str(value) for node in notes for value in node.get("widgets_values", []))
    for node in workflow["nodes"]:
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.endswith((".safetensors", ".ckpt", ".pt", ".sft", ".gguf")):
                assert value in text, f"the Note does not say where to get {value}"
    if any(node["type"] in ("DPSKSampler", "DPSGuidance") for node in workflow["nodes"]):
        for word in ("guidance_strength", "steps", "mode"):
            assert word in text, f"the Note does not explain {word}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_has_a_thumbnail(path):
    """<name>.jpg beside <name>.json: the file the frontends (1.32.9 and 1.58.1) ask for."""
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} is missing"
    with Image.open(thumbnail) as picture:
        assert picture.format == "JPEG"
        assert 200 <= picture.width <= 800, picture.size


def fetch(server, path: str) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET, without raising on 4xx."""
    try:
        return 200, server.get_bytes(path)
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_comfyui_serves_the_workflows_as_templates(workflow_server):
    """The template list names every workflow and each one is served as it is in workflows/. A thumbnail
    is either served as the committed file (ComfyUI 0.3.75) or answered 404 (a backend that serves only
    .json on this route, as ComfyUI 0.38.1 does): the frontends then show their placeholder. Anything
    else (another file, a server error) fails."""
    templates = workflow_server.get("/workflow_templates")
    assert sorted(templates.get(PACK_NAME, [])) == sorted(path.stem for path in WORKFLOWS), templates
    thumbnails = {}
    for path in WORKFLOWS:
        served = json.loads(workflow_server.get_bytes(f"/api/workflow_templates/{PACK_NAME}/{path.name}"))
        assert served == load(path)
        if path.with_suffix(".jpg").is_file():  # a missing one fails test_workflow_has_a_thumbnail
            status, body = fetch(workflow_server, f"/api/workflow_templates/{PACK_NAME}/{path.stem}.jpg")
            assert status in (200, 404), (path.stem, status, body[:200])
            if status == 200:
                assert body == path.with_suffix(".jpg").read_bytes(), f"{path.stem}.jpg: not the committed file"
                assert Image.open(io.BytesIO(body)).format == "JPEG"
            thumbnails[path.stem] = status
    print(f"thumbnails served (200) or not (404): {thumbnails}")
    assert len(set(thumbnails.values())) <= 1, f"some thumbnails are served, others not: {thumbnails}"
