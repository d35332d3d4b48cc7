#!/usr/bin/env bash
# The one command that runs every test (README "Test"). CI calls exactly this.
# It installs what the tests need from the project's own files, then runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh

# The house rules hold on every landing: formatting, and clippy with warnings as errors (the
# clock ban in clippy.toml included).
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

# The container's build stage (its COPY lines, its build script), then the binary it ships,
# started and stopped for real.
bash scripts/docker-context-build.sh
bash scripts/smoke-release.sh

# Two cores: keep test binaries from running many heavy tests at once.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
cargo test --locked --workspace "$@"
