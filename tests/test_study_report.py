"""A study's report: the contrasts its file fixes (checked against scipy), convergence slopes and learning
curves, and the refusal of a folder whose runs were not paired."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import write_digit_folder
from scipy import stats

from mixnet.experiment import runs as runs_module
from mixnet.experiment.curves import end_slope, slope_lines
from mixnet.experiment.folder import ForeignFolderError
from mixnet.study import load_study, run_study, write_report
from mixnet.study.contrasts import contrast_lines, contrast_results, detectable
from mixnet.study.report import markdown
from mixnet.study.results import summarize
from mixnet.study.runner import STUDY_FILE, study_record
from mixnet.study.spec import study_from_dict

# top-1 per seed (seeds 0..3) of four variants: k5 a steady gain over k3, k7 a noisy one, k3.5 close to k5.
TOP1 = {
    "k3": [70.0, 75.5, 68.2, 72.9],
    "k5": [72.1, 77.0, 70.9, 74.8],
    "k7": [71.0, 79.5, 67.0, 75.1],
    "k3.5": [72.3, 76.6, 71.4, 74.7],
}
CONTRASTS = [
    {"name": "k5 over k3", "a": "k3", "b": "k5", "positive_control": True},
    {"name": "k7 over k5", "a": "k5", "b": "k7"},
    {"name": "MixConv vs k5", "a": "mobilenet_v2-k5", "b": "k3.5"},
]


def _study(seeds=(0, 1, 2, 3), contrasts=CONTRASTS):
    raw = {
        "name": "fixed",
        "models": ["mobilenet_v2"],
        "width_mult": 0.35,
        "variants": list(TOP1),
        "seeds": list(seeds),
        "data": "digits",
        "img_size": 32,
        "contrasts": contrasts,
    }
    return study_from_dict(raw, "test")


def _history(top1: float, slope: float, epochs: int = 6) -> list[dict]:
    return [
        {"epoch": e, "train_loss": 2.0 / e, "val_top1": top1 - slope * (epochs - e) + 0.1 * (-1) ** e}
        for e in range(1, epochs + 1)
    ]


def _rows(seeds=(0, 1, 2, 3)) -> list[dict]:
    rows = []
    for kernels, values in TOP1.items():
        for s in seeds:
            rows.append(
                {
                    "run": f"mobilenet_v2-{kernels}-s{s}",
                    "key": f"mobilenet_v2-{kernels}",
                    "model": "mobilenet_v2",
                    "kernels": kernels,
                    "seed": s,
                    "status": "ok",
                    "top1": values[s],
                    "macs_m": 1.0 + len(kernels) / 10,
                    "history": _history(values[s], 0.5 * s),
                }
            )
    return rows


def _holm(p: list[float]) -> list[float]:
    """Holm's adjusted p, written out from its definition: step k of m multiplies by m - k, kept monotone."""
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [0.0] * len(p), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        out[i] = running
    return out


def test_contrasts_resolve_to_variant_keys_in_file_order():
    study = _study()
    assert [(c.a, c.b) for c in study.contrasts] == [
        ("mobilenet_v2-k3", "mobilenet_v2-k5"),
        ("mobilenet_v2-k5", "mobilenet_v2-k7"),
        ("mobilenet_v2-k5", "mobilenet_v2-k3.5"),
    ]
    assert [c.positive_control for c in study.contrasts] == [True, False, False]


def test_contrast_lines_match_scipy_paired_t_tests_with_holm():
    study = _study()
    summary = summarize(_rows(), [v.key for v in study.architectures()])
    refs = [stats.ttest_rel(TOP1[b], TOP1[a]) for a, b in (("k3", "k5"), ("k5", "k7"), ("k5", "k3.5"))]
    holm = _holm([r.pvalue for r in refs])
    results = contrast_results(study, summary)
    for c, ref, h in zip(results, refs, holm, strict=True):
        ci = ref.confidence_interval(0.95)
        assert c.p == pytest.approx(ref.pvalue, rel=1e-9) and c.p_holm == pytest.approx(h, rel=1e-9)
        assert c.ci == pytest.approx((ci.low, ci.high), rel=1e-9) and c.n == 4
    lines = contrast_lines(study, summary)
    text = "\n".join(lines)
    for spec, ref, h in zip(CONTRASTS, refs, holm, strict=True):
        ci = ref.confidence_interval(0.95)
        row = next(line for line in lines if line.startswith(f"| {spec['name']}"))
        verdict = "resolved" if h < 0.05 else "not resolved"
        assert f"| {ci.low:+.2f} to {ci.high:+.2f} | {ref.pvalue:.3g} | {h:.3g} | {verdict} |" in row
    assert holm[0] < 0.05 < holm[1]  # the fixed numbers exercise both verdicts
    assert "| k5 over k3 (positive control) | mobilenet_v2-k5 - mobilenet_v2-k3 | +2.05 |" in text
    assert "Positive control `k5 over k3`: resolved" in text
    assert "Holm-corrected over the 3 contrasts" in text and "(n seeds that both finished, n = 4)" in text


def test_the_smallest_detectable_difference_has_the_stated_power():
    """Simulated paired studies with the stated difference and SD reject at level 0.05/3 about 80% of the time."""
    study = _study()
    results = contrast_results(study, summarize(_rows(), [v.key for v in study.architectures()]))
    mdd = detectable(results)
    rms = math.sqrt(np.mean([c.sd**2 for c in results]))
    diffs = np.random.default_rng(0).normal(mdd, rms, size=(40_000, 4))
    power = np.mean(stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05 / 3)
    assert power == pytest.approx(0.8, abs=0.01)
    text = "\n".join(contrast_lines(study, summarize(_rows(), [v.key for v in study.architectures()])))
    assert f"Smallest detectable difference: {mdd:.2f} points (power 80% at level 0.05/3" in text


def test_an_unresolved_positive_control_and_one_seed_are_said_plainly():
    control = [{"name": "k7 over k5", "a": "k5", "b": "k7", "positive_control": True}]
    study = _study(contrasts=control)
    text = "\n".join(contrast_lines(study, summarize(_rows(), [v.key for v in study.architectures()])))
    assert "Positive control `k7 over k5`: not resolved: the design did not detect even this effect" in text
    one = _study(seeds=(0,))
    text = "\n".join(contrast_lines(one, summarize(_rows((0,)), [v.key for v in one.architectures()])))
    assert "One seed: no significance can be claimed" in text and "Holm-corrected" not in text
    assert "| +2.10 | - | - | - | no significance can be claimed (fewer than two seeds) |" in text


def test_a_study_without_contrasts_keeps_the_automatic_trends():
    study = _study(contrasts=[])
    rows = _rows()
    summary = summarize(rows, [v.key for v in study.architectures()])
    text = markdown(study, summary, [], None, "", rows)
    assert "## Do the paper's trends appear here?" in text and "## Contrasts fixed" not in text
    fixed = _study()
    text = markdown(fixed, summarize(rows, [v.key for v in fixed.architectures()]), [], None, "", rows)
    assert "## Contrasts fixed in the study file" in text and "## Do the paper's trends" not in text


def test_end_slopes_are_least_squares_lines_of_the_last_three_epochs():
    history = [{"epoch": e, "train_loss": 1.0, "val_top1": v} for e, v in enumerate([10, 40, 55, 61, 63.5, 64], 1)]
    assert end_slope(history) == pytest.approx(stats.linregress([4, 5, 6], [61, 63.5, 64]).slope, rel=1e-12)
    assert math.isnan(end_slope(history[:1]))
    study = _study()
    lines = slope_lines(_rows(), [v.key for v in study.architectures()])
    # Seed s rises 0.5 s points per epoch; the line through the zigzag (4, +0.1), (5, -0.1), (6, +0.1) is flat.
    row = next(line for line in lines if line.startswith("| mobilenet_v2-k5 |"))
    assert row == "| mobilenet_v2-k5 | +0.75 | s0: +0.00 / s1: +0.50 / s2: +1.00 / s3: +1.50 |"
    assert "![learning curves](learning_curves.png)" in lines


def _trainer(config):
    top1 = TOP1[config.kernels][config.seed]
    history = _history(top1, 0.2)
    return {"top1": top1, "top5": 99.0, "epochs": len(history), "classes": 4, "history": history}


def test_report_of_a_run_study_has_contrasts_curves_and_slopes(tmp_path, monkeypatch):
    folder = write_digit_folder(tmp_path / "data", 4, (4, 2))
    raw = {**study_record(_study())["study"], "data": str(folder)}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(raw))
    monkeypatch.setattr(runs_module, "train_in_process", _trainer)
    study = study_from_dict(raw, str(path))
    run_study(study, tmp_path / "out", log=lambda *a: None)
    files = write_report(tmp_path / "out", measure_latency=False)
    assert files["learning_curves.png"].stat().st_size > 0
    report = files["report.md"].read_text()
    assert "Positive control `k5 over k3`: resolved" in report
    assert re.search(r"\| mobilenet_v2-k3\.5 \| \+0\.20 \| s0: \+0\.20 / ", report)


def test_a_folder_of_unpaired_runs_is_refused_with_the_reason(tmp_path, monkeypatch):
    """A study folder written before runs were paired (no pairing in its record) is not mixed with new runs."""
    monkeypatch.setattr(runs_module, "train_in_process", _trainer)
    study = load_study(_write_toml(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    record = study_record(study)
    del record["pairing"], record["study"]["contrasts"]  # the record as such a folder holds it
    (out / STUDY_FILE).write_text(json.dumps(record))
    before = (out / STUDY_FILE).read_bytes()
    with pytest.raises(ForeignFolderError, match=r"differs in: pairing"):
        run_study(study, out, log=lambda *a: None)
    assert (out / STUDY_FILE).read_bytes() == before and sorted(p.name for p in out.iterdir()) == [STUDY_FILE]
    record["pairing"] = study_record(study)["pairing"]  # paired runs, recorded before contrasts existed: accepted
    (out / STUDY_FILE).write_text(json.dumps(record))
    run_study(study, out, log=lambda *a: None)


def _write_toml(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "s"\nmodels = ["mobilenet_v2"]\nwidth_mult = 0.35\nvariants = ["k3", "k5"]\nseeds = [0]\n'
        'data = "digits"\nimg_size = 32\n'
    )
    return path
