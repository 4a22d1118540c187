"""The pack's own socket types, and the seed input, shared by every node module."""

from comfy_api.latest import io

# A `dps.operators.Operator`: the forward model A of an inverse problem.
Operator = io.Custom("DPS_OPERATOR")
# A `dps.measurement.Measurement`: observed y with its operator and noise model.
Measurement = io.Custom("DPS_MEASUREMENT")


def seed_input(tooltip: str) -> io.Int.Input:
    """The seed of an operator's or a measurement's randomness. No "control after generate": the
    frontend otherwise gives every INT named seed a "randomize" control, and each queued run would
    draw a new mask or noise (a new measurement)."""
    return io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=False,
                        tooltip=tooltip)
