#!/usr/bin/env bash
# Installs uv (the package manager that reads uv.lock) into .tools/, from PyPI.
# On a fresh Debian/Ubuntu, installs python3-venv first when it is missing.
set -euo pipefail
version=$1
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "[bootstrap] installing python3-venv from the system's packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
rm -rf .tools
python3 -m venv .tools
.tools/bin/pip install --quiet --disable-pip-version-check "uv==${version}"
