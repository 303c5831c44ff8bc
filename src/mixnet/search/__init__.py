"""Architecture search over the paper's MixNet space with this machine's latency in the loop.

``space`` (the per-block choices on a skeleton, optionally elastic depths), ``latency`` (a table measured
on one runtime, or the MACs proxy; the predictor and its error), ``supernet`` (weight sharing:
superkernels, channel masks; extraction of a path as a MixNet), ``train`` (uniform single-path supernet
training, resumable, DDP), ``evolve`` (candidate evaluation, the MnasNet objective, evolution and random
search), ``retrain`` and ``report`` (the winners retrained beside the skeleton at the same latency),
``run`` (all of it, resumable). The folder, the rows, the retraining runs, the statistics and the plots are
:mod:`mixnet.experiment`'s, shared with the kernel study.
"""

from mixnet.search.space import SKIP, Arch, BlockChoice, SearchSpace

__all__ = ["SKIP", "Arch", "BlockChoice", "SearchSpace"]
