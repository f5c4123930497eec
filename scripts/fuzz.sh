#!/usr/bin/env bash
# Builds the HTTP fuzz target (fuzz/, clang + libFuzzer with ASan and UBSan, ccache, build dir
# build-fuzz) and runs it on a copy of the seed corpus for a while.
# Usage: scripts/fuzz.sh [--seconds N] [--jobs N] [extra libFuzzer flags...]
#   --seconds N   how long to fuzz (default 60)
#   --jobs N      parallel fuzzing processes (default 1)
# Prints executions per second and the number of crashes; exits non-zero if any were found.
# The last run's crash inputs are kept in build-fuzz/crashes/ (replay: build-fuzz/http_request_fuzzer FILE).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-fuzz"
seconds=60
jobs=1
extra=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done

CXX_BIN=${CXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [[ -z $CXX_BIN ]]; then
  echo "fuzz: clang++ is not installed (scripts/setup.sh installs clang and libfuzzer-14-dev)" >&2
  exit 2
fi

# Paths under the tree hash relative to it, so another clone (CI) reuses the same cache entries.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
cmake -S "$ROOT/fuzz" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target http_request_fuzzer

# The seed corpus stays as it is in the tree; what the fuzzer learns goes to build-fuzz/corpus.
rm -rf "$BUILD/crashes"  # holds the crashes of the last run only
mkdir -p "$BUILD/corpus" "$BUILD/crashes"
cp -n "$ROOT"/fuzz/corpus/* "$BUILD/corpus/" 2>/dev/null || true
log="$BUILD/fuzz.log"
rm -f "$BUILD"/fuzz-*.log
echo "fuzz: running http_request_fuzzer for ${seconds}s (${jobs} job(s)), log in $log"
set +e
(
  cd "$BUILD"
  # halt_on_error: a sanitizer finding is a crash; -max_len: a request with its header and a body.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
  args=(-max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$BUILD/crashes/")
  if ((jobs > 1)); then args+=(-jobs="$jobs" -workers="$jobs"); fi
  ./http_request_fuzzer "${args[@]}" "${extra[@]}" corpus "$ROOT/fuzz/corpus"
) >"$log" 2>&1
rc=$?
set -e
if ((jobs > 1)); then cat "$BUILD"/fuzz-*.log >>"$log" 2>/dev/null || true; fi

runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
per_sec=$(grep -ho 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
crashes=$(find "$BUILD/crashes" -type f | wc -l)
echo "fuzz: ${runs} executions, ${per_sec} exec/s, ${crashes} crash file(s) in $BUILD/crashes, exit code $rc"
if ((rc != 0)) || ((crashes > 0)); then
  tail -n 60 "$log" >&2
  exit 1
fi
