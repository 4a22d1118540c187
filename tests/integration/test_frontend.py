"""Every workflow in workflows/ in the REAL ComfyUI frontend (the one the server serves), in headless
Chromium: it loads with no missing node types and no node errors, and the frontend's own conversion
(`app.graphToPrompt()`) gives the same prompt as scripts/workflow_api.py (a cross-check of our
converter by the real thing). Screenshots of each graph go to docs/screenshots/ (not committed).

Chromium is Debian's (`scripts/install_browser.sh` installs it when missing: CI runs as root with
access to the Debian mirrors); playwright drives it through `executable_path`, since playwright's own
browser download is not used.

DPS_UPDATE_WORKFLOW_IMAGES=all (or a comma-separated list of workflow names) also rewrites the
committed pictures of those workflows from the screenshots: workflows/<name>.jpg (the 400 x 400
thumbnail ComfyUI's template browser shows) and docs/images/workflow-<name>.png (for the README).
"""

import os
import pathlib
import shutil
import subprocess
import time

import pytest
from PIL import Image

from test_workflows import WORKFLOWS, load, start_server, workflow_id
from testkit.workflow_api import ui_to_api

pytestmark = [pytest.mark.server, pytest.mark.browser]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DOC_IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1600, "height": 1000}
THUMB_BOX = (300, 0, 1300, 1000)  # square part of the page the thumbnail view is fitted into
THUMB_NODES = r"^(LoadImage|DPS\w*Operator|DPS\w*Measurement)$"  # what the thumbnail shows: input and degradation
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]
# Set before the page loads: no tutorial template dialog, no minimap or fps overlay, and full detail
# at any zoom (the screenshots show whole graphs, zoomed out).
SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,
}

# Runs in the page before any workflow is loaded: the frontend hands afterConfigureGraph the list of
# node types it could not find (its own missing-node detection, the one behind its dialog).
REGISTER_MISSING_HOOK = """() => {
    window.__dpsMissing = null;
    app.registerExtension({
        name: 'ComfyUI-DPS.test.missing-nodes',
        afterConfigureGraph(missing) {
            window.__dpsMissing = (missing || []).map(m => typeof m === 'string' ? m : (m.type ?? String(m)));
        },
    });
}"""

VISIBLE_DIALOGS = """() => Array.from(document.querySelectorAll('.p-dialog'))
    .filter(d => d.offsetParent !== null).map(d => d.innerText.slice(0, 300))"""

# Loads a workflow the way a user's drop or the template browser does, and reports what the frontend
# made of it. A missing model would open the frontend's missing-models dialog: it is reported too.
LOAD_AND_INSPECT = """async (workflow) => {
    window.__dpsMissing = null;
    await app.loadGraphData(workflow, true, true, null);
    const nodes = app.graph.nodes.map(n => ({
        id: n.id, type: n.type, hasErrors: !!n.has_errors,
        registered: !!LiteGraph.registered_node_types[n.type],
    }));
    const prompt = await app.graphToPrompt();
    const dialogs = (%s)();
    return {missing: window.__dpsMissing, nodes, output: prompt.output, dialogs};
}""" % VISIBLE_DIALOGS

# Fits the nodes (all of them, or those whose type matches `only`) into a box of the page; returns
# where they landed [x0, y0, x1, y1].
FIT_VIEW = """async ([box, only]) => {
    const canvas = app.canvas, margin = 24, title = LiteGraph.NODE_TITLE_HEIGHT;
    const picked = app.graph.nodes.filter(n => !only || new RegExp(only).test(n.type));
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of picked) {
        x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
        x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    const [bx0, by0, bx1, by1] = box;
    const scale = Math.min((bx1 - bx0 - 2 * margin) / (x1 - x0), (by1 - by0 - 2 * margin) / (y1 - y0), 1.5);
    canvas.ds.scale = scale;
    canvas.ds.offset[0] = (bx0 + bx1) / 2 / scale - (x0 + x1) / 2;
    canvas.ds.offset[1] = (by0 + by1) / 2 / scale - (y0 + y1) / 2;
    canvas.setDirty(true, true);
    await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const [ox, oy] = canvas.ds.offset;  // the picked nodes' box on the page, margin included
    return [(x0 + ox) * scale - margin, (y0 + oy) * scale - margin, (x1 + ox) * scale + margin,
            (y1 + oy) * scale + margin];
}"""


def images_to_update() -> set[str]:
    wanted = os.environ.get("DPS_UPDATE_WORKFLOW_IMAGES", "").strip()
    if wanted in ("", "0"):
        return set()
    if wanted in ("1", "all"):
        return {path.stem for path in WORKFLOWS}
    return {name.strip() for name in wanted.split(",") if name.strip()}


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed by scripts/install_browser.sh when missing (a failure, never a skip)."""
    found = shutil.which("chromium")
    if found is None:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")],
                                capture_output=True, text=True, timeout=900)
        found = shutil.which("chromium")
        if found is None:
            pytest.fail("The browser tests need Debian's chromium and scripts/install_browser.sh could not install "
                        f"it (exit {result.returncode}); run `apt-get install -y chromium` as root.\n"
                        f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}", pytrace=False)
    return found


@pytest.fixture(scope="module")
def frontend_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("frontend-base"))
    try:
        server.post("/api/settings", SETTINGS)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(chromium, frontend_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            errors = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            started = time.monotonic()
            tab.goto(frontend_server.url)
            tab.wait_for_function("() => window.app && app.graph && window.LiteGraph"
                                  " && LiteGraph.registered_node_types['DPSKSampler']", timeout=90_000)
            print(f"frontend ready in {time.monotonic() - started:.1f} s")
            tab.evaluate(REGISTER_MISSING_HOOK)
            tab.evaluate("() => app.extensionManager.command.execute('Workspace.ToggleFocusMode')")  # no menus
            tab.page_errors = errors
            yield tab
        finally:
            browser.close()


def clip_to_page(box) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return max(0.0, x0), max(0.0, y0), min(float(VIEWPORT["width"]), x1), min(float(VIEWPORT["height"]), y1)


def close_dialogs(page) -> None:
    """Close what an earlier failing workflow may have left open (a missing-nodes or missing-models
    dialog), so that each workflow is judged on its own."""
    for _ in range(5):
        if not page.evaluate(VISIBLE_DIALOGS):
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


def comparable(prompt: dict, object_info: dict) -> dict:
    """class_type and the inputs the server knows of, per node (the frontend also sends values of
    widgets that only exist in the page, e.g. PreviewAny's text box; the server ignores them)."""
    result = {}
    for node_id, entry in prompt.items():
        spec = object_info[entry["class_type"]]["input"]
        known = {**spec.get("required", {}), **spec.get("optional", {})}
        result[node_id] = (entry["class_type"], {k: v for k, v in entry["inputs"].items() if k in known})
    return result


@pytest.fixture(scope="module")
def object_info(frontend_server):
    return frontend_server.object_info()


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_in_the_real_frontend(path, page, object_info):
    workflow = load(path)
    close_dialogs(page)
    errors_before = len(page.page_errors)
    report = page.evaluate(LOAD_AND_INSPECT, workflow)

    assert report["missing"] is not None, "the frontend did not call afterConfigureGraph: the hook is not working"
    assert report["missing"] == [], f"the frontend reports missing node types: {report['missing']}"
    unregistered = [node for node in report["nodes"] if not node["registered"]]
    assert not unregistered, unregistered
    with_errors = [node for node in report["nodes"] if node["hasErrors"]]
    assert not with_errors, with_errors
    assert len(report["nodes"]) == len(workflow["nodes"])
    assert report["dialogs"] == [], f"the frontend opened a dialog: {report['dialogs']}"

    ours = ui_to_api(workflow, object_info)
    theirs = report["output"]
    assert sorted(theirs, key=int) == sorted(ours, key=int), "different node ids in the prompt"
    assert comparable(theirs, object_info) == comparable(ours, object_info)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    x0, y0, x1, y1 = clip_to_page(page.evaluate(FIT_VIEW, [[0, 0, VIEWPORT["width"], VIEWPORT["height"]], None]))
    full = SCREENSHOTS / f"{path.stem}.png"
    page.screenshot(path=str(full), clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})
    page.evaluate(FIT_VIEW, [list(THUMB_BOX), THUMB_NODES])
    thumb = SCREENSHOTS / f"{path.stem}-thumbnail.png"
    x0, y0, x1, y1 = THUMB_BOX
    page.screenshot(path=str(thumb), clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})

    new_errors = page.page_errors[errors_before:]
    assert not new_errors, f"errors in the page while loading {path.name}: {new_errors}"

    if path.stem in images_to_update():
        with Image.open(thumb) as picture:
            picture.convert("RGB").resize((400, 400), Image.Resampling.LANCZOS).save(
                path.with_suffix(".jpg"), quality=85, optimize=True)
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        with Image.open(full) as picture:
            width = min(1200, picture.width)
            small = picture.convert("RGB").resize((width, round(picture.height * width / picture.width)),
                                                  Image.Resampling.LANCZOS)
            small.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
                DOC_IMAGES / f"workflow-{path.stem}.png", optimize=True)
