"""Development support shared by tests, benchmarks and scripts: a real ComfyUI host in-process
(`host`) or as a server (`comfy_server`), workflow conversion (`workflow_api`), small real models
(`tiny_models`), an exact Gaussian prior (`gaussian_prior`), the exact-posterior problems and the
deepinv comparison built on it (`posterior_problems`, `deepinv_problem`), and ComfyUI-Manager
installs (`manager`). Never shipped (see .comfyignore);
it imports nothing from tests/."""
