"""Writes the demo-prior example workflows (workflows/demo-prior-*.json) in ComfyUI's UI format.

Dev tool, not shipped: the JSON files it writes are what ships, and `scripts/demo.py` runs those
files (not this script's dictionaries), so the demo always measures the workflows users load.

    .venv/bin/python scripts/demo_workflows.py            # (re)write the four files
    .venv/bin/python scripts/demo_workflows.py --check    # exit 1 if a file differs

Each workflow: DPS Example Image (a held-out photograph bundled with the pack) -> an operator ->
Simulate Measurement -> DPS Empty Latent -> DPS KSampler (with Load DPS Demo Prior) -> VAE Decode ->
Save Image, with previews of the degraded picture and of the residual plot, the text report, and a
Note. They run right after install: nothing to upload or download.

Layout: the saved view (scale 0.9) shows the whole graph in a 1600 x 1000 browser window clear of the
frontend's tab bar, side bar, Run toolbar and minimap, with room inside DPS KSampler for the latent
preview; tests/integration/test_frontend.py checks that in the real frontend.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from testkit.host import import_pack  # noqa: E402

import_pack()  # the engine only: no ComfyUI needed to write the files

from comfyui_dps.dps.guidance.registry import METHODS, auto_choice  # noqa: E402
from comfyui_dps.dps.operators import GaussianBlur, Inpainting, RandomInpainting, SuperResolution  # noqa: E402

#: The bundled photograph the workflows start from (DPS Example Image: photo, size).
DEMO_IMAGE = ("astronaut", 128)
#: Sampling settings shared by the four workflows: DPS KSampler's own defaults (guidance_mode auto,
#: which picks proximal, pigdm or dps per operator: the Note says which; strength 1; 50 steps of euler_ancestral), what a
#: user gets without tuning. With `dps` this small prior needed strength 2 and 100 steps (tuned with
#: scripts/demo_tune.py on a photograph that is neither a training nor a test photo, docs/demo.md).
SAMPLER = {"seed": 0, "steps": 50, "sampler_name": "euler_ancestral", "scheduler": "normal",
           "guidance_strength": 1.0, "guidance_mode": "auto"}

#: The value of the "control after generate" widget that the frontend adds after the sampler's seed
#: (its default is "randomize"): keep the seed, so that a re-run repeats the result. The operator
#: and measurement seeds have no such widget (control_after_generate=False).
SEED_WIDGET = "fixed"

#: The saved view: canvas (0, 0) lands at page pixel (76, 135), below the tab bar and the Run toolbar,
#: right of the side bar; at 0.9 the Note's text is 9 px on screen (10 px at 100%).
VIEW_SCALE, VIEW_OFFSET = 0.9, (85, 150)
#: Columns (x of each node's left edge) and widths, in canvas units.
COL = (0, 330, 660, 990, 1360)


class Graph:
    """A small builder of UI-format (frontend 1.x, version 0.4) workflows."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(self, type_: str, pos, size, inputs=(), outputs=(), widgets=None, title=None, color=None) -> dict:
        node = {
            "id": len(self.nodes) + 1,
            "type": type_,
            "pos": list(pos),
            "size": list(size),
            "flags": {},
            "order": len(self.nodes),
            "mode": 0,
            "inputs": [{"name": name, "type": kind, "link": None} for name, kind in inputs],
            "outputs": [{"name": name, "type": kind, "links": [], "slot_index": i}
                        for i, (name, kind) in enumerate(outputs)],
            "properties": {"Node name for S&R": type_},
        }
        if widgets is not None:
            node["widgets_values"] = list(widgets)
        if title:
            node["title"] = title
        if color:
            node["color"], node["bgcolor"] = color
        self.nodes.append(node)
        return node

    def widget_input(self, node: dict, name: str, kind: str) -> None:
        """Declare a widget that will be driven by a link (the frontend's widget-input socket)."""
        node["inputs"].append({"name": name, "type": kind, "widget": {"name": name}, "link": None})

    def link(self, origin: dict, slot: int, target: dict, input_name: str) -> None:
        link_id = len(self.links) + 1
        kind = origin["outputs"][slot]["type"]
        socket = next(s for s in target["inputs"] if s["name"] == input_name)
        if socket["type"] not in (kind, "*"):
            raise ValueError(f"link {origin['type']}[{slot}] ({kind}) -> {target['type']}.{input_name} ({socket['type']})")
        socket["link"] = link_id
        origin["outputs"][slot]["links"].append(link_id)
        target_slot = target["inputs"].index(socket)
        self.links.append([link_id, origin["id"], slot, target["id"], target_slot, kind])

    def workflow(self) -> dict:
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": VIEW_SCALE, "offset": list(VIEW_OFFSET)}},
            "version": 0.4,
        }


NOTE_COMMON = (
    "\n\nRuns as is: the photo (DPS Example Image) and the demo prior ship with the pack, nothing to "
    "download. Press Run: 50 steps at 128 px (guidance_mode auto: {auto}; "
    "moment is the most accurate and the slowest). The result is saved as "
    "dps_demo/<task>_*.png; the report says whether it explains the measurement (residual near "
    "1 x noise level).\n\n"
    "Try: the other photo, or a size from 64 to 256 (a multiple of 16; the demo prior is small), or your "
    "own photo with Load Image. guidance_strength is {strength} here; raise it up to about 3 if the report "
    "says the result does not explain the measurement, lower it if the result looks noisy (4 and more can "
    "diverge). Another seed in DPS KSampler gives another posterior sample. For real work use a Stable "
    "Diffusion checkpoint (see the other templates)."
)

TASKS = {
    "super-resolution": {
        "engine_operator": lambda: SuperResolution(4, "bicubic"),  # the operator node as the engine builds it, for auto_choice
        "title": "4x super-resolution",
        "prefix": "dps_demo/super_resolution",
        "noise_level": 0.02,
        "note": ("DPS demo: 4x super-resolution\n\n"
                 "The photo is shrunk 4x (bicubic) and noise (std 0.02) is added: the preview shows the small "
                 "picture enlarged. DPS samples a full-size image that explains it. Try scale_factor 2 for an "
                 "easier problem."),
    },
    "inpainting-random": {
        "engine_operator": lambda: RandomInpainting(0.8, seed=0),  # the operator node as the engine builds it, for auto_choice
        "title": "random inpainting (80% of the pixels missing)",
        "prefix": "dps_demo/inpainting_random",
        "noise_level": 0.02,
        "note": ("DPS demo: random inpainting\n\n"
                 "80% of the pixels are removed at random and noise (std 0.02) is added to the rest; DPS "
                 "fills them in. Try missing_fraction 0.92 (the DPS paper's setting) or 0.5."),
    },
    "inpainting-box": {
        "engine_operator": lambda: Inpainting(torch.zeros(128, 128)),  # the operator node as the engine builds it, for auto_choice
        "title": "box inpainting (a 40x40 hole)",
        "prefix": "dps_demo/inpainting_box",
        "noise_level": 0.02,
        "note": ("DPS demo: box inpainting\n\n"
                 "A 40x40 hole (white = 1 = missing) is cut out and noise (std 0.02) is added to the rest. "
                 "Move it with Mask Composite's x and y, resize it with the second Solid Mask. The demo "
                 "prior knows textures, not faces: the hole is filled with texture."),
    },
    "deblur": {
        "engine_operator": lambda: GaussianBlur(13, 2.0),  # the operator node as the engine builds it, for auto_choice
        "title": "Gaussian deblurring",
        "prefix": "dps_demo/deblur",
        "noise_level": 0.02,
        "note": ("DPS demo: Gaussian deblurring\n\n"
                 "The photo is blurred (Gaussian, sigma 2 px, 13x13 kernel) and noise (std 0.02) is added. "
                 "Try sigma 3 with kernel_size 19; keep kernel_size about 6 x sigma + 1."),
    },
}


def auto_note(task: str) -> str:
    """What guidance_mode auto runs for this task's operator, as the Note says it."""
    mode = auto_choice(TASKS[task]["engine_operator"](), pixel_model=True)  # the demo prior is a pixel model
    return f"{mode} here" + ("" if METHODS[mode].through_model else ", no backward pass")


def operator_nodes(g: Graph, task: str, image: dict) -> dict:
    """Add the task's operator (and whatever builds its inputs) in the first column; return the operator."""
    x, w = COL[0], 300
    if task == "super-resolution":
        return g.add("DPSSuperResolutionOperator", (x, 160), (w, 82), outputs=[("operator", "DPS_OPERATOR")],
                     widgets=[4, "bicubic"])
    if task == "inpainting-random":
        return g.add("DPSRandomInpaintingOperator", (x, 160), (w, 82), outputs=[("operator", "DPS_OPERATOR")],
                     widgets=[0.8, 0])
    if task == "deblur":
        return g.add("DPSGaussianBlurOperator", (x, 160), (w, 82), outputs=[("operator", "DPS_OPERATOR")],
                     widgets=[13, 2.0])
    if task == "inpainting-box":
        size = g.add("GetImageSize", (x, 160), (w, 100), inputs=[("image", "IMAGE")],
                     outputs=[("width", "INT"), ("height", "INT"), ("batch_size", "INT")])
        g.link(image, 0, size, "image")
        canvas = g.add("SolidMask", (x, 310), (w, 110), outputs=[("MASK", "MASK")], widgets=[0.0, 128, 128],
                       title="Solid Mask (kept: 0, the photo's size)")
        g.widget_input(canvas, "width", "INT")
        g.widget_input(canvas, "height", "INT")
        g.link(size, 0, canvas, "width")
        g.link(size, 1, canvas, "height")
        box = g.add("SolidMask", (x, 470), (w, 110), outputs=[("MASK", "MASK")], widgets=[1.0, 40, 40],
                    title="Solid Mask (the hole: 1 = missing)")
        composite = g.add("MaskComposite", (x, 630), (w, 130), inputs=[("destination", "MASK"), ("source", "MASK")],
                          outputs=[("MASK", "MASK")], widgets=[44, 44, "add"], title="Mask Composite (box position)")
        g.link(canvas, 0, composite, "destination")
        g.link(box, 0, composite, "source")
        op = g.add("DPSInpaintingOperator", (x, 810), (w, 50), inputs=[("mask", "MASK")],
                   outputs=[("operator", "DPS_OPERATOR")])
        g.link(composite, 0, op, "mask")
        return op
    raise ValueError(task)


def build(task: str) -> dict:
    spec = TASKS[task]
    g = Graph()
    image = g.add("DPSExampleImage", (COL[0], 30), (300, 82), outputs=[("image", "IMAGE")],
                  widgets=list(DEMO_IMAGE), title="DPS Example Image (ground truth)")
    op = operator_nodes(g, task, image)
    simulate = g.add("DPSSimulateMeasurement", (COL[1], 30), (300, 130),
                     inputs=[("image", "IMAGE"), ("operator", "DPS_OPERATOR")],
                     outputs=[("measurement", "DPS_MEASUREMENT"), ("degraded", "IMAGE")],
                     widgets=["gaussian", spec["noise_level"], 0])
    g.link(image, 0, simulate, "image")
    g.link(op, 0, simulate, "operator")
    degraded = g.add("PreviewImage", (COL[1], 220), (300, 300), inputs=[("images", "IMAGE")],
                     title="Preview Image (the measurement)")
    g.link(simulate, 1, degraded, "images")
    prior = g.add("DPSLoadDemoPrior", (COL[2], 30), (300, 100),
                  outputs=[("model", "MODEL"), ("vae", "VAE"), ("conditioning", "CONDITIONING")])
    latent = g.add("DPSEmptyLatent", (COL[2], 180), (300, 80), inputs=[("measurement", "DPS_MEASUREMENT")],
                   outputs=[("latent", "LATENT")], widgets=[1])
    g.link(simulate, 0, latent, "measurement")
    s = {**SAMPLER, **spec.get("sampler", {})}
    # Tall enough for its widgets and, below them, the latent preview of `--preview-method auto`.
    sampler = g.add(
        "DPSKSampler", (COL[3], 30), (340, 580),
        inputs=[("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                ("latent_image", "LATENT"), ("measurement", "DPS_MEASUREMENT"), ("vae", "VAE")],
        outputs=[("latent", "LATENT"), ("residual_plot", "IMAGE"), ("report", "STRING")],
        widgets=[s["seed"], SEED_WIDGET, s["steps"], 1.0, s["sampler_name"], s["scheduler"], 1.0,
                 s["guidance_strength"], s["guidance_mode"], 0],  # 0: solver_steps, the mode's default
    )
    g.link(prior, 0, sampler, "model")
    g.link(prior, 2, sampler, "positive")
    g.link(prior, 2, sampler, "negative")
    g.link(latent, 0, sampler, "latent_image")
    g.link(simulate, 0, sampler, "measurement")
    decode = g.add("VAEDecode", (COL[4], 30), (300, 50), inputs=[("samples", "LATENT"), ("vae", "VAE")],
                   outputs=[("IMAGE", "IMAGE")])
    g.link(sampler, 0, decode, "samples")
    g.link(prior, 1, decode, "vae")
    save = g.add("SaveImage", (COL[4], 140), (300, 300), inputs=[("images", "IMAGE")],
                 widgets=[spec["prefix"]], title="Save Image (DPS result)")
    g.link(decode, 0, save, "images")
    report = g.add("PreviewAny", (COL[4], 490), (300, 120), inputs=[("source", "*")],
                   title="Preview as Text (report)")
    g.link(sampler, 2, report, "source")
    # Wide, under the sampler: the plot's labels stay readable.
    plot = g.add("PreviewImage", (COL[2], 660), (COL[3] + 340 - COL[2], 270), inputs=[("images", "IMAGE")],
                 title="Preview Image (residual plot)")
    g.link(sampler, 1, plot, "images")
    note_at = ((COL[1], 570), (300, 360)) if task == "inpainting-box" else ((COL[0], 290), (300, 640))
    g.add("Note", *note_at, widgets=[spec["note"] + NOTE_COMMON.format(strength=s["guidance_strength"], auto=auto_note(task))],
          title="Note: what this workflow does", color=("#432", "#653"))
    return g.workflow()


def path_of(task: str) -> pathlib.Path:
    return WORKFLOWS / f"demo-prior-{task}.json"


def render(task: str) -> str:
    return json.dumps(build(task), indent=2) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the demo-prior example workflows.")
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for task in TASKS:
        path, text = path_of(task), render(task)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run scripts/demo_workflows.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
