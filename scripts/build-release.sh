#!/usr/bin/env bash
# Builds the release binary the container image ships. The Dockerfile runs exactly this script,
# and scripts/test.sh runs it too (then smoke-tests the binary), so the image's build steps are
# exercised on every CI run even though no Docker engine is available there.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin keda-llm-scaler
