#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: unit tests, then integration tests against real
# PostgreSQL, Redis and the Kafka protocol (each started by the tests on free loopback ports).
# Usage: bash scripts/test.sh [ctest args...]   e.g. -L unit
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib/services.sh"

bash "$ROOT/scripts/setup.sh"
build_sluice "$ROOT/build" RelWithDebInfo
cd "$ROOT/build"
ctest --output-on-failure "$@"
