#!/usr/bin/env bash
# Longer fault runs than CI's: more kill -9s over a longer stream, longer PostgreSQL/Redis outages
# and broker faults. Same tests as the suite (tests/integration/{crash,scale_out,outage,broker_fault}_test.cpp),
# sized by environment variables; any of them can be overridden on the command line, e.g.
#   SLUICE_IT_CRASH_KILLS=30 bash scripts/soak.sh
# Takes about 15-20 minutes. SLUICE_IT_SEED=N repeats a run's random choices.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib/services.sh"

bash "$ROOT/scripts/setup.sh"
build_sluice "$ROOT/build" RelWithDebInfo sluice sluice_integration_tests

export SLUICE_IT_CRASH_MESSAGES=${SLUICE_IT_CRASH_MESSAGES:-300000}   # ~3.7 MiB per partition: under the mock's 5 MiB
export SLUICE_IT_CRASH_STREAM_MS=${SLUICE_IT_CRASH_STREAM_MS:-150000}
export SLUICE_IT_CRASH_KILLS=${SLUICE_IT_CRASH_KILLS:-15}
export SLUICE_IT_CRASH_DRAIN_S=${SLUICE_IT_CRASH_DRAIN_S:-300}
export SLUICE_IT_SCALE_MESSAGES=${SLUICE_IT_SCALE_MESSAGES:-90000}
export SLUICE_IT_SCALE_STREAM_MS=${SLUICE_IT_SCALE_STREAM_MS:-45000}
export SLUICE_IT_OUTAGE_SECONDS=${SLUICE_IT_OUTAGE_SECONDS:-60}
export SLUICE_IT_LOCK_SECONDS=${SLUICE_IT_LOCK_SECONDS:-30}
export SLUICE_IT_BROKER_FAULT_SECONDS=${SLUICE_IT_BROKER_FAULT_SECONDS:-20}

"$ROOT/build/tests/sluice_integration_tests" --gtest_filter='Crash*:ScaleOut*:Outage*:BrokerFault*'
