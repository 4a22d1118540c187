#!/usr/bin/env bash
# The checks that need a CUDA GPU, for a lent GPU machine: guidance with weights fully loaded vs
# offloaded (tests/nodes/test_offloaded_gradients.py), and the guidance tests on CUDA. Run from the
# repository root after `make host` (or with the .venv carried over): bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name())"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/nodes/test_offloaded_gradients.py \
  tests/nodes/test_checkpointing.py tests/nodes/test_guidance_patch.py tests/nodes/test_renderer.py "$@"
