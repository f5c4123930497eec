# Starts and stops PostgreSQL 15 and Redis 7 in a local directory on free loopback ports.
# Sourced by scripts/demo.sh (and the benchmark scripts). Needs scripts/setup.sh to have run.

PG_BIN=/usr/lib/postgresql/15/bin

# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command as the unprivileged postgres user when we are root (initdb refuses root).
as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres DIR PORT: initdb (first time) and start; creates database "sluice".
start_postgres() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    as_pg_user "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log"; return 1; }
  fi
  as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" >/dev/null ||
    { tail -20 "$dir/postgres.log"; return 1; }
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='sluice'" |
    grep -q 1 || psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE sluice"
}

stop_postgres() {
  local dir=$1
  [[ -f $dir/data/postmaster.pid ]] && as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

# start_redis DIR PORT
start_redis() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis did not start; see $dir/redis.log" >&2
  return 1
}

stop_redis() {
  local dir=$1
  [[ -f $dir/redis.pid ]] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
  rm -f "$dir/redis.pid"
  return 0
}

# build_sluice BUILD_DIR BUILD_TYPE [targets...]: configure (first time) and build with ccache.
build_sluice() {
  local build=$1 type=$2
  shift 2
  # Paths under the tree hash relative to it, so another clone (CI) reuses the same cache entries.
  export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
  cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
  cmake --build "$build" -j"$(nproc)" ${1:+--target "$@"}
}
