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
#   scripts/pg_cluster.sh replication DATA                 let standbys stream from it (restart it after)
#   scripts/pg_cluster.sh standby PRIMARY_PORT DATA PORT PASSWORD_FILE SLOT
#       a hot standby (not started) of the primary on 127.0.0.1:PRIMARY_PORT, in DATA, on PORT,
#       streaming through replication slot SLOT (created, or reused when it exists)
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

replication() {  # $1 = a primary's data folder
  # Appended to postgresql.conf (later lines win), so that a standby copied from it by
  # pg_basebackup has the same values: a standby refuses to start with fewer wal senders, slots
  # or connections than its primary. wal_level 'minimal' (the default above, which lets a bulk
  # COPY into a table created in the same transaction skip the WAL) cannot feed a standby.
  grep -q '^# streaming replication' "$1/postgresql.conf" && return 0
  cat >>"$1/postgresql.conf" <<EOF
# streaming replication (scripts/pg_cluster.sh replication)
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
EOF
}

standby() {  # $1 = primary's port, $2 = data folder, $3 = port, $4 = password file, $5 = slot
  local primary=$1 data=$2 port=$3 pwfile=$4 slot=$5 tools
  tools=$(bindir) || die "no PostgreSQL server tools under /usr/lib/postgresql"
  [ -f "$data/PG_VERSION" ] && die "$data already holds a cluster"
  [[ $slot =~ ^[a-z0-9_]+$ ]] || die "slot name $slot: lower-case letters, digits and _ only"
  mkdir -p "$(dirname "$data")"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$(dirname "$data")"; fi
  export PGPASSWORD
  PGPASSWORD=$(cat "$pwfile")
  # A slot left by a standby that was removed is reused: it holds the WAL from where that one
  # stopped, older than this backup's start, so nothing the new standby needs is missing.
  local create=(--create-slot)
  if [ "$(psql -h 127.0.0.1 -p "$primary" -U geo_engine -d postgres -Atqc \
      "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'")" = 1 ]; then
    create=()
  fi
  # -R writes standby.signal and primary_conninfo (with the password, in postgresql.auto.conf,
  # which only the cluster's owner reads); -X stream copies the WAL written meanwhile.
  as_owner "$tools/pg_basebackup" -h 127.0.0.1 -p "$primary" -U geo_engine -D "$data" \
    -R -X stream "${create[@]}" --slot="$slot" --checkpoint=fast \
    2> >(grep -v 'skipping special file' >&2) >/dev/null \
    || die "pg_basebackup from port $primary failed"
  # The primary's configuration was copied: this one listens on its own port and socket folder.
  # hot_standby_feedback: the primary keeps the row versions a standby's query still reads, so
  # replaying its vacuum does not cancel that query ("conflict with recovery").
  cat >>"$data/postgresql.conf" <<EOF
# hot standby (scripts/pg_cluster.sh standby)
port = $port
unix_socket_directories = '$data'
hot_standby = on
hot_standby_feedback = on
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
  replication) [ $# -eq 2 ] || die "usage: $0 replication DATA"; replication "$2" ;;
  standby)
    [ $# -eq 6 ] || die "usage: $0 standby PRIMARY_PORT DATA PORT PASSWORD_FILE SLOT"
    standby "$2" "$3" "$4" "$5" "$6"
    ;;
  *) die "usage: $0 bindir|init|start|stop|status|replication|standby ..." ;;
esac
