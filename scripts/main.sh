#!/usr/bin/env bash
# The main job. Extra arguments go to `mixnet demo` (e.g. --data path/to/imagefolder).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=hub bash scripts/setup.sh
.venv/bin/mixnet info
.venv/bin/python -c "
import torch, mixnet
m = mixnet.create_model('mixnet_s').eval()
with torch.inference_mode():
    print('mixnet_s forward:', tuple(m(torch.randn(1, 3, 224, 224)).shape))
"
