#!/usr/bin/env bash
# Downloads Debian's plasma-workspace-wallpapers, lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04
# and unpacks them into one folder, .host/train/wallpapers (or $1), for
# scripts/train_demo_prior.py --wallpapers. A dev script: needs Debian's apt, not shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.host/train/wallpapers}
PACKAGES="plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04"
if [ -f "$DEST/.unpacked" ] && [ "$(cat "$DEST/.unpacked")" = "$PACKAGES" ]; then echo "$DEST already unpacked"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086  # one word per package
(cd "$tmp" && apt-get download $PACKAGES)
mkdir -p "$DEST"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$DEST"; done
echo "$PACKAGES" > "$DEST/.unpacked"
ls "$DEST/usr/share/wallpapers" "$DEST/usr/share/backgrounds"
