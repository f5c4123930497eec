#!/usr/bin/env bash
# Installs the Debian packages Sluice needs to build, test and run (idempotent).
# Usage: scripts/setup.sh            (as root on Debian 12)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  librdkafka-dev libpq-dev libhiredis-dev libboost-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev googletest libgtest-dev libgmock-dev
  libssl-dev libconcurrentqueue-dev prometheus-cpp-dev libsimdjson-dev libjemalloc-dev
  clang libfuzzer-14-dev  # scripts/fuzz.sh
  postgresql-15 postgresql-client-15 redis-server redis-tools
  curl python3 python3-yaml procps  # python3-yaml: tests/deploy/check_manifests.py
  prometheus  # promtool checks /metrics in the tests
  chromium  # headless, loads the status page in the tests
)

source "$(dirname "$0")/lib/packages.sh"
install_packages "${packages[@]}"
echo "setup: the packages are installed"
