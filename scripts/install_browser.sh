#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/integration/test_frontend.py), once.
# Idempotent: does nothing when a `chromium` binary is already on PATH. Needs root (CI runs as
# root) or sudo, and network access to the Debian package mirrors.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_browser.sh: chromium is missing and this user cannot install packages (not root, no sudo)." >&2
        echo "Install it yourself: apt-get install -y chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
command -v chromium >/dev/null 2>&1 || { echo "install_browser.sh: chromium still not found after apt-get" >&2; exit 1; }
chromium --version
