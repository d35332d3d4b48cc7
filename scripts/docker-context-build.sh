#!/usr/bin/env bash
# Runs the Dockerfile's build stage without Docker: copies exactly the paths its COPY lines name
# into an empty directory (so a file the image build would miss fails here too) and runs the
# same build script there. The binary lands in this checkout's target/release/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
# COPY lines of the build stage (not --from): every argument but the last is a source.
grep -E '^COPY ' "$repo/Dockerfile" | grep -v -- '--from' | while read -r _ args; do
  set -- $args
  while [ "$#" -gt 1 ]; do
    (cd "$repo" && cp -r --parents "$1" "$ctx/")
    shift
  done
done
cd "$ctx"
# Reuse this checkout's compiled dependencies; the crate itself is rebuilt from the context.
CARGO_TARGET_DIR="$repo/target" bash scripts/build-release.sh
