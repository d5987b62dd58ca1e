#!/usr/bin/env bash
# Installs uv (the package manager that reads uv.lock) into .tools/, from PyPI.
# On a fresh Debian/Ubuntu, installs python3-venv first when it is missing.
#
#   scripts/bootstrap.sh UV_VERSION   uv into .tools/
#   scripts/bootstrap.sh tool COMMAND PACKAGE...   Debian packages when COMMAND is missing
#     (npm for the map page's MapLibre GL JS, chromium for its browser test, wrk for benchmarks)
#   scripts/bootstrap.sh lib SONAME PACKAGE...   Debian packages when the shared library is missing
#     (Pango for WeasyPrint, which prints the communes' posters as PDF)
set -euo pipefail
version=$1
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ "$version" = lib ]; then
  soname=$2; shift 2
  # grep reads all of ldconfig's list: `grep -q` would stop at the first match, and ldconfig,
  # killed by SIGPIPE, would fail the pipeline under pipefail (a random "missing" library).
  ldconfig -p 2>/dev/null | grep "$soname" >/dev/null && exit 0
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
    echo "[bootstrap] installing $* from the system's packages (for $soname)" >&2
    { as_root apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } || true
  fi
  ldconfig -p 2>/dev/null | grep "$soname" >/dev/null || {
    echo "[bootstrap] error: $soname is missing and could not be installed; install the" \
      "packages $* (Debian/Ubuntu: apt-get install $*), then run make again." >&2
    exit 1
  }
  exit 0
fi
if [ "$version" = tool ]; then
  # scripts/bootstrap.sh tool COMMAND PACKAGE... : install Debian PACKAGEs when COMMAND is missing.
  command=$2; shift 2
  command -v "$command" >/dev/null 2>&1 && exit 0
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
    echo "[bootstrap] installing $* from the system's packages (for $command)" >&2
    { as_root apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } || true
  fi
  command -v "$command" >/dev/null 2>&1 || {
    echo "[bootstrap] error: $command is missing and could not be installed; install the" \
      "packages $* (Debian/Ubuntu: apt-get install $*), then run make again." >&2
    exit 1
  }
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "[bootstrap] installing python3-venv from the system's packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
rm -rf .tools
python3 -m venv .tools
.tools/bin/pip install --quiet --disable-pip-version-check "uv==${version}"
