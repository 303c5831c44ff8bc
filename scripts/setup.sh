#!/usr/bin/env bash
# Creates or reuses .venv in the checkout and installs this project into it with pip.
# Usage: source-free; called by scripts/main.sh and scripts/test.sh. EXTRAS picks optional deps.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${EXTRAS:-train,hub}
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
stamp=.venv/.mixnet-install-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-$extras
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing mixnet[$extras] into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
  echo "$want" > "$stamp"
fi
