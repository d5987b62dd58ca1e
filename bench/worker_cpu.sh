#!/bin/bash
# CPU of one API worker per request, whatever the load on the machine (bench/README.md,
# "tile cache"): `geo-engine serve --workers 1` on DATABASE_URL with the tile cache of BYTES
# (0: off), wrk warms it for 3 s on PATHS_FILE (one path a line), then 15 s are measured and
# the worker's utime + stime (/proc/<pid>/stat) is divided by wrk's requests.
# Usage: bench/worker_cpu.sh DATABASE_URL PORT BYTES PATHS_FILE
set -euo pipefail
url=$1 port=$2 bytes=$3 paths=$4
GEO_ENGINE_DATABASE_URL=$url GEO_ENGINE_TILE_CACHE_MAX_BYTES=$bytes \
    setsid .venv/bin/geo-engine serve --port "$port" --workers 1 >/dev/null 2>&1 &
pid=$!
trap 'kill -TERM -- -$pid 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/health" && break
    sleep 1
done
wrk -t2 -c32 -d3s -s bench/wrk_paths.lua "http://127.0.0.1:$port" -- "$paths" 0 >/dev/null
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu)
line=$(wrk -t2 -c32 -d15s -s bench/wrk_paths.lua "http://127.0.0.1:$port" -- "$paths" 0 | grep '^{')
after=$(cpu)
ticks=$(getconf CLK_TCK)
python3 -c "
import json, sys
d = json.loads(sys.argv[1]); s = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(json.dumps({'cache_bytes': int(sys.argv[5]), 'requests': d['requests'],
    'worker_cpu_ms_per_request': round(1000 * s / d['requests'], 3),
    'p50_ms': d['p50_us'] / 1000, 'p99_ms': d['p99_us'] / 1000}))
" "$line" "$before" "$after" "$ticks" "$bytes"
