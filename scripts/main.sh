#!/usr/bin/env bash
# The main job: train MixNet-S on the built-in digits, evaluate, predict, write a report into runs/.
# Extra arguments go to `mixnet demo` (e.g. --out runs/my-demo, --data path/to/imagefolder).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=train,hub bash scripts/setup.sh
exec .venv/bin/mixnet demo "$@"
