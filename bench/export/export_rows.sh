# The rows of scripts/bench.sh's group "export": a point-in-time training set (POST
# /v1/training-sets, sluice export). Sourced by bench.sh, whose helpers and settings it uses
# (postgres_up, PSQL, write_config, start_sluice, run_openloop, add_row, fmt, median, RUNS, SECS,
# EXPORT_ROWS, EXPORT_KEYS, EXPORT_EVENTS, SERVE_KEYS, mode, ...); export_rows adds the rows.
#
# One daemon (PostgreSQL and memory; the kv set loaded through the push route for the live GETs)
# with the set "activity" (10 fields of four types, a sum over 1 h), whose history SQL fills
# (fill.sql): EXPORT_KEYS keys x EXPORT_EVENTS events over a day, and EXPORT_ROWS entity rows over
# the same keys at random moments of that day, as a table and as a CSV file. The same rows are
# exported over HTTP (the file streamed as the body, the daemon's RSS sampled every 0.5 s) and with
# sluice export --entity-table, and joined by psql as hand-written LATERAL joins (reference.sql),
# interleaved; every output, CSV, is counted by wc. Then GET from memory with and without an export
# running, and the join as the engine runs it (LATERAL) against sort-merge formulations of it
# (joins.sql), for one chunk and for all the rows.
# shellcheck shell=bash disable=SC2154,SC2034  # bench.sh's variables, in and out

EXPORT_DIR=$ROOT/bench/export
EXPORT_CHUNK=5000     # the engine's training.chunk_rows default: the chunk the join rows time (whatever BENCH_TRAINING says)
EXPORT_GET_RATE=2000  # req/s of the GETs with and without an export
EXPORT_LIMIT=1800     # seconds any one export, reference or join may take

# secs_since T0: seconds since T0 (date +%s.%N).
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
# per_sec COUNT SECONDS
per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$sluice_pid/status" 2>/dev/null || true; }
mib_of_kib() { awk -v k="$1" 'BEGIN { if (k != "") printf "%.0f", k / 1024 }'; }
# forget PID: drops PID from pids (it has ended).
forget() {
  local keep_pids=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep_pids+=("$p"); done
  pids=("${keep_pids[@]}")
}

# export_http NAME: POSTs the entity rows (the CSV file streamed as the body; CSV out) and counts the
# answer's lines into NAME.lines, sampling the daemon's RSS (KiB) into NAME.rss before, every 0.5 s
# during, and after; prints the seconds it took.
export_http() {
  local name=$1 c
  rss_kib >"$WORK/$name.rss"
  (
    t0=$(date +%s.%N)
    timeout "$EXPORT_LIMIT" curl -sS -X POST -H 'Expect:' -H 'Content-Type: text/csv' -T "$WORK/entities.csv" \
      -D "$WORK/$name.headers" "http://127.0.0.1:$export_port/v1/training-sets?features=$export_features&format=csv" |
      wc -l >"$WORK/$name.lines" || true
    secs_since "$t0" >"$WORK/$name.secs"
  ) 2>"$WORK/$name.err" &
  c=$!
  while kill -0 "$c" 2>/dev/null; do
    sleep 0.5
    rss_kib >>"$WORK/$name.rss"
  done
  wait "$c" || true
  rss_kib >>"$WORK/$name.rss"
  cat "$WORK/$name.secs"
}
# export_cli NAME: sluice export --entity-table (CSV to stdout, counted); prints the seconds.
export_cli() {
  local t0
  t0=$(date +%s.%N)
  timeout "$EXPORT_LIMIT" "$SLUICE" export --config "$WORK/export.json" --features "$export_features" \
    --entity-table bench_export.entities --output - --format csv --no-progress 2>"$WORK/$1.err" |
    wc -l >"$WORK/$1.lines" || true
  secs_since "$t0"
}
# export_psql NAME: the reference, psql running reference.sql (CSV to stdout, counted); prints the seconds.
export_psql() {
  local t0
  t0=$(date +%s.%N)
  timeout "$EXPORT_LIMIT" "${PSQL[@]}" -v schema=sluice -f "$EXPORT_DIR/reference.sql" 2>"$WORK/$1.err" |
    wc -l >"$WORK/$1.lines" || true
  secs_since "$t0"
}
# data_rows NAME HEADER_LINES: the rows NAME wrote (its counted lines less its header).
data_rows() { echo $(($(cat "$WORK/$1.lines" 2>/dev/null || echo "$2") - $2)); }

# rss_summary FILE: "start max end first_half_max second_half_max" (KiB) of an export_http's samples:
# the first is before the export, the last after it, the others during it, split in two halves.
rss_summary() {
  awk '$1 != "" { s[++n] = $1 }
       END {
         m = 0; h1 = 0; h2 = 0; mid = 1 + (n - 2) / 2
         for (i = 1; i <= n; i++) if (s[i] > m) m = s[i]
         for (i = 2; i < n; i++) { if (i <= mid) { if (s[i] > h1) h1 = s[i] } else if (s[i] > h2) h2 = s[i] }
         print s[1], m, s[n], h1, h2, n
       }' "$1"
}

# joins NAME CHUNK PASSES: runs joins.sql PASSES times in one session on the first CHUNK entity rows
# (0: all); writes "statement median_ms" of the passes after the first (of the only one if PASSES is 1)
# into NAME.times.
joins() {
  local name=$1 chunk=$2 passes=$3 files=() i
  for ((i = 0; i < passes; i++)); do files+=(-f "$EXPORT_DIR/joins.sql"); done
  PGOPTIONS="$PGOPTIONS -c statement_timeout=$((EXPORT_LIMIT * 1000))" timeout $((EXPORT_LIMIT * 2)) \
    "${PSQL[@]}" -v schema=sluice -v chunk="$chunk" "${files[@]}" >"$WORK/$name.out" 2>&1 || true
  awk -v skip=$((passes > 1 ? 1 : 0)) '/^== / { n = $2; next }
       /^Time: / && n != "" { c[n]++; if (c[n] > skip) v[n] = v[n] " " $2 }
       END { for (n in v) print n, v[n] }' "$WORK/$name.out" |
    while read -r statement times; do
      # shellcheck disable=SC2086
      echo "$statement $(median $times)"
    done >"$WORK/$name.times"
  log "$name: $(tr '\n' ' ' <"$WORK/$name.times")"
}
join_ms() { awk -v n="$2" '$1 == n { print $2 }' "$WORK/$1.times"; }
ms_to_s() { awk -v x="$1" 'BEGIN { if (x != "") printf "%.1f", x / 1000 }'; }

export_rows() {
  local i r t got secs r0 rmax rend h1 h2 n
  # pg_stat_statements, for where the daemon's export spends its time (not in smoke: no restart).
  if [[ $mode != smoke && $("${PSQL[@]}" -c "SHOW shared_preload_libraries") != *pg_stat_statements* ]]; then
    "${PSQL[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
    stop_postgres "$WORK/pg"
    start_postgres "$WORK/pg" "$pg_port" >&2
  fi
  [[ $mode == smoke ]] || "${PSQL[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS sluice CASCADE" -c "DROP SCHEMA IF EXISTS bench_export CASCADE" >/dev/null
  export_port=$(free_port)
  write_config "$WORK/export.json" "$export_port" embedded pg noredis kv activity
  start_sluice "$WORK/export.json" export  # it creates the tables
  export_features=$(printf 'activity:%s,' c0 c1 c2 d0 d1 d2 s0 s1 s2 b0 d0_sum_1h)
  export_features=${export_features%,}
  local history=$((EXPORT_KEYS * EXPORT_EVENTS))
  t=$(date +%s.%N)
  timeout "$EXPORT_LIMIT" "${PSQL[@]}" -v schema=sluice -v keys="$EXPORT_KEYS" -v events="$EXPORT_EVENTS" \
    -v rows="$EXPORT_ROWS" -f "$EXPORT_DIR/fill.sql" >/dev/null
  "${PSQL[@]}" -c "COPY (SELECT user_id, to_char(event_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
    AS event_timestamp, label FROM bench_export.entities) TO STDOUT (FORMAT csv, HEADER)" >"$WORK/entities.csv"
  log "export: $(fmt "$history") history rows over $(fmt "$EXPORT_KEYS") keys and $(fmt "$EXPORT_ROWS") entity rows" \
    "($(($(stat -c %s "$WORK/entities.csv") / 1048576)) MiB of CSV) made in $(secs_since "$t") s;" \
    "history $("${PSQL[@]}" -c "SELECT pg_size_pretty(pg_total_relation_size('sluice.activity_history'))")"
  local what
  what="export $(fmt "$EXPORT_ROWS") entity rows × (10 fields + a sum over 1 h) from $(fmt "$history") history rows over $(fmt "$EXPORT_KEYS") keys"

  if [[ $mode == smoke ]]; then
    secs=$(export_http export-http-1)
    got=$(data_rows export-http-1 1)
    read -r r0 rmax rend _ <<<"$(rss_summary "$WORK/export-http-1.rss")"
    log "export-http-1: $got rows in $secs s; RSS KiB: $(tr '\n' ' ' <"$WORK/export-http-1.rss")"
    ((got == EXPORT_ROWS)) || got=0
    need "export" "$got"
    add_row "$what, POST /v1/training-sets: rows/s (RSS start $(mib_of_kib "$r0"), max $(mib_of_kib "$rmax"), end $(mib_of_kib "$rend") MiB)" \
      "$(fmt "$(per_sec "$got" "$secs")")" - - - -
    stop_sluice
    return 0
  fi

  # The live GETs' keys, in memory; then nothing left for autovacuum to do during the timings.
  "$LOAD" --url "http://127.0.0.1:$export_port" --set kv --keys "$SERVE_KEYS" --timeout 300 >"$WORK/load-export.out"
  log "export: kv $(result_of "$WORK/load-export.out")"
  timeout 600 "${PSQL[@]}" -c "VACUUM (ANALYZE)" -c "CHECKPOINT" >/dev/null

  # The export over HTTP, with the CLI and by psql, interleaved; the first HTTP run also with the
  # statements PostgreSQL ran for it (pg_stat_statements) and the CPU of the daemon and of PostgreSQL.
  local h_rate=() c_rate=() p_rate=() rss_rows=() d0 p0 d_cpu p_cpu wall
  for i in $(seq "$RUNS"); do
    if ((i == 1)); then
      "${PSQL[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
      d0=$(ticks_of "$sluice_pid") p0=$(pg_ticks)
    fi
    secs=$(export_http "export-http-$i")
    got=$(data_rows "export-http-$i" 1)
    if ((i == 1)); then
      d_cpu=$(awk -v x=$(($(ticks_of "$sluice_pid") - d0)) -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", x / t }')
      p_cpu=$(awk -v x=$(($(pg_ticks) - p0)) -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", x / t }')
      wall=$secs
      export_statements >"$WORK/export-statements.txt"
    fi
    h_rate+=("$(per_sec "$got" "$secs")")
    rss_rows+=("$(rss_summary "$WORK/export-http-$i.rss")")
    log "export-http-$i: $got rows in $secs s ($(grep -i '^x-sluice' "$WORK/export-http-$i.headers" | tr -d '\r' | tr '\n' ' '))" \
      "RSS KiB start max end 1st-half-max 2nd-half-max samples: ${rss_rows[-1]}"
    ((got == EXPORT_ROWS)) || log "export-http-$i: $got rows, not $EXPORT_ROWS (see $WORK/export-http-$i.err, $WORK/export.log)"

    secs=$(export_psql "export-psql-$i")
    got=$(data_rows "export-psql-$i" 0)
    p_rate+=("$(per_sec "$got" "$secs")")
    log "export-psql-$i: $got rows in $secs s"

    secs=$(export_cli "export-cli-$i")
    got=$(data_rows "export-cli-$i" 1)
    c_rate+=("$(per_sec "$got" "$secs")")
    log "export-cli-$i: $got rows in $secs s; $(tail -1 "$WORK/export-cli-$i.err")"
  done
  local a b
  a=$(median "${h_rate[@]}") b=$(median "${p_rate[@]}")
  add_row "$what, POST /v1/training-sets (CSV body in, CSV out): rows/s" "$(fmt "$a")" \
    "psql, the same rows as hand-written LATERAL joins (CSV out): $(fmt "$b")" "$(ratio "$a" "$b")" "≥ 0.8×" \
    "$(met ge "$(ratio "$a" "$b")" 0.8)"
  a=$(median "${c_rate[@]}")
  add_row "… sluice export --entity-table (CSV to stdout): rows/s" "$(fmt "$a")" "psql: $(fmt "$b")" "$(ratio "$a" "$b")" \
    "≥ 0.8×" "$(met ge "$(ratio "$a" "$b")" 0.8)"
  # RSS flat: during the export's second half no higher than in its first half (+ 16 MiB).
  local flat=1 text=""
  for i in "${!rss_rows[@]}"; do
    read -r r0 rmax rend h1 h2 n <<<"${rss_rows[$i]}"
    ((h2 <= h1 + 16384)) || flat=0
    text+="${text:+; }$(mib_of_kib "$r0") → $(mib_of_kib "$h1") / $(mib_of_kib "$h2") → $(mib_of_kib "$rend")"
  done
  read -r r0 rmax rend _ <<<"${rss_rows[0]}"
  add_row "… the daemon's RSS during the HTTP export, sampled every 0.5 s: max MiB (per run: start → max of the 1st / 2nd half → end: $text)" \
    "$(mib_of_kib "$rmax")" - - "flat: 2nd half ≤ 1st half + 16 MiB" "$(met test "$flat" -eq 1)"

  # GET from memory with and without an export running (interleaved; the export killed after).
  get_run() { run_openloop "$1" --url "http://127.0.0.1:$export_port/v1/features/kv/{key}" --keys "$SERVE_KEYS" \
    --rate "$EXPORT_GET_RATE" --connections 16; }
  local g0_99=() g0_50=() g1_99=() g1_50=() bg throughout=1
  for i in $(seq "$RUNS"); do
    r=$(get_run "export-get-idle-$i"); g0_99+=("$(field p99_us "$r")"); g0_50+=("$(field p50_us "$r")")
    timeout "$EXPORT_LIMIT" curl -sS -o /dev/null -X POST -H 'Expect:' -H 'Content-Type: text/csv' -T "$WORK/entities.csv" \
      "http://127.0.0.1:$export_port/v1/training-sets?features=$export_features&format=csv" 2>/dev/null &
    bg=$!
    pids+=("$bg")
    sleep 2  # the export past its start
    r=$(get_run "export-get-busy-$i"); g1_99+=("$(field p99_us "$r")"); g1_50+=("$(field p50_us "$r")")
    kill -0 "$bg" 2>/dev/null || { throughout=0; log "export-get-busy-$i: the export ended before the GETs did"; }
    kill "$bg" 2>/dev/null || true
    wait "$bg" 2>/dev/null || true
    forget "$bg"
    sleep 2  # the daemon finds the receiver gone at its next chunk
  done
  a=$(median "${g1_99[@]}") b=$(median "${g0_99[@]}")
  add_row "GET /v1/features/{set}/{key}, memory, open loop $(fmt "$EXPORT_GET_RATE") req/s over $(fmt "$SERVE_KEYS") keys, while an HTTP export runs$( ((throughout)) || echo " (it ended before the GETs did)"): p99 µs (p50 $(fmt "$(median "${g1_50[@]}")"))" \
    "$(fmt "$a")" "no export, same daemon and keys: $(fmt "$b") (p50 $(fmt "$(median "${g0_50[@]}")"))" "$(ratio "$a" "$b")" \
    "≤ +2,000 µs (documented)" "$(met awk -v a="$a" -v b="$b" 'BEGIN { exit !(a != "" && b != "" && a - b <= 2000) }')"
  stop_sluice

  # The join as the engine runs it against sort-merge formulations: one chunk (a warm-up pass, then
  # RUNS timed passes, medians) and all the rows (once).
  joins export-joins-chunk "$EXPORT_CHUNK" $((RUNS + 1))
  local newest window lat sm don fetch fetched
  newest=$(join_ms export-joins-chunk lateral_newest) window=$(join_ms export-joins-chunk lateral_window)
  lat=$(awk -v a="$newest" -v b="$window" 'BEGIN { if (a != "" && b != "") print a + b }')
  sm=$(join_ms export-joins-chunk sortmerge_sql) don=$(join_ms export-joins-chunk distinct_on)
  fetch=$(join_ms export-joins-chunk history_fetch)
  fetched=$("${PSQL[@]}" -c "SELECT count(*) FROM sluice.activity_history WHERE key IN
    (SELECT user_id FROM bench_export.entities LIMIT $EXPORT_CHUNK)")
  add_row "point-in-time join of one $(fmt "$EXPORT_CHUNK")-row chunk (PostgreSQL, warm): LATERAL as 2 statements: ms (newest $(fmt "$newest") + window $(fmt "$window"); as 1 statement with the sum in SQL $(fmt "$(join_ms export-joins-chunk lateral_sql)"), the engine's form: 1 statement, the window as arrays)" \
    "$(fmt "$lat")" "sort-merge in SQL (window functions) $(fmt "$sm"); DISTINCT ON over a range join (newest only) $(fmt "$don"); just reading the chunk's keys' history ordered ($(fmt "$fetched") rows) $(fmt "$fetch")" \
    "$(ratio "$lat" "$sm")" "LATERAL < each" \
    "$(met awk -v l="$lat" -v a="$sm" -v b="$don" -v c="$fetch" 'BEGIN { exit !(l != "" && l < a && l < b && l < c) }')"
  joins export-joins-all 0 1
  local ref_s
  ref_s=$(awk -v r="$(median "${p_rate[@]}")" -v n="$EXPORT_ROWS" 'BEGIN { if (r > 0) printf "%.1f", n / r }')
  sm=$(ms_to_s "$(join_ms export-joins-all sortmerge_sql)") fetch=$(ms_to_s "$(join_ms export-joins-all history_fetch)")
  # per_chunks MS: MS (one chunk's) times the chunks of all the rows, in seconds.
  per_chunks() { ms_to_s "$(awk -v l="$1" -v n="$EXPORT_ROWS" -v c="$EXPORT_CHUNK" 'BEGIN { if (l != "") print l * n / c }')"; }
  add_row "… all $(fmt "$EXPORT_ROWS") rows in one statement: s (chunk by chunk, at the one chunk's warm times: LATERAL $(per_chunks "$lat"), sort-merge $(per_chunks "$(join_ms export-joins-chunk sortmerge_sql)"))" \
    "LATERAL (the psql reference) $ref_s" "sort-merge in SQL $sm; just reading all history ordered $fetch" "$(ratio "$ref_s" "$sm")" - -

  export_block=$(
    echo "Where the HTTP export's time went (run 1: $wall s wall; CPU: the daemon $d_cpu s, PostgreSQL $p_cpu s; pg_stat_statements):"
    echo
    cat "$WORK/export-statements.txt"
  )
}

# export_statements: what PostgreSQL ran for the export (pg_stat_statements since the reset), as a
# markdown table: the engine's two join statements, the transaction around them, the rest.
export_statements() {
  echo "| statement | calls | total s | mean ms | rows | shared blocks hit | read |"
  echo "|---|---|---|---|---|---|---|"
  "${PSQL[@]}" -F ' | ' -c "
    SELECT CASE WHEN query LIKE '%unnest(\$1::text[]%' AND query LIKE '%\$3::bigint%' THEN 'the join: each row''s newest and its window''s events'
                WHEN query LIKE '%unnest(\$1::text[]%' THEN 'newest: each row''s history row as of its timestamp'
                WHEN query ~* '^(BEGIN|COMMIT|ROLLBACK|SET)' THEN 'BEGIN / SET LOCAL / COMMIT'
                ELSE 'other' END,
           sum(calls), round(sum(total_exec_time)::numeric / 1000, 2), round(sum(total_exec_time)::numeric / sum(calls), 2),
           sum(rows), sum(shared_blks_hit), sum(shared_blks_read)
    FROM pg_stat_statements GROUP BY 1 ORDER BY 3 DESC" | sed 's/^/| /; s/$/ |/'
}
