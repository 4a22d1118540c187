"""The V3 entry point ComfyUI calls to list this pack's nodes."""

from comfy_api.latest import ComfyExtension, io

from . import operator_nodes, measurement_nodes, load_measurement_node, sampling_nodes, demo_prior_node, example_image_node
from . import daps_sampler_node, posterior_statistics_node, keep_measured_node


class DPSExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            *operator_nodes.NODES,
            *measurement_nodes.NODES,
            *load_measurement_node.NODES,
            *sampling_nodes.NODES,
            *demo_prior_node.NODES,
            *daps_sampler_node.NODES,
            *example_image_node.NODES,
            *posterior_statistics_node.NODES,
            *keep_measured_node.NODES,
        ]


async def comfy_entrypoint() -> DPSExtension:
    return DPSExtension()
