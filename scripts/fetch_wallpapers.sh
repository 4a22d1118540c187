#!/usr/bin/env bash
# Downloads Debian's plasma-workspace-wallpapers and unpacks it into .host/train/wallpapers (or $1),
# for scripts/train_demo_prior.py --wallpapers. A dev script: needs Debian's apt, not shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.host/train/wallpapers}
if [ -d "$DEST/usr/share/wallpapers" ]; then echo "$DEST already unpacked"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download plasma-workspace-wallpapers)
mkdir -p "$DEST"
dpkg-deb -x "$tmp"/plasma-workspace-wallpapers_*.deb "$DEST"
ls "$DEST/usr/share/wallpapers"
