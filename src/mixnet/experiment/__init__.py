"""The ground that the kernel study and the architecture search share: a job of many small trainings.

``folder`` (an experiment folder that records its options and refuses another experiment's), ``rows``
(atomic text writes, JSON-lines result rows that survive a kill, CSV tables), ``runs`` (one training run
on :func:`mixnet.train.train` recorded as one row; the recipes), ``stats`` (paired comparisons by seed,
Holm's correction, rank correlation with bootstrap intervals, the smallest detectable difference) and
``plots`` (one matplotlib set-up for every report). The design follows pycls's sweep tools: one layer of
config, runs and analysis under every sweep.
"""
