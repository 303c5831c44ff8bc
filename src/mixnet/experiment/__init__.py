"""The ground that the kernel study and the architecture search share: a job of many small trainings.

``folder`` (an experiment folder that records its options and refuses another experiment's), ``rows``
(JSON-lines result rows that survive a kill), ``runs`` (one training run on :func:`mixnet.train.train`
recorded as one row; the recipes) and ``stats`` (paired comparisons by seed, Holm's correction, rank
correlation with bootstrap intervals, the smallest detectable difference). Tables and plots are written
with :mod:`mixnet.atomic` and :mod:`mixnet.plotting`, as every part writes them. The design follows pycls's
sweep tools: one layer of config, runs and analysis under every sweep.
"""
