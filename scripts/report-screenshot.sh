#!/usr/bin/env bash
# Renders an HTML report (simulate, replay or demo) in headless Chromium and saves a PNG, to
# check it looks right in a real browser. Installs Debian's chromium when missing.
#   scripts/report-screenshot.sh simulation.html simulation.png [height]
set -euo pipefail
html="$(realpath "$1")"; png="$2"; height="${3:-2400}"
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# Flags from the workplace's notes: no sandbox as root, no background network traffic.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1100,"$height" --screenshot="$(realpath -m "$png")" \
  "file://$html" 2>/dev/null
echo "screenshot: $png"
