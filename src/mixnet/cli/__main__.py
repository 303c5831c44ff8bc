"""``python -m mixnet.cli``: the ``mixnet`` command (used where the console script may not be on PATH)."""

import sys

from mixnet.cli import main

sys.exit(main())
