"""The command line."""

import argparse
import json

import pytest

import mixnet
from mixnet.cli import build_parser, main


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


def _options() -> dict[str, dict[str, argparse.Action]]:
    """Every subcommand's options: {command: {option string: action}}."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: {s: a for a in p._actions for s in a.option_strings if s.startswith("--")}
        for name, p in sub.choices.items()
    }


def test_one_spelling_for_each_thing():
    banned = {"--output", "--batch", "--batches", "--strict", "--checkpoint", "--pretrained", "--models"}
    banned |= {"--speed-batch", "--speed-rounds", "--train-models", "--no-progress-bar"}
    found = {cmd: sorted(set(opts) & banned) for cmd, opts in _options().items()}
    assert not any(found.values()), found


def test_shared_options_mean_the_same_everywhere():
    opts = _options()
    for cmd in ("train", "eval", "predict"):
        for flag in ("--model", "--weights", "--batch-size", "--device", "--amp", "--channels-last", "--progress"):
            assert flag in opts[cmd], f"{cmd} lacks {flag}"
    for cmd in ("eval", "predict"):
        assert opts[cmd]["--amp"].default == "auto" and opts[cmd]["--channels-last"].default is True
        assert opts[cmd]["--amp"].choices == opts["train"]["--amp"].choices
    for cmd in ("train", "demo", "bench", "export", "quantize"):
        assert "--out" in opts[cmd], cmd
    for cmd in ("train", "eval"):
        assert "--strict-data" in opts[cmd] and "--data" in opts[cmd]


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
