"""The paper's kernel study as a job: MobileNets with single kernels and MixConv, trained, timed and reported.

``spec`` (study files and the built-in studies), ``paper`` (the paper's reference curves), ``runner``
(training every variant and seed, resumable, sharded, optionally under torchrun), ``results`` (the JSONL
rows and per-variant summaries), ``latency`` (interleaved inference timing), ``report`` (trends, plots,
markdown) and ``finish`` (writing all of them into the study folder). The folder, the rows, the runs, the
statistics and the plots are :mod:`mixnet.experiment`'s, shared with the architecture search.
"""

from mixnet.study.finish import read_study, write_report
from mixnet.study.runner import plan_runs, run_study
from mixnet.study.spec import Study, StudyError, Variant, builtin_studies, builtin_text, load_study

__all__ = [
    "Study",
    "StudyError",
    "Variant",
    "builtin_studies",
    "builtin_text",
    "load_study",
    "plan_runs",
    "read_study",
    "run_study",
    "write_report",
]
