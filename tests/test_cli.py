"""The command line."""

import json

from mixnet.cli import main


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
