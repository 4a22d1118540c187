"""UI-format workflow files (what users drag into ComfyUI) -> API-format prompts, and checks of
their node types and widget values against a running server's /object_info. Dev tool, not shipped.

UI format (frontend 1.x, version 0.4): `nodes` with `widgets_values` listed in the order of the
node's widget inputs (required, then optional); a seed with `control_after_generate` and a combo
with an upload button each store one extra value; `links` are
[id, origin_node, origin_slot, target_node, target_slot, type].
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SKIPPED_TYPES = {"Note", "MarkdownNote"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")


class WorkflowError(ValueError):
    pass


def _is_widget(spec) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_values(name: str, spec) -> int:
    """How many widgets_values entries beyond its own value a widget input stores. The frontend
    adds a control widget to INT inputs named seed/noise_seed unless the node says otherwise."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    extra = 0
    control = options.get("control_after_generate")
    if control or (control is None and spec[0] == "INT" and name in ("seed", "noise_seed")):
        extra += 1
    if any(options.get(flag) for flag in UPLOAD_FLAGS):
        extra += 1
    return extra


def _input_specs(info: dict) -> list[tuple[str, list, bool]]:
    specs = []
    for section, required in (("required", True), ("optional", False)):
        for name, spec in info["input"].get(section, {}).items():
            specs.append((name, spec, required))
    return specs


def widget_value_count(info: dict) -> int:
    """How many widgets_values the frontend stores for a node with this /object_info entry."""
    return sum(1 + _extra_values(name, spec) for name, spec, _ in _input_specs(info) if _is_widget(spec))


def _widget_values(node: dict, info: dict) -> dict:
    """Map a UI node's widgets_values onto its widget input names."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):  # some nodes store a name -> value map
        return dict(values)
    values = list(values)
    mapped = {}
    for name, spec, _ in _input_specs(info):
        if not _is_widget(spec):
            continue
        if not values:
            break
        mapped[name] = values.pop(0)
        for _ in range(_extra_values(name, spec)):
            if values:
                values.pop(0)
    return mapped


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow into the API-format prompt that POST /prompt accepts."""
    links = {link[0]: (str(link[1]), link[2]) for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in SKIPPED_TYPES or node.get("mode", 0) in (2, 4):  # notes, muted, bypassed
            continue
        if node["type"] not in object_info:
            raise WorkflowError(f"node {node['id']}: unknown node type {node['type']!r}")
        info = object_info[node["type"]]
        inputs = _widget_values(node, info)
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                if socket["link"] not in links:
                    raise WorkflowError(f"node {node['id']}: input {socket['name']!r} uses missing link {socket['link']}")
                inputs[socket["name"]] = list(links[socket["link"]])
        prompt[str(node["id"])] = {
            "class_type": node["type"], "inputs": inputs, "_meta": {"title": node.get("title", node["type"])},
        }
    return prompt


def check_workflow(workflow: dict, object_info: dict) -> list[str]:
    """Problems a user would hit loading or queueing this workflow: unknown node types, widget
    values a combo does not offer or a number outside its range, required inputs left empty."""
    problems = []
    linked = {(str(n["id"]), s["name"]) for n in workflow["nodes"] for s in n.get("inputs", []) if s.get("link") is not None}
    for node in workflow["nodes"]:
        if node["type"] in SKIPPED_TYPES:
            continue
        where = f"node {node['id']} ({node['type']})"
        info = object_info.get(node["type"])
        if info is None:
            problems.append(f"{where}: unknown node type")
            continue
        values = _widget_values(node, info)
        for name, spec, required in _input_specs(info):
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            is_linked = (str(node["id"]), name) in linked
            if name not in values:
                if required and not is_linked:
                    problems.append(f"{where}: required input {name!r} has no link and no value")
                continue
            value = values[name]
            kind = spec[0]
            choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
            if choices is not None and value not in choices and not is_linked and not options.get("image_upload"):
                problems.append(f"{where}: {name}={value!r} is not one of {choices[:8]}")
            if kind in ("INT", "FLOAT"):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    problems.append(f"{where}: {name}={value!r} is not a number")
                    continue
                if "min" in options and value < options["min"]:
                    problems.append(f"{where}: {name}={value} is below the minimum {options['min']}")
                if "max" in options and value > options["max"]:
                    problems.append(f"{where}: {name}={value} is above the maximum {options['max']}")
                if kind == "INT" and value != int(value):
                    problems.append(f"{where}: {name}={value} is not an integer")
            if kind == "BOOLEAN" and not isinstance(value, bool):
                problems.append(f"{where}: {name}={value!r} is not a boolean")
    return problems
