#!/usr/bin/env bash
# Sets up, builds and runs the Sluice demo: PostgreSQL and Redis on free loopback ports in .run/,
# the daemon with its embedded Kafka-protocol broker and event generator. Ctrl-C stops everything.
# Usage: bash scripts/demo.sh [--seconds N]   (N: stop by itself after N seconds)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib/services.sh"

seconds=0
[[ ${1:-} == --seconds ]] && seconds=${2:?}

bash "$ROOT/scripts/setup.sh"
echo "demo: building (Release)..."
build_sluice "$ROOT/build-release" Release sluice >/dev/null

RUN=$ROOT/.run
mkdir -p "$RUN"
pg_port=$(free_port)
redis_port=$(free_port)
http_port=8080
if ! python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',$http_port))" 2>/dev/null; then
  http_port=$(free_port)
fi

sluice_pid=""
cleanup() {
  [[ -n $sluice_pid ]] && kill -TERM "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null
  stop_redis "$RUN/redis"
  stop_postgres "$RUN/pg"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

start_postgres "$RUN/pg" "$pg_port"
start_redis "$RUN/redis" "$redis_port"

export SLUICE_PG_DSN="host=127.0.0.1 port=$pg_port dbname=sluice user=postgres"
export SLUICE_REDIS_PORT=$redis_port
export SLUICE_HTTP_LISTEN=127.0.0.1:$http_port
"$ROOT/build-release/sluice" --config "$ROOT/config/demo.json" 2>"$RUN/sluice.log" &
sluice_pid=$!

for _ in $(seq 150); do
  curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$sluice_pid" 2>/dev/null || { cat "$RUN/sluice.log"; exit 1; }
  sleep 0.2
done
# Wait for a first record to reach PostgreSQL, and show it through the API.
key=""
for _ in $(seq 100); do
  key=$(psql "$SLUICE_PG_DSN" -tAc "SELECT key FROM sluice.user_activity_latest ORDER BY updated_at DESC LIMIT 1" 2>/dev/null || true)
  [[ -n $key ]] && break
  sleep 0.2
done

# The embedded broker's address, for `sluice try` (it reads the topic itself, writing nothing).
broker=$(grep -o 'embedded Kafka-protocol broker (librdkafka mock cluster) at [^ ]*' "$RUN/sluice.log" | awk '{print $NF}' | head -1)

cat <<MSG

Sluice is running (logs: $RUN/sluice.log).
  API:         http://127.0.0.1:$http_port/v1/features/user_activity/$key
  status page: http://127.0.0.1:$http_port/   metrics: http://127.0.0.1:$http_port/metrics   API description: http://127.0.0.1:$http_port/openapi.json
  health:      http://127.0.0.1:$http_port/healthz   readiness: http://127.0.0.1:$http_port/readyz
  PostgreSQL:  psql "$SLUICE_PG_DSN"
  Redis:       redis-cli -p $redis_port hgetall sluice:user_activity:$key

Try:
  curl -s http://127.0.0.1:$http_port/v1/features/user_activity/$key
  curl -s http://127.0.0.1:$http_port/metrics | grep sluice_record_stage_seconds_sum   # where a record's time goes, by stage
  curl -s http://127.0.0.1:$http_port/v1/feature-sets/user_activity   # the definition: version, revision, spec hash (environment "demo")
  curl -s http://127.0.0.1:$http_port/v1/feature-sets/user_activity/quality | head -c 600; echo   # windows, expectations, the gate
  curl -s http://127.0.0.1:$http_port/v1/admin/quarantine/user_activity                          # records held for review
  curl -s http://127.0.0.1:$http_port/get-online-features -H 'Content-Type: application/json' -d '{"feature_service": "ranker", "entities": {"user_id": ["$key"]}}'   # as Feast asks
  $ROOT/build-release/sluice feast-definitions --config $ROOT/config/demo.json | head -20   # the Feast repository objects

Change the definition (README, "Changing a feature set"), with these variables set in your shell:
  export SLUICE_PG_DSN="$SLUICE_PG_DSN" SLUICE_REDIS_PORT=$redis_port SLUICE_HTTP_LISTEN=127.0.0.1:0
  $ROOT/build-release/sluice try --config $ROOT/config/demo.json --set user_activity --brokers $broker --records 2000
  $ROOT/build-release/sluice plan --config $ROOT/config/demo.json      # exit 0: nothing to change; 3: breaking

Train on what you serve (README, "Train on what you serve"): the features as they were at each row's time,
as known then (late records left out), streamed back as CSV; or the same to a file with a progress bar:
  psql "$SLUICE_PG_DSN" -tAc "SELECT json_build_object('user_id', key, 'event_timestamp', event_time + interval '1 second', 'label', clicks % 2) FROM sluice.user_activity_history ORDER BY id DESC LIMIT 1000" > $RUN/rows.ndjson
  curl -s -X POST 'http://127.0.0.1:$http_port/v1/training-sets?features=user_activity:clicks,user_activity:spend_sum_1h&as_known_at=true&format=csv' -H 'Content-Type: application/x-ndjson' --data-binary @$RUN/rows.ndjson | head -5
  $ROOT/build-release/sluice export --config $ROOT/config/demo.json --features user_activity:clicks,user_activity:spend_sum_1h --entities $RUN/rows.ndjson --output $RUN/train.csv

Change it live: edit config/demo.json (a TTL, a transform, a new feature set), then
  kill -HUP $sluice_pid        # or: curl -s -X POST http://127.0.0.1:$http_port/v1/admin/reload
  curl -s http://127.0.0.1:$http_port/v1/admin/config | head -c 400; echo    # the running config, its hash
  curl -s 'http://127.0.0.1:$http_port/v1/admin/activity?limit=5'           # who did what (start, reloads, ...)

MSG
curl -s "http://127.0.0.1:$http_port/v1/features/user_activity/$key"
echo
echo
if ((seconds > 0)); then
  sleep "$seconds"
else
  echo "Ctrl-C stops the daemon, PostgreSQL and Redis."
  wait "$sluice_pid"
fi
