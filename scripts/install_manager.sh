#!/usr/bin/env bash
# Installs ComfyUI-Manager (pip package comfyui-manager, with its cm-cli) into the host venv, for
# tests/integration/test_manager_install.py, which installs this pack the way a user does.
# Idempotent: does nothing when that version is already installed. ComfyUI 0.3.75 does not load
# the Manager by itself (it has no --enable-manager), so having it in the venv changes no server.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$(pwd)/.venv}
PY=$VENV/bin/python
VERSION=4.3

if [ ! -x "$PY" ]; then
  echo "install_manager.sh: no Python at $PY: run \`make host\` first" >&2
  exit 1
fi
have=$("$PY" -c 'from importlib import metadata
try:
    print(metadata.version("comfyui-manager"))
except metadata.PackageNotFoundError:
    pass' 2>/dev/null || true)
if [ "$have" = "$VERSION" ] && [ -x "$VENV/bin/cm-cli" ]; then
  exit 0
fi
echo "[manager] installing comfyui-manager==$VERSION"
"$PY" -m pip install -q "comfyui-manager==$VERSION"
[ -x "$VENV/bin/cm-cli" ] || { echo "install_manager.sh: $VENV/bin/cm-cli missing after install" >&2; exit 1; }
echo "[manager] ready: $VENV/bin/cm-cli"
