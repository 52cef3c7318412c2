"""Dataset summaries: loading the examples, computed facts, round trips, error messages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from almarules.engine.facts.model import Dataset
from almarules.engine.facts.summary import (
    FactsError,
    dump_summary,
    load_summary,
    parse_summary,
    schema_json,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def _spw(ds: Dataset, spw_id: int):
    return next(s for s in ds.spws if s.id == spw_id)


def _field(ds: Dataset, name: str):
    return next(f for f in ds.fields if f.name == name)


# --------------------------------------------------------------------------- examples


def test_the_five_examples_exist():
    names = {p.name for p in EXAMPLE_FILES}
    assert {
        "12m_single_field_tdm.yaml",
        "7m_mosaic_multi_eb.yaml",
        "12m_fdm_lines.yaml",
        "12m_long_baseline_cascade.yaml",
        "12m_no_phase_calibrator.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_loads(path):
    ds = load_summary(path)
    assert ds.telescope == "ALMA"
    assert ds.array in ("12m", "7m")
    assert ds.mous_id.startswith("uid://A001/")
    assert ds.ebs and ds.antennas and ds.spws and ds.fields and ds.scans
    assert path.read_text().startswith("#"), "each example starts with a header comment"
    field_ids = {f.id for f in ds.fields}
    spw_ids = {s.id for s in ds.spws}
    eb_ids = {e.id for e in ds.ebs}
    for scan in ds.scans:
        assert set(scan.field_ids) <= field_ids
        assert set(scan.spw_ids) <= spw_ids
        assert scan.eb in eb_ids
        assert scan.duration > 0
    for eb in ds.ebs:
        assert eb.processing_history is False
        assert 0 < eb.baselines.min < eb.baselines.l75 < eb.baselines.l80 < eb.baselines.max
        scans = [s for s in ds.scans if s.eb == eb.id]
        assert eb.start == min(s.start for s in scans) and eb.end == max(s.end for s in scans)
    for ant in ds.antennas:
        assert ant.dish_diameter == (7.0 if ds.array == "7m" else 12.0)
        x, y, z = ant.position
        assert abs(x - 2225061) < 20e3 and abs(y + 5440057) < 20e3 and abs(z + 2481681) < 20e3
    for m in ds.measurements or []:
        assert m.field in {f.name for f in ds.fields}
        assert set(m.spws) <= spw_ids
        assert m.dirty_dr == pytest.approx(m.dirty_peak / m.sensitivity, rel=0.02)


def test_computed_spw_facts_single_field():
    ds = load_summary(EXAMPLES / "12m_single_field_tdm.yaml")
    lsb = _spw(ds, 17)  # 128 x -15.625 MHz starting at 217.9921875 GHz
    assert lsb.channel_width == -15.625e6
    assert lsb.start_frequency == 217.9921875e9
    assert lsb.centre_frequency == pytest.approx(217.0e9)
    assert lsb.bandwidth == pytest.approx(2.0e9)
    assert lsb.min_frequency == pytest.approx(216.0e9)
    assert lsb.max_frequency == pytest.approx(218.0e9)
    usb = _spw(ds, 23)
    assert usb.centre_frequency == pytest.approx(233.0e9)
    assert usb.bandwidth == pytest.approx(2.0e9)
    assert ds.representative_frequency == pytest.approx(230.538e9)
    assert ds.ebs[0].l80 == ds.ebs[0].baselines.l80 == pytest.approx(310.2)
    assert ds.ebs[0].integration_time == pytest.approx(6.048)


def test_computed_spw_facts_fdm_hanning():
    ds = load_summary(EXAMPLES / "12m_fdm_lines.yaml")
    co = _spw(ds, 29)
    assert co.nchan == 3840 and co.online_hanning
    assert co.centre_frequency == pytest.approx(230.538e9)
    assert co.bandwidth == pytest.approx(937.5e6)
    assert co.effective_bw / abs(co.channel_width) == pytest.approx(2.667)
    assert _spw(ds, 25).nchan == 1920
    assert _spw(ds, 25).bandwidth == pytest.approx(1.875e9)
    assert 200 < ds.ebs[0].l80 < 300


def test_mosaic_facts():
    ds = load_summary(EXAMPLES / "7m_mosaic_multi_eb.yaml")
    target = _field(ds, "Cha-MMS1")
    assert target.is_mosaic is True
    assert 7 <= len(target.pointings) <= 10
    assert target.pointing_spread == pytest.approx(43.2)
    calibrator = _field(ds, "J1058-8003")
    assert calibrator.is_mosaic is False
    assert calibrator.pointing_spread == 0.0
    assert len(ds.ebs) == 3
    assert {s.correlator_mode for s in ds.spws} == {"FDM", "TDM"}


def test_no_phase_calibrator_example():
    ds = load_summary(EXAMPLES / "12m_no_phase_calibrator.yaml")
    assert not any("PHASE" in (f.intents or []) for f in ds.fields)
    assert not any("PHASE" in (s.intents or []) for s in ds.scans)
    assert any("BANDPASS" in f.intents for f in ds.fields)


def test_measurement_keys():
    ds = load_summary(EXAMPLES / "12m_single_field_tdm.yaml")
    by_key = {m.key: m for m in ds.measurements}
    mfs = by_key["Elias_29.TARGET.17.mfs"]
    assert mfs.sensitivity == pytest.approx(50e-6)  # "50 uJy/beam" -> Jy/beam
    assert mfs.dirty_dr == 80
    assert mfs.beam_pa == pytest.approx(-84.5)
    assert "Elias_29.TARGET.17_19_21_23.cont" in by_key
    assert sorted(m.dirty_dr for m in ds.measurements if m.intent == "TARGET") == [15, 40, 77, 80, 160, 600]


def test_long_baseline_cascade_sizes():
    """The planning numbers of heuristics.md section 3 and 7 make a huge cube."""
    import math

    ds = load_summary(EXAMPLES / "12m_long_baseline_cascade.yaml")
    targets = [f for f in ds.fields if "TARGET" in f.intents]
    assert len(targets) == 3 and not any(f.is_mosaic for f in targets)
    l80 = ds.ebs[0].l80
    assert 6000 < l80 < 9000
    spw = _spw(ds, ds.representative_spw)
    lam = 299792458.0 / spw.centre_frequency
    fwhp = 1.12 * lam / 12.0
    cell = 0.574 * lam / l80 / 5
    n = 1.1 * fwhp * math.sqrt(-math.log(0.2) / math.log(2)) / cell
    assert 8800 < n < 8900
    cube_gb = 4 * n * n * spw.nchan / 1e9
    assert cube_gb > 30
    product_gb = sum(2 * (4 * n * n * s.nchan / 1e9 + 4 * n * n / 1e9) for s in ds.spws) * len(targets)
    assert product_gb > 400


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_dump_round_trips(path):
    ds = load_summary(path)
    dumped = dump_summary(ds)
    json.dumps(dumped)  # JSON-able
    again = parse_summary(json.loads(json.dumps(dumped)), "roundtrip")
    assert again == ds
    assert dump_summary(again) == dumped


def test_dump_leaves_out_unknown_and_computed_facts():
    ds = parse_summary({"spws": [{"id": 1, "nchan": 4, "start_frequency": "100 GHz",
                                  "channel_width": "1 MHz"}]}, "s.yaml")
    assert dump_summary(ds) == {"spws": [{"id": 1, "nchan": 4, "start_frequency": 100e9,
                                          "channel_width": 1e6}]}


def test_json_summary_loads(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(dump_summary(load_summary(EXAMPLES / "7m_mosaic_multi_eb.yaml"))))
    assert load_summary(path) == load_summary(EXAMPLES / "7m_mosaic_multi_eb.yaml")


def test_yaml_exponent_without_sign_is_a_number(tmp_path):
    # YAML 1.1 (PyYAML) would read 5.0e9 as a string, i.e. a frequency "without a unit".
    path = tmp_path / "s.yaml"
    path.write_text("representative_frequency: 2.305e11\nebs: [{id: a, start: 5.0e9, end: 5e9}]\n")
    ds = load_summary(path)
    assert ds.representative_frequency == 2.305e11
    assert ds.ebs[0].start == 5.0e9 and ds.ebs[0].end == 5e9


def test_quantities_accept_units_and_plain_numbers():
    ds = parse_summary({
        "antennas": [{"name": "DA41", "dish_diameter": "1200 cm"}, {"name": "CM01", "dish_diameter": 7}],
        "measurements": [{"field": "a", "intent": "TARGET", "spws": [1], "specmode": "cube",
                          "sensitivity": "50 uJy/beam", "rms": 0.0001, "beam_major": "0.5 arcsec"}],
        "ebs": [{"id": "x", "baselines": {"l80": "6.5 km"}}],
    }, "s.yaml")
    assert ds.antennas[0].dish_diameter == pytest.approx(12.0)
    assert ds.antennas[1].dish_diameter == 7.0
    assert ds.measurements[0].sensitivity == pytest.approx(5e-5)
    assert ds.measurements[0].rms == 1e-4
    assert ds.ebs[0].l80 == pytest.approx(6500.0)


# --------------------------------------------------------------------------- errors

INTENT_LIST = ("TARGET, PHASE, BANDPASS, AMPLITUDE, CHECK, ATMOSPHERE, WVR, POINTING, "
               "POLARIZATION, SIDEBAND, FOCUS, DELAY, UNSPECIFIED")

BAD_SUMMARIES = [
    pytest.param(
        """
        spws:
          - {id: 17, nchan: 128}
          - {id: 19, nchan: 128}
          - {id: 21, nchan: many}
        """,
        ["spws[2].nchan: Input should be a valid integer, unable to parse string as an integer (got 'many')"],
        id="wrong-type"),
    pytest.param(
        """
        fields:
          - {id: 0, name: J1924-2914, intents: [BANDPASS, TARGT]}
        """,
        [f"fields[0].intents[1]: 'TARGT' is not one of {INTENT_LIST} (did you mean 'TARGET'?)"],
        id="unknown-intent"),
    pytest.param(
        """
        array: 12-m
        """,
        ["array: '12-m' is not one of 12m, 7m, TP, VLA, mixed (did you mean '12m'?)"],
        id="unknown-array-kind"),
    pytest.param(
        """
        antennas:
          - {name: DA41, dish_diameter: 12 GHz}
        """,
        ["antennas[0].dish_diameter: '12 GHz' is not compatible with m: expected a length in m, got a frequency"],
        id="incompatible-unit"),
    pytest.param(
        """
        spws:
          - {id: 1, start_frequency: "230"}
        """,
        ["spws[0].start_frequency: '230' has no unit: expected a frequency in Hz "
         "(write a plain number, taken as Hz, or add a unit)"],
        id="string-without-unit"),
    pytest.param(
        """
        spws:
          - {id: 1, channel_width: 15.6 MHZ}
        """,
        ["spws[0].channel_width: unknown unit 'MHZ' in '15.6 MHZ': expected a frequency in Hz"],
        id="unknown-unit"),
    pytest.param(
        """
        spws:
          - {name: "ALMA_RB_06#BB_1#SW-01#FULL_RES", nchan: 128}
        """,
        ["spws[0].id: required field is missing"],
        id="missing-required-key"),
    pytest.param(
        """
        spw:
          - {id: 1}
        """,
        ["unknown field 'spw' at top level (did you mean 'spws'?)"],
        id="extra-key-top-level"),
    pytest.param(
        """
        ebs:
          - id: uid://A002/Xc1e2be/X5a4f
            baselines: {l80: 310.2, L90: 400}
        """,
        ["ebs[0].baselines: unknown field 'L90' (did you mean 'l80'?)"],
        id="extra-key-nested"),
    pytest.param(
        """
        spws:
          - {id: 1, nchan: 128, centre_frequency: 230 GHz}
        """,
        ["spws[0]: 'centre_frequency' is computed from other facts and cannot be given"],
        id="computed-fact-given"),
    pytest.param(
        """
        measurements:
          - {field: Elias_29, intent: TARGET, spws: [17], specmode: mfs, dirty_dr: -3}
        """,
        ["measurements[0].dirty_dr: must be at least 0 (got -3)"],
        id="negative-dirty-dr"),
    pytest.param(
        """
        weights:
          - {field: Elias_29, spw: 17, flagged_fraction: 1.5}
        """,
        ["weights[0].flagged_fraction: must be at most 1 (got 1.5)"],
        id="flagged-fraction-above-one"),
    pytest.param(
        """
        measurements:
          - {field: Elias_29, intent: TARGET, spws: [17], specmode: image}
        """,
        ["measurements[0].specmode: 'image' is not one of mfs, cont, cube"],
        id="unknown-specmode"),
    pytest.param(
        """
        antennas:
          - {name: DA41, position: [2225061.1, -5440057.3]}
          - DV01
        """,
        ["antennas[0].position: expected 3 items, not 2",
         "antennas[1]: expected a mapping, not a string ('DV01')"],
        id="short-position-and-non-mapping-entry"),
    pytest.param(
        """
        antennas:
          - {name: DA41, position: [1, 2, 3, 4]}
          - {name: DA42, position: [1, 2]}
        """,
        ["antennas[0].position: expected 3 items, not 4",
         "antennas[1].position: expected 3 items, not 2"],
        id="position-lengths"),
    pytest.param(
        """
        telescope: ALMA
        spws:
          - {id: one, nchan: 128, channel_width: 15.625 m}
        scans:
          - {number: 1, intents: TARGET}
        """,
        ["spws[0].id: Input should be a valid integer, unable to parse string as an integer (got 'one')",
         "spws[0].channel_width: '15.625 m' is not compatible with Hz: expected a frequency in Hz, got a length",
         "scans[0].intents: Input should be a valid list (got 'TARGET')"],
        id="several-problems"),
]


@pytest.mark.parametrize("text, problems", BAD_SUMMARIES)
def test_bad_summary_messages(tmp_path, text, problems):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(FactsError) as info:
        load_summary(path)
    expected = [f"{path}: {p}" for p in problems]
    assert str(info.value) == "\n".join(expected)
    assert info.value.problems == expected


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("project: x\nspws:\n  - id: 1\n   nchan: 3\n")
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == (
        f"{path}: invalid YAML at line 4, column 4: "
        "expected <block end>, but found '<block mapping start>' (while parsing a block collection)")


def test_invalid_yaml_unclosed_flow(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("spws: [{id: 1}\nfields: []\n")
    with pytest.raises(FactsError) as info:
        load_summary(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid YAML at line 2, column ")
    assert "\n" not in message


def test_duplicate_yaml_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("project: a\nspws: []\nproject: b\n")
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}: invalid YAML at line 3, column 1: duplicate key 'project'"


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "project": "x",\n  "spws": [\n    {"id": 1,}\n  ]\n}\n')
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == (
        f"{path}: invalid JSON at line 4, column 14: Expecting property name enclosed in double quotes")


def test_top_level_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- id: 1\n- id: 2\n")
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}: top level must be a mapping of dataset facts, not a list"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}: the summary is empty (expected a mapping of dataset facts)"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}: file not found"


def test_directory_is_unreadable(tmp_path):
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}: is a directory, not a dataset summary (.json, .yaml or .yml)"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("project: caf\xe9\n".encode("latin-1"))
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}:1:13: invalid UTF-8 (byte 0xe9): a dataset summary must be UTF-8 text"


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "summary.txt"
    path.write_text("project: x\n")
    with pytest.raises(FactsError) as info:
        load_summary(path)
    assert str(info.value) == f"{path}: unsupported summary format '.txt' (expected .json, .yaml or .yml)"


def test_parse_summary_uses_source_and_rejects_non_mappings():
    with pytest.raises(FactsError) as info:
        parse_summary(["x"], "examples/x.yaml")
    assert str(info.value) == "examples/x.yaml: top level must be a mapping of dataset facts, not a list"
    with pytest.raises(FactsError) as info:
        parse_summary({"spws": [{"id": 1, "nchan": "many"}]}, "examples/x.yaml")
    assert str(info.value) == (
        "examples/x.yaml: spws[0].nchan: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')")


# --------------------------------------------------------------------------- schema


def test_schema_json():
    text = schema_json()
    assert text == schema_json()
    schema = json.loads(text)
    assert schema["title"] == "Dataset"
    assert '"unit": "Hz"' in text
    assert '"unit": "Jy/beam"' in text
    spw = schema["$defs"]["SpectralWindow"]["properties"]
    assert spw["start_frequency"]["unit"] == "Hz"
    # computed facts are there, read-only, with their units
    assert spw["centre_frequency"]["readOnly"] is True
    assert spw["centre_frequency"]["unit"] == "Hz"
    assert schema["$defs"]["FieldFacts"]["properties"]["is_mosaic"]["readOnly"] is True
    # sorted keys
    assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False)
