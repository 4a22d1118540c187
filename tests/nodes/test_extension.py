"""The V3 entry point (nodes/extension.py) and the pack's socket types (nodes/types.py)."""

import asyncio

from testkit.host import load_pack

load_pack()

from comfy_api.latest import io  # noqa: E402

from comfyui_dps.nodes import types  # noqa: E402
from comfyui_dps.nodes.extension import comfy_entrypoint  # noqa: E402


def test_the_extension_lists_every_node_once_under_the_dps_categories():
    nodes = asyncio.run(asyncio.run(comfy_entrypoint()).get_node_list())
    schemas = [node.define_schema() for node in nodes]
    ids = [schema.node_id for schema in schemas]
    assert len(ids) == len(set(ids)) >= 19 and "DPSExampleImage" in ids
    assert all(node_id.startswith("DPS") for node_id in ids)
    assert all(schema.category.startswith("DPS/") and schema.description for schema in schemas)
    # In the node search they sit among core nodes of similar names ("Load Image", "KSampler"): each
    # display name says it is a DPS node.
    assert all("DPS" in schema.display_name.split() for schema in schemas), [s.display_name for s in schemas]


def test_socket_types_and_the_seed_input():
    assert types.Operator.io_type == "DPS_OPERATOR" and types.Measurement.io_type == "DPS_MEASUREMENT"
    seed = types.seed_input("tip")
    assert isinstance(seed, io.Int.Input) and seed.id == "seed" and seed.control_after_generate is False
