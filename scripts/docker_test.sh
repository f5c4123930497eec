#!/usr/bin/env bash
# Builds the Sluice image and runs it in a compose stack, without any registry:
#   1. installs docker.io, docker-compose and debootstrap (Debian packages) when missing and starts
#      dockerd when it is not running;
#   2. makes the base image debian:bookworm with debootstrap from the mirror apt uses (skipped when
#      the image exists);
#   3. builds docker/Dockerfile, and PostgreSQL 15 and Redis 7 images from Debian's packages
#      (docker/test/), at the same time;
#   4. runs docker/docker-compose.yml with docker/docker-compose.test.yml: PostgreSQL, Redis and
#      Sluice with its embedded Kafka-protocol broker and event generator;
#   5. checks through the published port that a feature read returns PRESENT and that PostgreSQL
#      has rows, prints the figures, and tears the stack down (also on failure).
# Usage: bash scripts/docker_test.sh    (root, or sudo, on Debian 12; scripts/test.sh runs it
# when SLUICE_DOCKER_TEST=1). dockerd and the images stay for the next run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
started=$SECONDS

log() { printf 'docker_test: %s\n' "$*"; }
fail() {
  printf 'docker_test: FAIL: %s\n' "$*" >&2
  exit 1
}

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

# --- 1. packages and dockerd -----------------------------------------------------------------
packages=(docker.io docker-compose debootstrap curl python3)
source "$ROOT/scripts/lib/packages.sh"
install_packages "${packages[@]}"

# The client that comes with the daemon (another docker CLI earlier in PATH may expect plugins).
DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || DOCKER=$(command -v docker)
docker() { "${sudo_cmd[@]}" "$DOCKER" "$@"; }
compose_bin() {
  "${sudo_cmd[@]}" env SLUICE_IMAGE="$SLUICE_IMAGE" SLUICE_HTTP_PORT="$SLUICE_HTTP_PORT" \
    SLUICE_PG_PASSWORD="$SLUICE_PG_PASSWORD" SLUICE_REDIS_PASSWORD="$SLUICE_REDIS_PASSWORD" docker-compose "$@"
}
# The legacy builder uses local images only: no registry is asked for debian:bookworm.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  "${sudo_cmd[@]}" sh -c 'nohup dockerd >>/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log >&2; fail "dockerd did not start"; }
fi

# --- 2. base image -----------------------------------------------------------------------------
# apt_source SUITE: the first URI apt uses for SUITE (deb822 .sources or one-line .list files).
apt_source() {
  local suite=$1 f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/) }
          if ($i ~ /^Suites:/) suites = $i " "
        }
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ ("[ \t]" suite "[ \t]")) { print u[1]; exit }
      }' "$f")
    [[ -n $uri ]] && break
  done
  if [[ -z $uri ]]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -f $f ]] || continue
      uri=$(sed -nE "s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+$suite[[:space:]].*/\2/p" "$f" | head -1)
      [[ -n $uri ]] && break
    done
  fi
  echo "$uri"
}

if docker image inspect debian:bookworm >/dev/null 2>&1; then
  log "base image debian:bookworm exists"
else
  mirror=$(apt_source bookworm)
  [[ -n $mirror ]] || fail "no bookworm source in apt's sources (/etc/apt/sources.list*): debootstrap needs the mirror apt uses"
  security=$(apt_source bookworm-security)
  log "making debian:bookworm with debootstrap from $mirror"
  t=$SECONDS
  rootfs=$(mktemp -d /var/tmp/sluice-rootfs.XXXXXX)
  "${sudo_cmd[@]}" debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -30 "$rootfs.log" >&2; fail "debootstrap failed (log: $rootfs.log)"; }
  "${sudo_cmd[@]}" bash -s "$rootfs" "$mirror" "$security" <<'EOF'
set -euo pipefail
root=$1 mirror=$2 security=$3
{
  echo "deb $mirror bookworm main"
  echo "deb $mirror bookworm-updates main"
  [[ -n $security ]] && echo "deb $security bookworm-security main"
} >"$root/etc/apt/sources.list"
# No package cache in image layers: downloaded .deb files and the binary caches go after every
# install, and apt fetches no translations.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
# An image build is thrown away when it fails: dpkg need not fsync every file it unpacks.
echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
# Documentation, manuals and translations are not installed (copyright files are kept).
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CONF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"
: >"$root/etc/machine-id"
EOF
  "${sudo_cmd[@]}" tar --numeric-owner -C "$rootfs" -c . |
    docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["bash"]' - debian:bookworm >/dev/null
  "${sudo_cmd[@]}" rm -rf "$rootfs" "$rootfs.log"
  log "debian:bookworm made in $((SECONDS - t)) s"
fi

# --- 3. images -----------------------------------------------------------------------------------
export SLUICE_IMAGE=sluice:test
SLUICE_HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export SLUICE_HTTP_PORT
# The stores' passwords reach Sluice's config through the environment, as in production.
SLUICE_PG_PASSWORD=pg-$RANDOM$RANDOM SLUICE_REDIS_PASSWORD=redis-$RANDOM$RANDOM
compose=(-p sluice-test -f "$ROOT/docker/docker-compose.yml" -f "$ROOT/docker/docker-compose.test.yml")
work=$(mktemp -d)

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    log "logs of the stack:"
    compose_bin "${compose[@]}" logs --no-color --tail=60 2>/dev/null | sed 's/^/  /' >&2 || true
  fi
  compose_bin "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  [[ -n ${store_build_pid:-} ]] && kill "$store_build_pid" 2>/dev/null
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the PostgreSQL and Redis test images (log: $work/stores.log)"
compose_bin "${compose[@]}" build postgres redis >"$work/stores.log" 2>&1 &
store_build_pid=$!

log "building $SLUICE_IMAGE from docker/Dockerfile"
t=$SECONDS
build_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
docker build -f "$ROOT/docker/Dockerfile" -t "$SLUICE_IMAGE" "$ROOT" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; fail "image build failed"; }
build_seconds=$((SECONDS - t))
# Earlier runs' images, untagged by this one (the builder stage's layers this build reused stay).
for title in sluice sluice-builder; do
  docker image prune -f --filter "label=org.opencontainers.image.title=$title" --filter "until=$build_started" >/dev/null
done
image_bytes=$(docker image inspect -f '{{.Size}}' "$SLUICE_IMAGE")
image_mb=$(((image_bytes + 500000) / 1000000))
log "image built in $build_seconds s, $image_mb MB"

wait "$store_build_pid" || { tail -40 "$work/stores.log" >&2; fail "test store images failed to build"; }
store_build_pid=""

# --- 4. the stack ------------------------------------------------------------------------------
# Kafka here is Sluice's embedded broker, so the compose file's kafka, kafka-topics and generator
# services are not started: the stores come up first, then Sluice alone (--no-deps).
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null; }
container() { compose_bin "${compose[@]}" ps -q "$1"; }

compose_bin "${compose[@]}" up -d --no-build postgres redis >"$work/up.log" 2>&1 ||
  { cat "$work/up.log" >&2; fail "compose up (stores) failed"; }
for service in postgres redis; do
  id=$(container "$service")
  for _ in $(seq 120); do
    [[ $(health "$id") == healthy ]] && break
    sleep 0.5
  done
  [[ $(health "$id") == healthy ]] || fail "$service did not become healthy"
done
log "PostgreSQL and Redis are healthy"

t_start=$(date +%s%N)
compose_bin "${compose[@]}" up -d --no-build --no-deps sluice >>"$work/up.log" 2>&1 ||
  { cat "$work/up.log" >&2; fail "compose up (sluice) failed"; }
api=http://127.0.0.1:$SLUICE_HTTP_PORT
first_ms=""
body=""
for _ in $(seq 600); do
  for key in user-0 user-1 user-2 user-3 user-4; do
    body=$(curl -s --max-time 2 "$api/v1/features/user_activity/$key" || true)
    if [[ $body == *'"status":"PRESENT"'* ]]; then
      first_ms=$((($(date +%s%N) - t_start) / 1000000))
      break 2
    fi
  done
  sleep 0.1
done
[[ -n $first_ms ]] || fail "no PRESENT feature read at $api within 60 s (last answer: ${body:-none})"
log "first served record after $first_ms ms: $body"

sluice_id=$(container sluice)
for _ in $(seq 60); do
  [[ $(health "$sluice_id") == healthy ]] && break
  sleep 0.5
done
[[ $(health "$sluice_id") == healthy ]] || fail "the image's HEALTHCHECK did not pass (status: $(health "$sluice_id"))"
curl -sf --max-time 2 "$api/healthz" >/dev/null || fail "GET /healthz failed"
ready=""
for _ in $(seq 60); do
  curl -sf --max-time 2 "$api/readyz" >/dev/null && { ready=yes; break; }
  sleep 0.5
done
[[ -n $ready ]] || fail "GET /readyz did not answer 200: $(curl -s "$api/readyz")"

pg_id=$(container postgres)
rows=0
for _ in $(seq 40); do
  rows=$(docker exec "$pg_id" psql -U sluice -d sluice -tAc 'SELECT count(*) FROM sluice.user_activity_history' 2>/dev/null || echo 0)
  ((rows > 0)) && break
  sleep 0.5
done
((rows > 0)) || fail "no rows in sluice.user_activity_history"
redis_keys=$(docker exec "$(container redis)" redis-cli --scan --pattern 'sluice:user_activity:*' | wc -l)
((redis_keys > 0)) || fail "no keys in Redis"
log "PostgreSQL: $rows history rows; Redis: $redis_keys keys"

cat <<MSG

docker_test: PASS
  image build time:            $build_seconds s
  image size:                  $image_mb MB ($SLUICE_IMAGE)
  time to first served record: $first_ms ms (from compose up of the sluice service)
  total time:                  $((SECONDS - started)) s
MSG
