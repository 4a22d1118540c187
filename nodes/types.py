"""The pack's own socket types, shared by every node module."""

from comfy_api.latest import io

# A `dps.operators.Operator`: the forward model A of an inverse problem.
Operator = io.Custom("DPS_OPERATOR")
# A `dps.measurement.Measurement`: observed y with its operator and noise model.
Measurement = io.Custom("DPS_MEASUREMENT")
