#!/usr/bin/env bash
# A three-node NATS JetStream cluster on local ports, for the consumers when
# GEO_ENGINE_BROKER=nats (Debian's nats-server).
#
#   scripts/nats_cluster.sh up [DIR]        write the nodes' configuration and start the three (idempotent)
#   scripts/nats_cluster.sh down [DIR]      stop the three (their data folders are kept)
#   scripts/nats_cluster.sh status [DIR]    say which nodes run
#   scripts/nats_cluster.sh node DIR N      start node N (1-3) alone, e.g. after it was killed
#   scripts/nats_cluster.sh urls            the client URLs, comma-separated (GEO_ENGINE_NATS_URL)
#
# DIR defaults to .services/nats; each node n keeps its JetStream data in DIR/nN, its
# configuration, log and pid file beside it. Node n (1-3) listens for clients on
# GEO_ENGINE_NATS_PORT+n-1 (54222), for the other nodes' routes on
# GEO_ENGINE_NATS_CLUSTER_PORT+n-1 (56222) and for monitoring on GEO_ENGINE_NATS_HTTP_PORT+n-1
# (58222), all on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENT_PORT=${GEO_ENGINE_NATS_PORT:-54222}
ROUTE_PORT=${GEO_ENGINE_NATS_CLUSTER_PORT:-56222}
HTTP_PORT=${GEO_ENGINE_NATS_HTTP_PORT:-58222}
NODES=(1 2 3)

say() { printf '\033[1m[nats]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

binary() { command -v nats-server || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || die "nats-server missing: scripts/bootstrap.sh tool nats-server nats-server"; }

running() {  # $1 = dir, $2 = node
  local pid_file="$1/n$2.pid"
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

configure() {  # $1 = dir, $2 = node
  local dir=$1 n=$2 routes="" i
  for i in "${NODES[@]}"; do
    [ "$i" = "$n" ] && continue
    routes+="    nats-route://127.0.0.1:$((ROUTE_PORT + i - 1))"$'\n'
  done
  mkdir -p "$dir/n$n"
  cat >"$dir/n$n.conf" <<EOF
server_name: n$n
listen: 127.0.0.1:$((CLIENT_PORT + n - 1))
http: 127.0.0.1:$((HTTP_PORT + n - 1))
pid_file: "$dir/n$n.pid"
log_file: "$dir/n$n.log"
jetstream {
  store_dir: "$dir/n$n"
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: geo-engine
  listen: 127.0.0.1:$((ROUTE_PORT + n - 1))
  routes: [
$routes  ]
}
EOF
}

start_node() {  # $1 = dir, $2 = node
  local dir=$1 n=$2
  if running "$dir" "$n"; then
    say "node n$n already running on port $((CLIENT_PORT + n - 1))"
    return
  fi
  configure "$dir" "$n"
  setsid "$(binary)" -c "$dir/n$n.conf" </dev/null >/dev/null 2>&1 &
  say "node n$n started on port $((CLIENT_PORT + n - 1)) ($dir/n$n)"
}

wait_ready() {  # every node answers, JetStream included (a meta leader was elected)
  local n tries
  for n in "${NODES[@]}"; do
    tries=0
    until curl -fs "http://127.0.0.1:$((HTTP_PORT + n - 1))/healthz" >/dev/null 2>&1; do
      tries=$((tries + 1))
      [ $tries -lt 150 ] || die "node n$n does not answer (log: $1/n$n.log)"
      sleep 0.2
    done
    # Another server answering on that port would pass the check above.
    running "$1" "$n" || die "node n$n did not start (log: $1/n$n.log)"
  done
}

urls() {
  local out="" n
  for n in "${NODES[@]}"; do out+="${out:+,}nats://127.0.0.1:$((CLIENT_PORT + n - 1))"; done
  echo "$out"
}

command=${1:-up}
DIR=$(realpath -m "${2:-$ROOT/.services/nats}")
case "$command" in
  up)
    mkdir -p "$DIR"
    for n in "${NODES[@]}"; do start_node "$DIR" "$n"; done
    wait_ready "$DIR"
    say "cluster ready: $(urls)"
    ;;
  node)
    [ $# -eq 3 ] || die "usage: $0 node DIR N"
    start_node "$DIR" "$3"
    ;;
  down)
    for n in "${NODES[@]}"; do
      if running "$DIR" "$n"; then
        kill "$(cat "$DIR/n$n.pid")"
        say "node n$n stopped"
      fi
    done
    ;;
  status)
    for n in "${NODES[@]}"; do
      if running "$DIR" "$n"; then
        say "node n$n: running on 127.0.0.1:$((CLIENT_PORT + n - 1))"
      else
        say "node n$n: stopped"
      fi
    done
    ;;
  urls) urls ;;
  *) die "usage: $0 up|down|status [DIR] | node DIR N | urls" ;;
esac
