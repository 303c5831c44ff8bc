"""One run under torchrun: ``python -m torch.distributed.run ... -m mixnet.experiment.worker CONFIG RESULT``.

Every process trains (DDP); rank 0 writes the final metrics to RESULT as JSON for the experiment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mixnet.experiment.runs import metrics_of
from mixnet.train.config import TrainConfig


def main(argv: list[str]) -> int:
    """Trains the run described by the TrainConfig JSON ``argv[0]``; rank 0 writes ``argv[1]``."""
    from mixnet.train import train

    config_path, result_path = argv
    config = TrainConfig.from_dict(json.loads(Path(config_path).read_text()))
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(result_path).write_text(json.dumps(metrics_of(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
