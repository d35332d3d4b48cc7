#!/usr/bin/env bash
# Installs system packages the test suite needs, when missing. Idempotent.
set -euo pipefail
need=()
# A real Prometheus server and promtool (tests/e2e/prometheus.rs).
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The release smoke test talks HTTP with curl and picks free ports with python3.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup-test-deps: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  # The package's service is not started: tests run their own server on loopback.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
