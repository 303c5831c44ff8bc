"""Block strings, scaling rules and configs."""

import dataclasses

import pytest

from mixnet.models.arch import BlockArgs, format_block, parse_block, round_channels, scale_stages
from mixnet.models.configs import CONFIGS, MIXNET_M, MIXNET_S


@pytest.mark.parametrize("text", [s for stage in MIXNET_S + MIXNET_M for s in stage])
def test_paper_block_strings_round_trip(text):
    assert format_block(parse_block(text)) == text
    b = parse_block(text)
    assert parse_block(format_block(b)) == b


def test_parse_fields():
    b = parse_block("r3_k3.5.7.9_a1.1_p1.1_s11_e3_i120_o120_se0.5_sw")
    assert b == BlockArgs(3, (3, 5, 7, 9), 2, 2, 1, 3.0, 120, 120, 0.5, True)
    assert b.mid_channels == 360 and b.se_channels == 60


@pytest.mark.parametrize(
    "text, message",
    [
        ("r1_k3_s11_e1_i16", "lacks"),
        ("r1_k3_s12_e1_i16_o16", "stride"),
        ("r1_k4_s11_e1_i16_o16", "odd"),
        ("r1_k3_s11_e1_i16_o16_x7", "unknown token"),
        ("r1_k3_a3_s11_e1_i16_o16", "1x1"),
        ("r1_k3_s11_e1_i16_o16_se2", "se ratio"),
        ("r1_r2_k3_s11_e1_i16_o16", "twice"),
    ],
)
def test_bad_block_strings_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_block(text)


def test_round_channels_matches_published_mixnet_l_widths():
    assert [round_channels(c, 1.3) for c in (24, 32, 40, 80, 120, 200)] == [32, 40, 56, 104, 160, 264]
    assert round_channels(16, 1.0) == 16
    assert round_channels(20, 1.0) == 24  # TF/timm round at multiplier 1.0 too


def test_depth_scaling_of_mixnet_xl_uses_timm_rounding():
    stages = CONFIGS["mixnet_xl"].scaled_stages()
    assert [[b.repeats for b in s] for s in stages] == [[1], [1, 1], [1, 4], [1, 4], [1, 4], [1, 4]]
    assert scale_stages(stages, 1.0, 1.0) == stages


def test_building_l_does_not_change_m():
    before = CONFIGS["mixnet_m"]
    CONFIGS["mixnet_l"].scaled_stages()
    CONFIGS["mixnet_xl"].scaled_stages()
    assert CONFIGS["mixnet_m"] == before
    assert CONFIGS["mixnet_m"].scaled_stages()[1][0].out_channels == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIGS["mixnet_m"].width_mult = 2.0  # type: ignore[misc]


def test_config_rejects_inconsistent_widths():
    with pytest.raises(ValueError, match="previous output width"):
        CONFIGS["mixnet_s"].from_strings([["r1_k3_a1_p1_s11_e1_i16_o16"], ["r1_k3_s22_e6_i24_o32"]], stem_channels=16)
