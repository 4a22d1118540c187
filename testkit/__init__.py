"""Development support shared by tests, benchmarks and scripts: a real ComfyUI host in-process
(`host`) or as a server (`comfy_server`), workflow conversion (`workflow_api`), small real models
(`tiny_models`) and an exact Gaussian prior (`gaussian_prior`). Never shipped (see .comfyignore);
it imports nothing from tests/."""
