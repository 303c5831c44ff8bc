"""``mixnet bench``: ours against timm (``suite``), against the networks a user would pick instead (``peers``),
exported files beside their PyTorch model (``files``) and per-operator profiles (``profile``), all measured
through :mod:`mixnet.measure`."""
