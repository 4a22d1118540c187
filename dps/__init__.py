"""The DPS engine: operators, noise models, measurements and guidance maths. Pure torch;
never imports ComfyUI."""
