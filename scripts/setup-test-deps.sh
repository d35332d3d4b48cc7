#!/usr/bin/env bash
# Installs system packages the test suite needs, when missing. Idempotent.
set -euo pipefail
need=()
# (Debian packages are added here as tests come to need them.)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
