#!/usr/bin/env bash
# Starts (or stops) throwaway PostgreSQL+PostGIS and Redis instances for this checkout.
#
#   scripts/services.sh up       install what is missing, start both, write .env   (idempotent)
#   scripts/services.sh down     stop both (data folders are kept under .services/)
#   scripts/services.sh status   say what runs where
#
# GEO_ENGINE_REPLICA=1 scripts/services.sh up (make services-replica) also runs a hot standby of
# the PostgreSQL primary, streaming from it through a replication slot, on its own port
# (GEO_ENGINE_PG_REPLICA_PORT, default the primary's + 1) and data folder, and writes its URL to
# .env as GEO_ENGINE_READ_DATABASE_URL: the API's reads go there. The first time, the primary is
# reconfigured (wal_level replica) and restarted. Once made, the standby is started by every
# `up` and stopped by `down`; .env names it whenever it runs. Local mode only.
#
# Without a Docker engine (or with GEO_ENGINE_SERVICES=local) it uses the system's packages and
# runs its own instances on their own ports and data folders, never the system's default ones.
# With GEO_ENGINE_SERVICES=docker (the default where apt-get is absent and a Docker engine
# answers) it runs docker compose instead.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE="$ROOT/.services"
PG_PORT=${GEO_ENGINE_PG_PORT:-55432}
REDIS_PORT=${GEO_ENGINE_REDIS_PORT:-56379}
ENV_FILE="$ROOT/.env"
# Ports not given: those this checkout's services were started on (its .env), so that `status`
# and `down` speak of this checkout's own instances, never of another's on the default ports.
if [ -z "${GEO_ENGINE_PG_PORT:-}" ] && [ -f "$ENV_FILE" ]; then
  port=$(sed -n 's|^GEO_ENGINE_DATABASE_URL=postgresql://.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$ENV_FILE")
  [ -n "$port" ] && PG_PORT=$port
fi
if [ -z "${GEO_ENGINE_REDIS_PORT:-}" ] && [ -f "$ENV_FILE" ]; then
  port=$(sed -n 's|^GEO_ENGINE_REDIS_URL=redis://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$ENV_FILE")
  [ -n "$port" ] && REDIS_PORT=$port
fi
if [ -z "${GEO_ENGINE_PG_REPLICA_PORT:-}" ] && [ -f "$ENV_FILE" ]; then
  port=$(sed -n 's|^GEO_ENGINE_READ_DATABASE_URL=postgresql://.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$ENV_FILE")
  [ -n "$port" ] && GEO_ENGINE_PG_REPLICA_PORT=$port
fi
REPLICA_PORT=${GEO_ENGINE_PG_REPLICA_PORT:-$((PG_PORT + 1))}
REPLICA=${GEO_ENGINE_REPLICA:-0}
REPLICATION_SLOT=geo_engine_standby
MODE=${GEO_ENGINE_SERVICES:-auto}

say() { printf '\033[1m[services]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$MODE" = auto ]; then
  if command -v apt-get >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    MODE=local
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    MODE=docker
  else
    die "no apt-get, no PostgreSQL binaries and no Docker engine: install PostgreSQL 15+ with PostGIS 3 and Redis 7, or Docker"
  fi
fi

write_env() {  # $1 = database url, $2 = redis url, $3 = the standby's url (none: reads on $1)
  local tmp
  tmp=$(mktemp)
  if [ -f "$ENV_FILE" ]; then
    grep -v -E '^GEO_ENGINE_(DATABASE_URL|REDIS_URL|READ_DATABASE_URL)=' "$ENV_FILE" >"$tmp" || true
  fi
  printf 'GEO_ENGINE_DATABASE_URL=%s\nGEO_ENGINE_REDIS_URL=%s\n' "$1" "$2" >>"$tmp"
  if [ -n "${3:-}" ]; then printf 'GEO_ENGINE_READ_DATABASE_URL=%s\n' "$3" >>"$tmp"; fi
  mv "$tmp" "$ENV_FILE"
  say "connection settings written to .env"
}

# ---------------------------------------------------------------- docker
docker_up() {
  docker compose -f "$ROOT/docker-compose.yml" up -d --wait postgis redis
  write_env "postgresql://geo_engine:geo_engine@127.0.0.1:${PG_PORT}/geo_engine" "redis://127.0.0.1:${REDIS_PORT}/0"
}

# ---------------------------------------------------------------- local packages
# The PostgreSQL cluster itself (initdb, configuration, start, stop) is scripts/pg_cluster.sh's,
# shared with the tests that stop and start a server of their own.
CLUSTER="$ROOT/scripts/pg_cluster.sh"
pg_bindir() { "$CLUSTER" bindir; }

install_packages() {
  local missing=() bindir ver
  bindir=$(pg_bindir || true)
  [ -n "$bindir" ] || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from the system's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    bindir=$(pg_bindir)
  fi
  ver=$(basename "$(dirname "$bindir")")
  [ "${ver%%.*}" -ge 15 ] || die "PostgreSQL $ver found; 15 or newer is needed"
  if [ ! -f "/usr/share/postgresql/$ver/extension/postgis.control" ]; then
    say "installing postgresql-$ver-postgis-3 from the system's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$ver-postgis-3" >/dev/null
  fi
  # The package starts the system's default instances; ours are separate and those are left alone.
}

pg_data_dir() {
  # The data folder lives under the repo unless the 'postgres' user cannot reach it there.
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$ROOT"; then
    echo "/var/tmp/geo-engine-$(echo "$ROOT" | md5sum | cut -c1-12)/pg"
  else
    echo "$STATE/pg"
  fi
}

# The password lives beside the cluster it opens, so they are created and removed together.
pg_password_file() { echo "$(dirname "$(pg_data_dir)")/pg.password"; }

pg_up() {
  local data pwfile
  data=$(pg_data_dir)
  pwfile=$(pg_password_file)
  mkdir -p "$STATE" "$(dirname "$data")"
  [ -f "$pwfile" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$pwfile")
  if [ ! -f "$data/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $data (port $PG_PORT)"
    "$CLUSTER" init "$data" "$PG_PORT" "$pwfile"
  fi
  if "$CLUSTER" status "$data"; then
    say "PostgreSQL already running on port $PG_PORT"
  else
    say "starting PostgreSQL on port $PG_PORT"
    "$CLUSTER" start "$data"
  fi
  local pw tries=0
  pw=$(cat "$pwfile")
  until PGPASSWORD="$pw" psql -h 127.0.0.1 -p "$PG_PORT" -U geo_engine -d postgres -Atqc 'select 1' >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ $tries -lt 60 ] || die "PostgreSQL on port $PG_PORT does not answer"
    sleep 0.5
  done
  if ! PGPASSWORD="$pw" psql -h 127.0.0.1 -p "$PG_PORT" -U geo_engine -d postgres -Atqc \
      "select 1 from pg_database where datname = 'geo_engine'" | grep -q 1; then
    PGPASSWORD="$pw" psql -h 127.0.0.1 -p "$PG_PORT" -U geo_engine -d postgres -qc 'create database geo_engine' >/dev/null
  fi
}

# ---------------------------------------------------------------- hot standby (GEO_ENGINE_REPLICA=1)
pg_replica_dir() { echo "$(dirname "$(pg_data_dir)")/pg-replica"; }

pg_psql() {  # $1 = port, then psql's arguments: as geo_engine, with the cluster's password
  local port=$1
  shift
  PGPASSWORD=$(cat "$(pg_password_file)") psql -h 127.0.0.1 -p "$port" -U geo_engine "$@"
}

replica_up() {
  local data replica level tries=0
  data=$(pg_data_dir)
  replica=$(pg_replica_dir)
  level=$(pg_psql "$PG_PORT" -d postgres -Atqc 'SHOW wal_level')
  if [ "$level" = minimal ]; then
    say "PostgreSQL on port $PG_PORT: wal_level replica for the standby (a restart)"
    "$CLUSTER" replication "$data"
    "$CLUSTER" stop "$data" fast
    "$CLUSTER" start "$data"
  fi
  if [ ! -f "$replica/PG_VERSION" ]; then
    say "copying the primary into a hot standby in $replica (port $REPLICA_PORT)"
    "$CLUSTER" standby "$PG_PORT" "$replica" "$REPLICA_PORT" "$(pg_password_file)" "$REPLICATION_SLOT"
  fi
  if "$CLUSTER" status "$replica"; then
    say "PostgreSQL standby already running on port $REPLICA_PORT"
  else
    say "starting the PostgreSQL standby on port $REPLICA_PORT"
    "$CLUSTER" start "$replica"
  fi
  until [ "$(pg_psql "$REPLICA_PORT" -d geo_engine -Atqc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]; do
    tries=$((tries + 1))
    [ $tries -lt 60 ] || die "the standby on port $REPLICA_PORT does not answer (log: $replica/server.log)"
    sleep 0.5
  done
}

replica_running() { "$CLUSTER" status "$(pg_replica_dir)"; }

replica_down() {
  if replica_running; then
    "$CLUSTER" stop "$(pg_replica_dir)" fast
    say "PostgreSQL standby stopped"
  fi
}

replica_lag() {  # seconds behind the primary's last replayed commit, bytes received not replayed
  pg_psql "$REPLICA_PORT" -d postgres -AtqF ' s, ' -c \
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                 ELSE round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 3)
            END,
            pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) || ' bytes'"
}

pg_down() {
  local data
  data=$(pg_data_dir)
  if "$CLUSTER" status "$data"; then
    "$CLUSTER" stop "$data" fast
    say "PostgreSQL stopped"
  fi
}

redis_up() {
  mkdir -p "$STATE/redis"
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "Redis already running on port $REDIS_PORT"
  else
    say "starting Redis on port $REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE/redis" --daemonize yes \
      --pidfile "$STATE/redis/redis.pid" --logfile "$STATE/redis/redis.log" \
      --appendonly yes --appendfsync everysec --save ''
  fi
  local tries=0
  until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
    tries=$((tries + 1))
    [ $tries -lt 60 ] || die "Redis on port $REDIS_PORT does not answer (log: $STATE/redis/redis.log)"
    sleep 0.2
  done
}

# GEO_ENGINE_BROKER=nats: the consumers' three-node cluster, its URLs in .env (the broker itself
# is chosen where the consumers run, so that the tests' own settings are not overridden).
nats_up() {
  "$ROOT/scripts/nats_cluster.sh" up
  local tmp
  tmp=$(mktemp)
  grep -v -E '^GEO_ENGINE_NATS_URL=' "$ENV_FILE" >"$tmp" || true
  printf 'GEO_ENGINE_NATS_URL=%s\n' "$("$ROOT/scripts/nats_cluster.sh" urls)" >>"$tmp"
  mv "$tmp" "$ENV_FILE"
}

redis_down() {
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
    say "Redis stopped"
  fi
}

case "${1:-up}" in
  up)
    if [ "$MODE" = docker ]; then
      [ "$REPLICA" = 1 ] && die "GEO_ENGINE_REPLICA=1: the hot standby runs in the local mode only"
      docker_up
      exit 0
    fi
    install_packages
    pg_up
    if [ "$REPLICA" = 1 ] || [ -f "$(pg_replica_dir)/PG_VERSION" ]; then replica_up; fi
    redis_up
    pw=$(cat "$(pg_password_file)")
    read_url=""
    if replica_running; then read_url="postgresql://geo_engine:${pw}@127.0.0.1:${REPLICA_PORT}/geo_engine"; fi
    write_env "postgresql://geo_engine:${pw}@127.0.0.1:${PG_PORT}/geo_engine" \
      "redis://127.0.0.1:${REDIS_PORT}/0" "$read_url"
    if [ "${GEO_ENGINE_BROKER:-redis}" = nats ]; then nats_up; fi
    ;;
  down)
    if [ "$MODE" = docker ]; then docker compose -f "$ROOT/docker-compose.yml" down; exit 0; fi
    redis_down
    replica_down
    pg_down
    "$ROOT/scripts/nats_cluster.sh" down
    ;;
  status)
    if [ "$MODE" = docker ]; then docker compose -f "$ROOT/docker-compose.yml" ps; exit 0; fi
    data=$(pg_data_dir)
    if "$CLUSTER" status "$data"; then
      say "PostgreSQL: running on 127.0.0.1:$PG_PORT ($data)"
    else
      say "PostgreSQL: stopped"
    fi
    if replica_running; then
      say "PostgreSQL standby: running on 127.0.0.1:$REPLICA_PORT ($(pg_replica_dir)), lag $(replica_lag)"
    elif [ -f "$(pg_replica_dir)/PG_VERSION" ]; then
      say "PostgreSQL standby: stopped"
    fi
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
      say "Redis: running on 127.0.0.1:$REDIS_PORT"
    else
      say "Redis: stopped"
    fi
    "$ROOT/scripts/nats_cluster.sh" status
    ;;
  *) die "usage: $0 up|down|status" ;;
esac
