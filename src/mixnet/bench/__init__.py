"""``mixnet bench``: speed of ours vs timm as ratios in one interleaved run (harness: :mod:`mixnet.timing`)."""
