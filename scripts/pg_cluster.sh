#!/usr/bin/env bash
# One throwaway PostgreSQL cluster in a folder of its own, on a port of its own: the system's
# default instances are never touched. scripts/services.sh runs the development instance with
# it; the tests that stop and start a server under load (tests/pgcluster.py) run their own.
#
#   scripts/pg_cluster.sh bindir                           the server tools' folder (initdb, pg_ctl)
#   scripts/pg_cluster.sh init DATA PORT PASSWORD_FILE     create the cluster (superuser geo_engine)
#   scripts/pg_cluster.sh start DATA                       start it, wait until it accepts connections
#   scripts/pg_cluster.sh stop DATA [fast|immediate]       stop it (default fast), wait until stopped
#   scripts/pg_cluster.sh status DATA                      exit 0 when it runs
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the 'postgres' user, so
# DATA's parent folder is given to that user. PG_SHARED_BUFFERS (default 1GB) sizes a new cluster.
set -euo pipefail

die() { printf '\033[1m[pg_cluster]\033[0m error: %s\n' "$*" >&2; exit 1; }

bindir() {
  local d
  # Only a folder with the server's tools: a client-only install has bin/ too.
  d=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] || return 1
  dirname "$d"
}

as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

init() {  # $1 = data folder, $2 = port, $3 = password file
  local data=$1 port=$2 pwfile=$3 tools initpw
  tools=$(bindir) || die "no PostgreSQL server tools under /usr/lib/postgresql"
  [ -f "$data/PG_VERSION" ] && die "$data already holds a cluster"
  mkdir -p "$data"
  initpw=$(mktemp)
  cp "$pwfile" "$initpw"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$(dirname "$data")" "$initpw"; fi
  as_owner "$tools/initdb" -D "$data" -U geo_engine --pwfile="$initpw" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$initpw"
  # A throwaway instance for development, tests and benchmarks: durability is traded for speed.
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
shared_buffers = ${PG_SHARED_BUFFERS:-1GB}
work_mem = 64MB
maintenance_work_mem = 1GB
max_wal_size = 8GB
wal_level = minimal
max_wal_senders = 0
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
}

start() {  # $1 = data folder
  local data=$1
  as_owner "$(bindir)/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$data/server.log" >&2; die "PostgreSQL did not start (log: $data/server.log)"; }
}

stop() {  # $1 = data folder, $2 = shutdown mode
  as_owner "$(bindir)/pg_ctl" -D "$1" -m "${2:-fast}" -w -t 60 stop >/dev/null
}

status() {  # $1 = data folder
  [ -f "$1/PG_VERSION" ] && as_owner "$(bindir)/pg_ctl" -D "$1" status >/dev/null 2>&1
}

case "${1:-}" in
  bindir) bindir ;;
  init) [ $# -eq 4 ] || die "usage: $0 init DATA PORT PASSWORD_FILE"; init "$2" "$3" "$4" ;;
  start) [ $# -eq 2 ] || die "usage: $0 start DATA"; start "$2" ;;
  stop) [ $# -ge 2 ] || die "usage: $0 stop DATA [fast|immediate]"; stop "$2" "${3:-fast}" ;;
  status) [ $# -eq 2 ] || die "usage: $0 status DATA"; status "$2" ;;
  *) die "usage: $0 bindir|init|start|stop|status ..." ;;
esac
