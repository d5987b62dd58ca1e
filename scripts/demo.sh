#!/usr/bin/env bash
# The retention loop on the demo data, then the API and the map (make demo runs it after the
# load): a local SMTP sink keeping mails in var/mail/, `geo-engine consume` (relay, fan-out,
# engagement, erasure and the loop's clock) in the background, a consultation published in a
# commune and followed to its residents' inboxes, alerts, digests, a click and the clicker's
# next ranking; then the growth team's experiment and dashboard. The background processes stop
# with `serve` (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
GEO=.venv/bin/geo-engine
mkdir -p var/mail var/log
export GEO_ENGINE_SMTP_PORT="${GEO_ENGINE_SMTP_PORT:-2525}"
export GEO_ENGINE_DIGEST_HOUR="${GEO_ENGINE_DIGEST_HOUR:-0}"  # today's digests go out at once
export GEO_ENGINE_TICK_S="${GEO_ENGINE_TICK_S:-2}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
$GEO mail sink --port "$GEO_ENGINE_SMTP_PORT" --dir var/mail >var/log/mail-sink.log 2>&1 &
pids+=($!)
project=$($GEO loop publish)
$GEO consume >var/log/consume.log 2>&1 &
pids+=($!)
$GEO loop watch "$project" --mail-dir var/mail
echo "mails: var/mail/*.eml; the loop keeps running (var/log/consume.log) while the API serves"
# The growth team's view: a digest experiment by commune with four weeks of simulated history.
$GEO fixtures growth --days 28
echo "growth dashboard: http://127.0.0.1:${GEO_ENGINE_PORT:-8000}/staff/session with the staff token:"
$GEO growth token
$GEO serve
