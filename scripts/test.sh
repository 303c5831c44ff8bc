#!/usr/bin/env bash
# The whole test suite (lint, format check, pytest). Extra arguments go to pytest.
# Tests run in PYTEST_WORKERS parallel worker processes (pytest-xdist; default 2, the cores of this project's machines),
# each with one torch thread; PYTEST_WORKERS=0 runs them in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
workers=${PYTEST_WORKERS:-2}
if [ "$workers" -gt 0 ]; then
  .venv/bin/python -m pytest -n "$workers" "$@"
else
  .venv/bin/python -m pytest "$@"
fi
