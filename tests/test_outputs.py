"""Result files every part writes: text, JSON and CSV (dict rows and dataclass rows) written atomically, and
plots through the one matplotlib set-up (the Agg backend whatever the environment says)."""

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from mixnet.atomic import write_csv, write_json
from mixnet.errors import MissingExtraError
from mixnet.measure.output import emit, read_dataclass_csv, write_dataclass_csv, write_outputs
from mixnet.plotting import pyplot, save_figure


@dataclass
class _Row:
    model: str
    batch: int
    ms: float


def _temporaries(folder):
    return [p.name for p in folder.rglob(".*")]


def test_csv_and_json_writes(tmp_path):
    rows = [{"a": 1, "b": [1.5, 2.0]}, {"a": None, "b": "x"}]
    write_csv(tmp_path / "t.csv", rows, ["a", "b", "c"])
    assert list(csv.reader(open(tmp_path / "t.csv"))) == [["a", "b", "c"], ["1", "1.5 2", ""], ["", "x", ""]]
    write_json(tmp_path / "t.json", {"x": 1})
    assert json.loads((tmp_path / "t.json").read_text()) == {"x": 1}
    assert _temporaries(tmp_path) == []


def test_dataclass_rows_are_the_one_csv_writer_on_their_dicts_and_read_back(tmp_path):
    rows = [_Row("mixnet_s", 1, 2.5), _Row("a, b", 8, float("inf"))]
    write_dataclass_csv(tmp_path / "rows.csv", rows, _Row)
    write_csv(tmp_path / "dicts.csv", [vars(r) for r in rows], ["model", "batch", "ms"])
    assert (tmp_path / "rows.csv").read_bytes() == (tmp_path / "dicts.csv").read_bytes()
    assert read_dataclass_csv(tmp_path / "rows.csv", _Row) == rows


def test_a_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    """A row that cannot be written (a list of words where numbers belong) fails after the header is out."""
    path = tmp_path / "t.csv"
    write_csv(path, [{"a": [1.0]}], ["a"])
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_csv(path, [{"a": [2.0]}, {"a": ["oops"]}], ["a"])
    assert path.read_bytes() == before and _temporaries(tmp_path) == []


def test_measurement_outputs_are_written_into_a_new_folder(tmp_path, capsys):
    out = tmp_path / "new" / "folder"
    paths = write_outputs(out, "bench", [_Row("m", 1, 1.0)], _Row, "| m |\n")
    assert paths["md"].read_text() == "| m |\n" and read_dataclass_csv(paths["csv"], _Row) == [_Row("m", 1, 1.0)]
    assert emit("# result", tmp_path / "other" / "r.md") == "# result"
    assert (tmp_path / "other" / "r.md").read_text() == "# result" and capsys.readouterr().out == "# result\n"
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize(("name", "magic"), [("f.png", b"\x89PNG\r\n\x1a\n"), ("f.svg", b"<?xml")])
def test_figures_are_saved_in_the_format_of_their_suffix_and_closed(tmp_path, name, magic):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "plots" / name)
    assert path.read_bytes().startswith(magic) and not plt.fignum_exists(fig.number)
    assert _temporaries(tmp_path) == []


def test_plots_use_agg_whatever_the_environment_asks_for():
    """MPLBACKEND names another backend (one that needs no display, so it would load): the helper still
    draws on Agg."""
    code = (
        "import matplotlib.pyplot as p; before = p.get_backend(); "
        "from mixnet.plotting import pyplot; print(before, pyplot().get_backend())"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.lower().split() == ["svg", "agg"]


def test_a_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of it raises ImportError
    with pytest.raises(MissingExtraError, match=r"report plots needs matplotlib.*pip install 'mixnet\[train\]'"):
        pyplot()
