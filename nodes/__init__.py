"""ComfyUI node classes: thin translations between ComfyUI types and the `dps` engine."""
