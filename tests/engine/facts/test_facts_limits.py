"""Impossible facts are refused by the schema with the field path, one line each, exit 2:
``nchan: -5`` used to be accepted and surface as ``sqrt(): math domain error``."""

from __future__ import annotations

import copy
import math

import pytest
import yaml

from almarules.engine.cli.app import main
from almarules.engine.facts.summary import FactsError, parse_summary

from conftest import REPO

EXAMPLE = REPO / "examples" / "12m_single_field_tdm.yaml"
BASE = yaml.safe_load(EXAMPLE.read_text())


def _set(path: str, value):
    """A copy of the example with the value at `path` (``spws.2.nchan``) replaced."""
    data = copy.deepcopy(BASE)
    *head, last = path.split(".")
    node = data
    for k in head:
        node = node[int(k)] if k.isdigit() else node.setdefault(k, {})
    node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("path,value,message", [
    ("spws.2.nchan", -5, "spws[2].nchan: must be at least 1 (got -5)"),
    ("spws.2.nchan", 0, "spws[2].nchan: must be at least 1 (got 0)"),
    ("spws.2.start_frequency", "-5 GHz", "spws[2].start_frequency: must be greater than 0 Hz (got -5e+09 Hz)"),
    ("spws.2.effective_bw", 0, "spws[2].effective_bw: must be greater than 0 Hz (got 0 Hz)"),
    ("spws.2.channel_width", "0 MHz", "spws[2].channel_width: must not be 0 (got 0 Hz)"),
    ("spws.2.channel_frequencies", [2.3e11, math.nan],
     "spws[2].channel_frequencies[1]: must be a finite number (got nan)"),
    ("spws.2.effective_bw", math.inf, "spws[2].effective_bw: must be a finite number (got inf)"),
    ("ebs.0.integration_time", 0, "ebs[0].integration_time: must be greater than 0 s (got 0 s)"),
    ("ebs.0.baselines.l80", -1, "ebs[0].baselines.l80: must be at least 0 m (got -1 m)"),
    ("antennas.0.dish_diameter", 0, "antennas[0].dish_diameter: must be greater than 0 m (got 0 m)"),
    ("fields.0.dec", -91, "fields[0].dec: must be at least -90 deg (got -91 deg)"),
    ("fields.0.dec", "1.6 rad", "fields[0].dec: must be at most 90 deg (got 91.6732 deg)"),
    ("representative_frequency", math.nan, "representative_frequency: must be a finite number (got nan)"),
])
def test_impossible_facts_are_refused_with_their_path(path, value, message):
    with pytest.raises(FactsError) as exc:
        parse_summary(_set(path, value), "x.yaml")
    assert str(exc.value) == f"x.yaml: {message}"


def test_negative_sum_of_weights_is_refused_not_a_math_domain_error():
    data = copy.deepcopy(BASE)
    data["weights"] = [{"field": "x", "spw": 0, "sum_weight": -4}]
    with pytest.raises(FactsError) as exc:
        parse_summary(data, "x.yaml")
    assert str(exc.value) == "x.yaml: weights[0].sum_weight: must be at least 0 Jy-2 (got -4 Jy-2)"


def test_possible_edge_values_are_accepted():
    data = _set("fields.0.dec", -90)
    data["spws"][2]["channel_width"] = "-15.625 MHz"  # frequency decreasing with channel
    data["ebs"][0]["baselines"]["l80"] = 0
    parse_summary(data, "x.yaml")


def test_a_failed_measurement_may_be_nan():
    """Measured values keep NaN: the QA rules score a NaN rms (rules/alma/current/imageqa.test.yaml)."""
    data = copy.deepcopy(BASE)
    data["measurements"] = [{"field": "f", "intent": "TARGET", "spws": [1], "specmode": "mfs", "rms": math.nan}]
    assert math.isnan(parse_summary(data, "x.yaml").measurements[0].rms)


def test_cli_reports_one_line_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_set("spws.2.nchan", -5)))
    assert main(["eval", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"almarules: {bad}: spws[2].nchan: must be at least 1 (got -5)\n"
