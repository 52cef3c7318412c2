"""The evaluator: provenance, unknowns (Kleene logic), cascades, overrides, determinism."""

from __future__ import annotations

import pytest

from almarules.engine.evaluate.api import evaluate, load_facts, load_program, run
from almarules.engine.evaluate.program import UsageError
from almarules.engine.facts.model import Dataset
from almarules.engine.evaluate.values import Unknown

from conftest import EXAMPLES, REPO


def small(**over) -> Dataset:
    data = {
        "array": "12m",
        "ebs": [{"id": "eb1", "syscal_rows": 10, "processing_history": False, "baselines": {"l80": 300}}],
        "antennas": [{"name": "DA41", "dish_diameter": 12}],
        "spws": [{"id": 0, "nchan": 128, "start_frequency": "230 GHz", "channel_width": "15.625 MHz",
                  "intents": ["TARGET", "PHASE"]}],
        "fields": [{"id": 0, "name": "P", "intents": ["PHASE"], "pointings": [{}]},
                   {"id": 1, "name": "T", "intents": ["TARGET"], "pointings": [{}]}],
        "scans": [{"number": 1, "intents": ["PHASE"]}],
        "measurements": [{"field": "T", "intent": "TARGET", "spws": [0], "specmode": "mfs",
                          "sensitivity": "0.05 mJy/beam", "dirty_dr": 80, "rms": "0.1 mJy/beam"}],
    }
    data.update(over)
    return Dataset.model_validate(data)


def test_threshold_provenance(cycle4):
    d = evaluate(cycle4, small())
    v = d.value("image[T.TARGET.0.mfs].threshold")
    assert v.text == "0.4 mJy/beam"
    assert v.value == pytest.approx(0.4)
    assert v.unit == "mJy/beam"
    assert v.rule == "derive image.threshold"
    line = (REPO / "rules/alma/cycle4/threshold.rules").read_text().splitlines().index(
        "derive image.threshold = tlimit * image.sensitivity * image.dr_correction") + 1
    assert v.at.endswith(f"threshold.rules:{line}:1")
    assert v.formula == "tlimit * image.sensitivity * image.dr_correction"
    assert v.inputs == ["param:tlimit", "image[T.TARGET.0.mfs].sensitivity", "image[T.TARGET.0.mfs].dr_correction"]


def test_dr_correction_records_the_table_row(cycle4):
    d = evaluate(cycle4, small())
    v = d.value("image[T.TARGET.0.mfs].dr_correction")
    assert "table:dr_correction_12m:2" in v.inputs  # the (50, 100] row
    assert v.value == 2.0


def test_unknown_names_what_it_waits_for(cycle4):
    d = evaluate(cycle4, small(measurements=[]))
    v = d.value("image[T.TARGET.0.mfs].threshold")
    assert v.status == "unknown"
    assert "measurements[T.TARGET.0.mfs]" in v.waits_for
    assert v.value is None
    # values that do not need the measurement are still decided
    assert d.value("image[T.TARGET.0.mfs].imsize").value == 420


def test_kleene_logic_decides_without_the_missing_fact(cycle4):
    # an ATMOSPHERE scan makes has_tsys true even though SYSCAL rows are unknown
    facts = small(ebs=[{"id": "eb1", "baselines": {"l80": 300}}],
                  scans=[{"number": 1, "intents": ["ATMOSPHERE"]}])
    assert evaluate(cycle4, facts).value("dataset.has_tsys").value is True
    # without the scan the answer waits for the SYSCAL fact
    facts = small(ebs=[{"id": "eb1", "baselines": {"l80": 300}}], scans=[{"number": 1, "intents": ["PHASE"]}])
    v = evaluate(cycle4, facts).value("dataset.has_tsys")
    assert v.status == "unknown" and v.waits_for == ["eb[eb1].syscal_rows"]


def test_missing_collection_is_unknown_not_empty(cycle4):
    v = evaluate(cycle4, small(antennas=None)).value("image[T.TARGET.0.mfs].beam")
    assert v.status == "known"  # the beam needs L80, not the dishes
    v = evaluate(cycle4, small(antennas=None)).value("image[T.TARGET.0.mfs].fwhp")
    assert v.status == "unknown" and v.waits_for == ["dataset.antennas"]


def test_score_reasons_and_clamp(cycle4):
    facts = small(fields=[{"id": 1, "name": "T", "intents": ["TARGET"]}],
                  ebs=[{"id": "eb1", "syscal_rows": 0, "processing_history": True, "baselines": {"l80": 300}}])
    v = evaluate(cycle4, facts).value("dataset.importdata_score")
    assert v.value == 0.0
    assert [r.reason for r in v.reasons] == [
        "no bandpass calibrator", "no flux calibrator", "no phase calibrator", "no Tsys calibration",
        "MS has processing history"]
    assert all(r.at.startswith("rules/alma/cycle4/qa.rules:") or "qa.rules:" in r.at for r in v.reasons)


def test_set_overrides_a_parameter_with_units(cycle4):
    base = evaluate(cycle4, small())
    assert [p.text for p in base.params if p.name == "max_cube_size"] == ["30 GB"]
    d = evaluate(cycle4, small(), sets=["imaging.max_cube_size=40GB"])
    p = next(p for p in d.params if p.name == "max_cube_size")
    assert p.text == "40 GB" and p.origin == "--set imaging.max_cube_size=40GB"


@pytest.mark.parametrize("assignment, message", [
    ("max_cube_size=40 arcsec", "max_cube_size is in GB, got arcsec"),
    ("max_cube_sise=40GB", "no parameter 'max_cube_sise' (did you mean 'max_cube_size'?)"),
    ("threshold.max_cube_size=40GB", "parameter 'max_cube_size' is declared in 'imaging', not 'threshold'"),
    ("max_cube_size", "--set needs name=value"),
    ("tlimit=four", "not a number with a unit"),
])
def test_bad_set_is_a_usage_error(cycle4, assignment, message):
    with pytest.raises(UsageError) as err:
        evaluate(cycle4, small(), sets=[assignment])
    assert message in str(err.value)


def test_output_is_deterministic(cycle4):
    facts = load_facts(REPO / "examples" / "12m_long_baseline_cascade.yaml")
    a = evaluate(cycle4, facts, source="x").to_json()
    b = evaluate(load_program([REPO / "rules" / "alma" / "cycle4"]), facts, source="x").to_json()
    assert a == b


def test_cascade_record_on_the_long_baseline_example(cycle4):
    facts = load_facts(REPO / "examples" / "12m_long_baseline_cascade.yaml")
    d = evaluate(cycle4, facts)
    (c,) = d.cascades
    assert [s.name for s in c.steps] == ["bin channels", "image to PB 0.5", "3 pixels per beam", "fewer sources"]
    assert c.status == "still exceeded"
    assert set(c.before) == {"dataset.largest_cube", "dataset.product_size"}
    # binning by 4 divides the cube by 4 (1233.1 GB -> 308.3 GB)
    before = float(c.before["dataset.largest_cube"].split()[0])
    after = float(c.steps[0].after["dataset.largest_cube"].split()[0])
    assert after == pytest.approx(before / 4, rel=1e-3)
    # only the representative (first) source is left
    assert any(ch.startswith("dropped field[") for ch in c.steps[3].changes)
    nbin = d.value("spw[" + d.entities["spw"][0] + "].nbin")
    assert nbin.value == 4 and nbin.origin == "cascade"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_evaluates_without_errors(cycle4, path):
    d = evaluate(cycle4, load_facts(path))
    errors = [v for v in d.values if v.status == "error"]
    assert not errors, [(v.path, v.errors) for v in errors]
    assert d.entities["image"], "every example makes images"


def test_no_phase_calibrator_example_scores_red(cycle4):
    d = evaluate(cycle4, load_facts(REPO / "examples" / "12m_no_phase_calibrator.yaml"))
    assert d.value("dataset.importdata_colour").value == "red"
    assert "no phase calibrator" in [r.reason for r in d.value("dataset.importdata_score").reasons]


def test_cycle5_override_adds_one_step(cycle4, cycle5):
    names4 = [s.name for s in cycle4.rs.cascades["productsize"].steps]
    names5 = [s.name for s in cycle5.rs.cascades["productsize"].steps]
    assert names5 == names4 + ["representative spw only"]


def test_unknown_is_a_value_not_an_exception(cycle4):
    ev = run(cycle4, small(spws=None))
    assert isinstance(ev.attr(ev.dataset, "product_size"), Unknown)


def test_threshold_is_reported_with_three_significant_digits(cycle4):
    # heuristics.md section 5: the threshold is reported with three significant digits
    facts = small(measurements=[{"field": "T", "intent": "TARGET", "spws": [0], "specmode": "mfs",
                                 "sensitivity": "0.0367 mJy/beam", "dirty_dr": 80}])
    v = evaluate(cycle4, facts).value("image[T.TARGET.0.mfs].threshold")
    assert v.text == "0.294 mJy/beam"  # 4 x 0.0367 x 2.0 = 0.2936
    assert v.value == pytest.approx(0.2936)  # the number itself keeps full precision


def test_cascade_outcome_is_a_value_of_the_dataset(cycle4):
    d = evaluate(cycle4, small())
    v = d.value("dataset.productsize_outcome")
    assert (v.value, v.rule) == ("not needed", "cascade productsize")
    assert d.cascades[0].outcome == "not needed" and d.cascades[0].skipped == [] and d.cascades[0].error is None
    d = evaluate(cycle4, load_facts(REPO / "examples" / "12m_long_baseline_cascade.yaml"))
    assert d.value("dataset.productsize_outcome").value == "still exceeded"


def test_decisions_have_no_warnings_without_warn_rules(cycle4):
    d = evaluate(cycle4, small())
    assert d.warnings == []
    assert '"warnings": []' in d.to_json()


@pytest.mark.parametrize("example", EXAMPLES[:4], ids=lambda p: p.name)
def test_lazy_decisions_present_each_value_as_decisions_does(cycle4, example):
    """LazyDecisions.value(path) is decisions(ev).value(path) for every value, presented on demand;
    an unknown path is a KeyError in both."""
    from almarules.engine.evaluate.decisions import LazyDecisions, decisions

    facts = load_facts(example)
    eager = decisions(run(cycle4, facts, [], "calibration"))
    lazy = LazyDecisions(run(cycle4, facts, [], "calibration"))
    assert eager.values
    for v in eager.values:
        assert lazy.value(v.path) == v
    with pytest.raises(KeyError):
        lazy.value("dataset.no_such_value")
    with pytest.raises(KeyError):
        eager.value("dataset.no_such_value")
