#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: unit tests, then integration tests against real
# PostgreSQL, Redis and the Kafka protocol (each started by the tests on free loopback ports).
# Usage: bash scripts/test.sh [ctest args...]   e.g. -L unit
# SLUICE_DOCKER_TEST=1 also builds the Docker image and runs it in a compose stack (scripts/docker_test.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib/services.sh"

bash "$ROOT/scripts/setup.sh"
build_sluice "$ROOT/build" RelWithDebInfo
cd "$ROOT/build"
ctest --output-on-failure "$@"

# A short fuzzing run of the HTTP layer, the record parser and the definitions (scripts/fuzz.sh: clang, libFuzzer,
# ASan and UBSan; build dir build-fuzz). SLUICE_FUZZ_SECONDS sets each one's length; 0 skips them.
if [[ ${SLUICE_FUZZ_SECONDS:-20} != 0 ]]; then
  bash "$ROOT/scripts/fuzz.sh" --seconds "${SLUICE_FUZZ_SECONDS:-20}"
fi

# The Docker image and compose stack (scripts/docker_test.sh; installs docker.io, needs root or sudo).
if [[ ${SLUICE_DOCKER_TEST:-0} == 1 ]]; then
  bash "$ROOT/scripts/docker_test.sh"
fi
