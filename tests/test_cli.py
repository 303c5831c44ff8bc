"""The command line."""

import argparse
import json

import pytest

import mixnet
from mixnet.cli import build_parser, main, options


def test_info_lists_every_model_with_exact_params(capsys):
    assert main(["info", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mixnet_s"]["params"] == 4_134_606
    assert rows["mixnet_l"]["paper_top1"] == 78.9
    assert rows["mixnet_xl"]["timm_top1"] == 80.49
    assert abs(rows["mixnet_m"]["macs_m"] / 360 - 1) < 0.05


def test_info_markdown(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "| mixnet_s | 4,134,606 |" in out


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)subcommand's parser, by its command line: {"train": ..., "study run": ...}."""
    return {p.prog.removeprefix("mixnet").strip(): p for p in options.walk_parsers(build_parser())}


def _options() -> dict[str, dict[str, argparse.Action]]:
    """Every subcommand's options: {command: {option string: action}}."""
    return {
        name: {s: a for a in p._actions for s in a.option_strings if s.startswith("--")}
        for name, p in _parsers().items()
    }


# Which shared options each command takes: the vocabulary's rows that apply to it. A command that does
# not train, time, load images or write files takes none of the corresponding options.
APPLIES = {
    "": set(),
    "info": {"--model", "--img-size", "--json"},
    "train": {"--model", "--weights", "--data", "--img-size", "--crop-pct", "--interpolation", "--batch-size"}
    | {"--workers", "--device", "--amp", "--channels-last", "--threads", "--out", "--strict-data", "--progress"},
    "demo": {"--data", "--batch-size", "--workers", "--threads", "--out", "--progress"},
    "study": set(),
    "study list": set(),
    "study show": set(),
    "study run": {"--data", "--device", "--workers", "--threads", "--amp", "--out", "--progress"},
    "study report": {"--progress"},
    "search": {"--data", "--img-size", "--crop-pct", "--batch-size", "--workers", "--device", "--threads", "--out"},
    "latency-table": {"--img-size", "--out", "--progress"},
    "eval": {"--model", "--weights", "--data", "--img-size", "--crop-pct", "--interpolation", "--mean", "--std"}
    | {"--batch-size", "--workers", "--device", "--amp", "--channels-last", "--threads", "--strict-data"}
    | {"--progress", "--json"},
    "predict": {"--model", "--weights", "--img-size", "--crop-pct", "--interpolation", "--mean", "--std"}
    | {"--batch-size", "--workers", "--device", "--amp", "--channels-last", "--threads", "--strict-data"}
    | {"--progress", "--json"},
    "bench": {"--model", "--weights", "--img-size", "--batch-size", "--threads", "--out", "--progress"},
    "export": {"--model", "--weights", "--img-size", "--batch-size", "--threads", "--out", "--json"},
    "quantize": {"--model", "--weights", "--data", "--img-size", "--crop-pct", "--interpolation", "--mean", "--std"}
    | {"--batch-size", "--threads", "--out", "--json"},
}
SWITCHES = {"--channels-last", "--json", "--strict-data", "--progress"}


def test_every_command_takes_its_shared_options_with_one_spelling_and_meaning():
    """One test over every parser: the shared options each command takes (APPLIES), no other, and each
    parsed the same way everywhere (the same destination; a switch everywhere or nowhere; the same choices)."""
    opts = _options()
    assert set(opts) == set(APPLIES), "a command without a row in APPLIES (or a row without a command)"
    shared = set(options.VOCABULARY)
    assert all(row <= shared for row in APPLIES.values())
    for cmd, have in opts.items():
        assert set(have) & shared == APPLIES[cmd], cmd
        for flag in APPLIES[cmd]:
            action = have[flag]
            assert action.dest == flag[2:].replace("-", "_"), (cmd, flag)
            assert (action.nargs == 0) == (flag in SWITCHES), (cmd, flag)
    for cmd in ("eval", "predict"):
        assert opts[cmd]["--amp"].default == "auto" and opts[cmd]["--channels-last"].default is True
    for flag in ("--amp", "--interpolation"):
        choices = {tuple(o[flag].choices) for o in opts.values() if flag in o}
        assert len(choices) == 1, (flag, choices)
    # Timing settings have their own names where a command also trains.
    for cmd in ("search", "latency-table"):
        assert {"--latency-batch-size", "--latency-threads"} <= set(opts[cmd])


def test_one_spelling_for_each_thing():
    banned = {"--output", "--batch", "--batches", "--strict", "--checkpoint", "--pretrained", "--models"}
    banned |= {"--speed-batch", "--speed-rounds", "--train-models", "--no-progress-bar", "--train-threads"}
    found = {cmd: sorted(set(opts) & banned) for cmd, opts in _options().items()}
    assert not any(found.values()), found


def test_help_states_each_default_once_and_progress_rightly():
    import re

    for cmd, parser in _parsers().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)
            assert len(re.findall(r"default:|\(default ", text)) <= 1, (cmd, text)
            assert "(default: None)" not in text, (cmd, text)
            if "--progress" in action.option_strings:
                trains = cmd in ("train", "demo", "study run")
                assert ("a line per epoch" in text) == trains, (cmd, text)


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["train", "--img_size", "32"], "--img-size"),
        (["export", "--fromat", "onnx"], "--format"),
        (["train", "--epoch", "3"], "--epochs"),  # an abbreviation is refused, with the full name
        (["eval", "--weight", "x"], "--weights"),
        (["study", "run", "small", "--seed", "1"], "--seeds"),
        (["search", "--batch", "8"], "--batch-size"),
    ],
)
def test_an_unknown_option_gets_the_subcommands_usage_and_a_suggestion(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    command = " ".join(a for a in argv[:2] if not a.startswith("-") and a != "small")
    assert err.startswith(f"usage: mixnet {command} "), err
    assert f"mixnet {command}: error: unrecognized arguments: {argv[-2]}" in err
    assert f"did you mean {suggestion}?" in err


def test_no_parser_accepts_abbreviations():
    assert all(not p.allow_abbrev for p in _parsers().values())


def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["eval", "--model", "mixnet_q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mixnet eval: error: unknown model 'mixnet_q'") and "\n" not in err
    assert main(["export", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch):
    import mixnet.cli.info as info

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(info, "run", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["info"])


def test_a_full_disk_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    import errno

    import mixnet.io.save as save

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, f"saving {tmp_path}/x failed (out of disk space); no x was written")

    monkeypatch.setattr(save, "atomic_write", full)
    import mixnet.cli.info as info

    monkeypatch.setattr(
        info, "run", lambda args: save.save_model(tmp_path / "x.safetensors", mixnet.create_model("mixnet_s"))
    )
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert "out of disk space" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_value_error_from_outside_mixnet_is_a_bug(monkeypatch):
    """Only mixnet's own validation errors become one-line messages; torch's or Python's keep the traceback."""
    import mixnet.cli.info as info

    monkeypatch.setattr(info, "run", lambda args: int("not a number"))
    with pytest.raises(ValueError, match="invalid literal"):
        main(["info"])


def test_search_options_are_generated_from_search_config(monkeypatch):
    """Every SearchConfig field is an option of `mixnet search` (and nothing is restated): options left out
    keep the config's defaults, options given reach the config with their types."""
    import dataclasses

    import mixnet.search.run as run
    from mixnet.search.config import SearchConfig

    fields = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(SearchConfig)}
    assert set(_options()["search"]) - {"--help", "--out", "--retime"} == fields | {
        f"--no-{f[2:]}" for f in fields if isinstance(getattr(SearchConfig(), f[2:].replace("-", "_")), bool)
    }
    seen = []
    monkeypatch.setattr(run, "run_search", lambda cfg, out: seen.append(cfg))
    assert main(["search"]) == 0
    assert main(["search", "--retime"]) == 2  # --retime belongs to `mixnet search report FOLDER`
    assert not seen[1:]
    argv = ["search", "--latency-batch-size", "4", "--threads", "2", "--no-hard", "--seeds", "3", "4"]
    assert main([*argv, "--crop-scale", "0.5", "1", "--table", "t.json", "--target", "3.5"]) == 0
    assert seen[0] == SearchConfig()
    want = dict(latency_batch_size=4, threads=2, hard=False, seeds=(3, 4), crop_scale=(0.5, 1.0), table="t.json")
    assert seen[1] == SearchConfig(**want, target=3.5)


def test_latency_table_names_its_batch_and_threads_as_the_search_does(monkeypatch, tmp_path):
    import mixnet.search.latency as latency

    seen = {}

    class Stop(Exception):
        pass

    def measure(space, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(latency, "measure_table", measure)
    with pytest.raises(Stop):
        main(["latency-table", "--latency-batch-size", "8", "--latency-threads", "3", "--out", str(tmp_path / "t")])
    assert (seen["batch"], seen["threads"]) == (8, 3)


def test_search_report_rewrites_a_finished_searchs_report(tmp_path, capsys):
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "docs/search/cluttered"
    folder = shutil.copytree(committed, tmp_path / "search")
    (folder / "report.md").unlink()
    (folder / "pareto.png").unlink()
    assert main(["search", "report", str(folder)]) == 0
    assert capsys.readouterr().out == f"report: {folder / 'report.md'}\n"
    assert (folder / "pareto.png").stat().st_size > 0
    report = (folder / "report.md").read_text()
    # The figures come from the folder's files: the searched net's retrained accuracy per seed.
    rows = [json.loads(line) for line in (folder / "retrain.jsonl").read_text().splitlines()]
    for row in rows:
        if row["net"] == "found" and row["status"] == "ok":
            assert f"{row['top1']:.2f}" in report
    assert main(["search", "report", str(tmp_path)]) == 2
    assert "is not a search folder" in capsys.readouterr().err
    assert main(["search", "extra", str(tmp_path)]) == 2
