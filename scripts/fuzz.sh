#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, clang + libFuzzer with ASan and UBSan, ccache, build dir
# build-fuzz) and runs each on a copy of its seed corpus for a while: http_request_fuzzer (the
# HTTP layer), record_parser_fuzzer (a Kafka message's value through the record parser's fast
# path and its nlohmann path, which must agree), definition_fuzzer (a config's sets through
# their canonical specs and back, and the compatible/breaking classification) and
# training_rows_fuzzer (a training set's NDJSON or CSV entity rows, joined and written).
# Usage: scripts/fuzz.sh [--seconds N] [--jobs N] [--only TARGET] [extra libFuzzer flags...]
#   --seconds N   how long to fuzz each target (default 60)
#   --jobs N      parallel fuzzing processes (default 1)
#   --only TARGET run this target only
# Prints executions per second and the number of crashes of each; exits non-zero if any were found.
# The last run's crash inputs are kept in build-fuzz/crashes/TARGET/
# (replay: build-fuzz/TARGET FILE; SLUICE_FUZZ_VERBOSE=1 makes record_parser_fuzzer print the outcome).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-fuzz"
seconds=60
jobs=1
only=
extra=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
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
targets=(http_request_fuzzer record_parser_fuzzer definition_fuzzer training_rows_fuzzer)
[[ -n $only ]] && targets=("$only")
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"

# fuzz_target NAME SEED_DIR MAX_LEN [libFuzzer flags...]: the seed corpus stays as it is in the
# tree; what the fuzzer learns goes to build-fuzz/corpus/NAME.
failed=0
fuzz_target() {
  local name=$1 seeds=$2 max_len=$3
  shift 3
  local corpus="$BUILD/corpus/$name" crashes="$BUILD/crashes/$name" log="$BUILD/fuzz-$name.log"
  rm -rf "$crashes"  # holds the crashes of the last run only
  mkdir -p "$corpus" "$crashes"
  cp -n "$seeds"/* "$corpus/" 2>/dev/null || true
  rm -f "$BUILD"/fuzz-[0-9]*.log
  echo "fuzz: running $name for ${seconds}s (${jobs} job(s)), log in $log"
  set +e
  (
    cd "$BUILD"
    # halt_on_error: a sanitizer finding is a crash.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$crashes/" "$@")
    if ((jobs > 1)); then args+=(-jobs="$jobs" -workers="$jobs"); fi
    "./$name" "${args[@]}" "${extra[@]}" "$corpus" "$seeds"
  ) >"$log" 2>&1
  local rc=$?
  set -e
  if ((jobs > 1)); then cat "$BUILD"/fuzz-[0-9]*.log >>"$log" 2>/dev/null || true; fi

  local runs per_sec found
  runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  per_sec=$(grep -ho 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  found=$(find "$crashes" -type f | wc -l)
  echo "fuzz: $name: ${runs} executions, ${per_sec} exec/s, ${found} crash file(s) in $crashes, exit code $rc"
  if ((rc != 0)) || ((found > 0)); then
    tail -n 60 "$log" >&2
    failed=1
  fi
}

for t in "${targets[@]}"; do
  case $t in
    # A request with its header and a body.
    http_request_fuzzer) fuzz_target "$t" "$ROOT/fuzz/corpus" 16384 ;;
    record_parser_fuzzer) fuzz_target "$t" "$ROOT/fuzz/corpus-records" 4096 -dict="$ROOT/fuzz/record_parser.dict" ;;
    # A config (or two registry specs) and its canonical specs.
    definition_fuzzer) fuzz_target "$t" "$ROOT/fuzz/corpus-definitions" 8192 ;;
    # A training set's entity rows: a format byte, a read size byte, then the body.
    training_rows_fuzzer) fuzz_target "$t" "$ROOT/fuzz/corpus-entity-rows" 4096 ;;
    *) echo "fuzz: no target $t" >&2; exit 2 ;;
  esac
done
exit "$failed"
