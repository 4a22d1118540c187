"""A new user's first minutes, in the REAL frontend (the bundled 1.32.9, headless Chromium, 1600 x 1000)
on a FRESH install: this checkout in custom_nodes and nothing else, no `make demo`, no input pictures, no
models, default UI settings (tab bar, side bar, Run toolbar, minimap and the frontend's banner all shown),
and `--preview-method auto` (latent previews inside the sampler).

- Layout, for every workflow in workflows/, as loaded (the saved view): no two nodes overlap; every node
  lies inside the window and no part of it is under the frontend's own bars, toolbars or minimap (probed
  with elementFromPoint on a grid over each node); DPS KSampler has room below its widgets for the latent
  preview; the demo workflows' Notes show all their text, at 9 px or more on screen.
- Each demo template, opened from the template browser (Templates -> ComfyUI-DPS -> its card) and queued
  with the page's Run button, runs to completion as shipped (50 steps at 128 px, guidance_mode auto: about 30 s each on 2 quiet
  CPU cores) and the output of every Save Image, Preview Image and Preview as Text node reaches the page.
- Each Stable Diffusion / Flux workflow, queued as loaded: the only nodes the server rejects are the model
  loaders (no models on a fresh install) and a Load Image whose title says which photo to upload; every
  other node, the bundled example photo included, validates.

Screenshots of the saved views go to docs/screenshots/first-run/ (not committed).
DPS_UPDATE_WORKFLOW_IMAGES=all (or a comma-separated list of names) also rewrites each demo template's
thumbnail (workflows/<name>.jpg, 400 x 400) as a before/after of this run: the measurement preview and
the saved result.
"""

import pathlib
import time

import pytest
from PIL import Image, ImageDraw, ImageFont

from test_frontend import CHROMIUM_ARGS, VIEWPORT, chromium, close_dialogs, images_to_update, open_page  # noqa: F401 (fixture)
from test_workflows import LOADERS, PACK_NAME, WORKFLOWS, load, needs_no_download, workflow_id
from testkit.comfy_server import ComfyServer, PromptFailed

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots" / "first-run"
# Demo templates: the workflows that load no model file (they use the bundled demo prior).
DEMOS = [path for path in WORKFLOWS if needs_no_download(load(path))]
MODEL_WORKFLOWS = [path for path in WORKFLOWS if path not in DEMOS]
OUTPUT_NODES = {"SaveImage", "PreviewImage", "PreviewAny"}
LATENT_PREVIEW_ROOM = 150  # canvas units below DPS KSampler's widgets
NOTE_MIN_FONT_PX = 9.0

# Loads a workflow as the template browser does and measures what the user sees at its saved view.
LAYOUT = """async (workflow) => {
    await app.loadGraphData(workflow, true, true, null);
    await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    return window.__dpsLayout();
}"""
MEASURE = """() => { window.__dpsLayout = () => {
    const canvas = app.canvas, ds = canvas.ds, box = canvas.canvas.getBoundingClientRect();
    const toPage = (x, y) => [box.left + (x + ds.offset[0]) * ds.scale, box.top + (y + ds.offset[1]) * ds.scale];
    const nodes = app.graph.nodes.map(n => {
        const b = Array.from(n.getBounding());
        const [x0, y0] = toPage(b[0], b[1]), [x1, y1] = toPage(b[0] + b[2], b[1] + b[3]);
        const covered = new Set();
        for (let i = 0; i <= 10; i++) for (let j = 0; j <= 10; j++) {
            const x = x0 + 1 + (x1 - x0 - 2) * i / 10, y = y0 + 1 + (y1 - y0 - 2) * j / 10;
            if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) { covered.add('outside the window'); continue; }
            const e = document.elementFromPoint(x, y);
            if (e && e !== canvas.canvas && !e.closest('.dom-widget'))
                covered.add(`${e.tagName.toLowerCase()}.${String(e.className).split(' ').slice(0, 3).join('.')}`);
        }
        const note = {};
        const element = (n.widgets || []).map(w => w.element).find(e => e && e.tagName === 'TEXTAREA');
        if (element) {
            const rect = element.getBoundingClientRect();
            note.fontPx = parseFloat(getComputedStyle(element).fontSize) * rect.width / element.offsetWidth;
            note.hidden = element.scrollHeight - element.clientHeight;
        }
        return {id: n.id, type: n.type, title: n.title, bounds: b, page: [x0, y0, x1, y1],
                covered: Array.from(covered), spare: n.size[1] - n.computeSize()[1], note};
    });
    return {scale: ds.scale, nodes};
}; }"""


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    server = ComfyServer(base_dir=tmp_path_factory.mktemp("fresh-install"), extra_args=["--preview-method", "auto"])
    server.start()
    try:
        # Only the first-visit template dialog is skipped (the tests open the template browser themselves).
        server.post("/api/settings", {"Comfy.TutorialCompleted": True})
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tab(chromium, fresh_server):  # noqa: F811 (the chromium fixture)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = open_page(browser.new_context(viewport=VIEWPORT), fresh_server)
            page.evaluate(MEASURE)
            yield page
        finally:
            browser.close()


def dismiss_dialogs(tab) -> None:
    """Close the missing-models dialog a fresh install opens (animated, shortly after the graph loads)."""
    tab.wait_for_timeout(1500)
    close_dialogs(tab)
    tab.wait_for_timeout(500)  # its closing animation


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_the_saved_view_reads_well(path, tab):
    close_dialogs(tab)
    tab.evaluate(LAYOUT, load(path))
    dismiss_dialogs(tab)  # a fresh install has no models: the missing-models dialog opens over the graph
    layout = tab.evaluate("() => window.__dpsLayout()")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"))
    nodes = layout["nodes"]

    overlapping = [(a["title"], b["title"]) for i, a in enumerate(nodes) for b in nodes[i + 1:]
                   if overlaps(a["bounds"], b["bounds"])]
    assert not overlapping, f"nodes that overlap: {overlapping}"
    hidden = {node["title"]: node["covered"] for node in nodes if node["covered"]}
    assert not hidden, f"nodes under the frontend's bars, toolbars or minimap, or outside the window: {hidden}"
    cramped = [(node["title"], node["spare"]) for node in nodes
               if node["type"] == "DPSKSampler" and node["spare"] < LATENT_PREVIEW_ROOM]
    assert not cramped, f"no room for the latent preview below the widgets: {cramped}"
    if path in DEMOS:
        notes = [node["note"] for node in nodes if node["type"] == "Note"]
        assert notes and all(n["fontPx"] >= NOTE_MIN_FONT_PX and n["hidden"] <= 1 for n in notes), notes


def card_click(tab, name: str, attempts: int = 3) -> None:
    """Templates -> this pack's category -> the card named `name` (the template browser loads it).

    The browser opens with an animation; a click that lands while it moves can miss the category, so
    a card that does not show up within 15 s is looked for again from a freshly opened browser."""
    for attempt in range(1, attempts + 1):
        close_dialogs(tab)
        tab.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        category = tab.get_by_text(PACK_NAME, exact=True).first
        category.wait_for(timeout=30_000)
        tab.wait_for_timeout(500)  # the dialog's opening animation
        category.click(force=True)
        card = tab.get_by_text(name, exact=True).first
        try:
            card.wait_for(timeout=15_000)
            break
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(SCREENSHOTS / f"template-browser-without-{name}-{attempt}.png"))
            if attempt == attempts:
                raise
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.wait_for_timeout(1000)  # thumbnails load lazily
    tab.screenshot(path=str(SCREENSHOTS / "template-browser.png"))
    card.click()


@pytest.mark.parametrize("path", DEMOS, ids=workflow_id)
def test_a_demo_template_runs_from_the_template_browser(path, tab, fresh_server):
    workflow = load(path)
    close_dialogs(tab)
    errors_before = len(tab.page_errors)
    card_click(tab, path.stem)
    expected = sorted(node["type"] for node in workflow["nodes"])
    tab.wait_for_function("(types) => JSON.stringify(app.graph.nodes.map(n => n.type).sort()) === JSON.stringify(types)",
                          arg=expected, timeout=30_000)
    assert tab.evaluate("(() => Array.from(document.querySelectorAll('.p-dialog, [role=dialog]'))"
                        ".filter(d => d.checkVisibility()).length)") == 0, "a dialog opened over the demo"
    outputs = [str(node["id"]) for node in workflow["nodes"] if node["type"] in OUTPUT_NODES]

    started = time.monotonic()
    tab.get_by_role("button", name="Run", exact=True).first.click()
    tab.wait_for_function("(ids) => ids.every(id => { const o = app.nodeOutputs?.[id];"
                          " return o && ((o.images ?? []).length > 0 || (o.text ?? []).length > 0); })",
                          arg=outputs, timeout=900_000)
    print(f"{path.stem}: ran from the Run button in {time.monotonic() - started:.0f} s")
    texts = tab.evaluate("(ids) => ids.map(id => (app.nodeOutputs[id].text ?? []).join(''))", outputs)
    reports = [text for text in texts if "residual" in text]
    assert all("residual = " in text for text in reports), reports
    history = fresh_server.get("/history?max_items=1")
    (entry,) = history.values()
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert tab.page_errors[errors_before:] == []
    if path.stem in images_to_update():
        measured = tab.evaluate("() => app.nodeOutputs[String(app.graph.nodes.find(n => n.title"
                                " && n.title.startsWith('Preview Image (the measurement')).id)].images[0]")
        save = next(str(node["id"]) for node in workflow["nodes"] if node["type"] == "SaveImage")
        saved = tab.evaluate("(id) => app.nodeOutputs[id].images[0]", save)
        files = [fresh_server.base / info["type"] / info["subfolder"] / info["filename"] for info in (measured, saved)]
        before_after(*files, workflow_title(path)).save(path.with_suffix(".jpg"), quality=88, optimize=True)


def workflow_title(path: pathlib.Path) -> str:
    import demo_workflows  # scripts/ (on the path through tests/integration/conftest.py)

    task = demo_workflows.TASKS.get(path.stem.removeprefix("demo-prior-"))
    return f"DPS demo: {task['title']}" if task else path.stem


def before_after(measurement: pathlib.Path, result: pathlib.Path, title: str) -> Image.Image:
    """A 400 x 400 template thumbnail: the measurement and the DPS result side by side."""
    thumb = Image.new("RGB", (400, 400), (34, 34, 34))
    draw = ImageDraw.Draw(thumb)
    draw.text((200, 50), title.split(" (")[0], anchor="mm", font=ImageFont.load_default(size=22), fill="white")
    draw.text((200, 345), "runs as is: nothing to download", anchor="mm", font=ImageFont.load_default(size=17),
              fill=(170, 210, 170))
    for column, (label, source) in enumerate((("measurement", measurement), ("DPS result", result))):
        with Image.open(source) as picture:
            x = 8 + column * 196
            thumb.paste(picture.convert("RGB").resize((188, 188), Image.Resampling.LANCZOS), (x, 92))
        draw.text((x + 94, 300), label, anchor="mm", font=ImageFont.load_default(size=19), fill="white")
    return thumb


@pytest.mark.parametrize("path", MODEL_WORKFLOWS, ids=workflow_id)
def test_a_model_workflow_runs_up_to_its_model_loaders(path, tab, fresh_server):
    """No models on a fresh install: the loaders are rejected, and so is a Load Image that waits for the
    user's photo, which its title says; nothing else is (the example photo ships with the pack)."""
    close_dialogs(tab)
    tab.evaluate(LAYOUT, load(path))
    dismiss_dialogs(tab)
    prompt = tab.evaluate("async () => (await app.graphToPrompt()).output")
    try:
        errors = fresh_server.post("/prompt", {"prompt": prompt, "client_id": "first-run"})["node_errors"]
    except PromptFailed as failure:
        errors = failure.events[0]["data"]["node_errors"]
    titles = {str(node["id"]): node.get("title", "") for node in load(path)["nodes"]}
    assert errors, "a fresh install has no models: the loaders must be rejected"
    unexpected = {}
    for node_id, error in errors.items():
        kind = error["class_type"]
        if kind in LOADERS:
            assert all(e["type"] == "value_not_in_list" for e in error["errors"]), error
        elif kind == "LoadImage" and titles[node_id].startswith("Load Image: upload your photo"):
            continue
        else:
            unexpected[node_id] = error
    assert not unexpected, unexpected
    fresh_server.post("/interrupt", {})
