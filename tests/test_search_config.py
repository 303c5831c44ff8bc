"""The search's options: one dataclass, recorded in the search folder, readable from earlier records."""

import json
from pathlib import Path

import pytest

from mixnet.search.config import MACHINE_OPTIONS, SearchConfig, upgrade_record

ROOT = Path(__file__).resolve().parents[1]
OLD_RECORD = ROOT / "tests/data/search_record_before_latency_options.json"  # a search folder's record, as written then
COMMITTED = ROOT / "docs/search/cluttered/search.json"


def _from_record(record: dict) -> SearchConfig:
    return SearchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})


def test_an_earlier_search_record_reads_as_todays_options():
    saved = json.loads(OLD_RECORD.read_text())
    assert "batch" in saved and "latency_batch_size" not in saved  # written before the latency options' names
    record = upgrade_record(saved)
    cfg = _from_record(record)
    assert cfg.record() == record  # every recorded option is an option today, and nothing is lost
    assert (cfg.latency_batch_size, cfg.latency_threads) == (saved["batch"], saved["threads"])
    assert upgrade_record(cfg.record()) == cfg.record()  # today's records are left as they are


def test_the_committed_search_record_is_todays_options():
    saved = json.loads(COMMITTED.read_text())
    assert upgrade_record(saved) == saved
    assert _from_record(saved).record() == saved


def test_the_record_leaves_out_the_machines_options():
    cfg = SearchConfig(threads=3, workers=2, device="cpu", latency_threads=4)
    assert set(cfg.to_dict()) - set(cfg.record()) == set(MACHINE_OPTIONS)
    assert cfg.record()["latency_threads"] == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"latency_batch_size": 0}, "latency_batch_size"),
        ({"latency_threads": 0}, "latency_threads"),
        ({"threads": -1}, "threads and workers must be >= 0"),
        ({"runtime": "tpu"}, "runtime must be one of"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(**options)
