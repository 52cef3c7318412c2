"""Cascade and warning extensions: step conditions, error and repeat actions, keep limits, several
ranking keys, `while` seeing the candidate group, cascade outcomes as values, `warn`."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from almarules.dsl.errors import RuleError
from almarules.engine.evaluate.api import check_rules, evaluate, load_program, run
from almarules.engine.evaluate.decisions import decisions
from almarules.engine.evaluate.program import Evaluation, language_coverage_items
from almarules.engine.facts.model import Dataset
from almarules.engine.evaluate.report import decisions_table
from almarules.engine.evaluate.values import Unknown
from almarules.engine.evaluate.world import World

from conftest import REPO

CURRENT = REPO / "rules" / "alma" / "current"

# spw.size = nchan / nbin / ppb; the cascade shrinks the total below `limit`
BASE = """
param ppb = 5
param limit = 100

derive spw.nbin = 1
derive spw.size = spw.nchan / spw.nbin / ppb
derive dataset.total = sum(s.size for s in spws)
derive dataset.fits = dataset.total <= limit
"""


def program(tmp_path: Path, text: str, name: str = "r.rules"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(BASE) + textwrap.dedent(text))
    return load_program([path])


def spws(*nchans: int | None, **extra) -> Dataset:
    return Dataset.model_validate({"spws": [{"id": i, "nchan": n, **extra} for i, n in enumerate(nchans)], **{}})


def cascade(ev: Evaluation, name: str = "shrink"):
    return next(c for c in decisions(ev).cascades if c.name == name)


# ---------------------------------------------------------------- step conditions
def test_a_step_whose_condition_is_false_is_skipped_and_reported(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= limit
            step "bin" when any(s.nchan > 1000 for s in spws):
                set spw.nbin = 2 where spw.nchan > 1000
            step "cell":
                set ppb = 10
        """)
    ev = run(p, spws(600, 400))
    c = cascade(ev)
    assert [s.name for s in c.steps] == ["cell"]
    assert [(k.name, k.reason, k.after_steps) for k in c.skipped] == [("bin", "condition false", 0)]
    assert c.status == "mitigated" and c.outcome == "mitigated"
    text = decisions_table(decisions(ev))
    assert "  -  bin: skipped (condition false)   [" in text
    assert text.index("bin: skipped") < text.index("1. cell: ppb = 10")


def test_a_step_condition_that_is_unknown_makes_the_cascade_unknown(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= limit
            step "hanning" when any(s.online_hanning for s in spws):
                set ppb = 10
        """)
    c = cascade(run(p, spws(600, 400)))
    assert c.status == "unknown" and c.outcome == "unknown"
    assert c.waits_for == ["spw[0].online_hanning", "spw[1].online_hanning"]
    assert c.steps == [] and c.skipped == []


def test_a_step_condition_sees_the_state_left_by_earlier_steps(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= 10
            step "cell":
                set ppb = 50
            step "more" when dataset.total > 30:
                set ppb = 500
        """)
    c = cascade(run(p, spws(1000, 1000)))  # 400 -> 40 after "cell": "more" applies
    assert [s.name for s in c.steps] == ["cell", "more"]
    c = cascade(run(p, spws(1000, 400)))  # 280 -> 28: "more" is skipped
    assert [s.name for s in c.steps] == ["cell"] and c.skipped[0].name == "more"
    assert c.status == "still exceeded"


# ---------------------------------------------------------------- error
ERROR = """
cascade shrink:
    until dataset.total <= limit
    step "cell":
        set ppb = 10
    step "check":
        set spw.nbin = 2 where spw.nchan > 1000
        error "still too big" when dataset.total > limit
        set ppb = 1000
    step "never":
        set ppb = 1000
"""


def test_an_error_action_stops_the_cascade_with_its_message(tmp_path):
    p = program(tmp_path, ERROR)
    ev = run(p, spws(4000, 2000))  # 1200 -> 600 -> binned: 300 > 100
    c = cascade(ev)
    assert c.status == "error" and c.outcome == "error" and c.error == "still too big"
    assert [s.name for s in c.steps] == ["cell", "check"]
    assert c.steps[1].changes == ["spw[0].nbin = 2", "spw[1].nbin = 2", "error: still too big"]
    assert ev.attr(ev.dataset, "total") == 300  # the changes before the error stay; ppb is still 10
    assert ev.attr(ev.dataset, "shrink_outcome") == "error"
    assert "Cascade shrink: error: still too big" in decisions_table(decisions(ev))


def test_an_error_that_does_not_fire_lets_the_step_continue(tmp_path):
    p = program(tmp_path, ERROR)
    c = cascade(run(p, spws(1500, 100)))  # 320 -> 160 -> 85: no error, then ppb 1000
    assert c.status == "mitigated" and c.error is None
    assert c.steps[1].changes[-1] == "ppb = 1000"


def test_an_error_condition_that_is_unknown_makes_the_cascade_unknown(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= limit
            step "check":
                error "hanning" when any(s.online_hanning for s in spws)
        """)
    c = cascade(run(p, spws(1000)))
    assert c.status == "unknown" and c.waits_for == ["spw[0].online_hanning"]
    assert [s.name for s in c.steps] == ["check"]


def test_an_unconditional_error_fires_whenever_its_step_applies(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= limit
            step "give up":
                error "nothing to try"
        """)
    ev = run(p, spws(1000))
    assert cascade(ev).error == "nothing to try"
    items = language_coverage_items(p)
    assert [text.split("   [")[0] for text in items.values()] == ["cascade shrink: step 'give up': error 'nothing to try'"]
    assert set(items) <= ev.coverage  # the error fired: exercised
    assert not set(items) & run(p, spws(10)).coverage  # not needed: never reached


# ---------------------------------------------------------------- repeat
def test_repeat_reapplies_earlier_steps_ignoring_their_conditions(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= limit
            step "bin" when count(spws) > 5:
                set spw.nbin = 2 where spw.nchan > 1000
            step "cell" when false:
                set ppb = 10
            step "again":
                repeat "bin", "cell"
        """)
    ev = run(p, spws(4000, 200))
    c = cascade(ev)
    assert [s.name for s in c.steps] == ["again"]
    assert [k.name for k in c.skipped] == ["bin", "cell"]
    assert c.steps[0].changes == ["repeat 'bin': spw[0].nbin = 2", "repeat 'cell': ppb = 10"]
    assert ev.attr(ev.dataset, "total") == 220
    d = decisions(ev)
    assert next(x for x in d.params if x.name == "ppb").origin == "cascade shrink, step 'again' (repeating 'cell')"
    assert d.value("spw[0].nbin").origin == "cascade"


def test_repeat_of_a_step_that_changes_nothing_says_so(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= 10
            step "bin":
                set spw.nbin = 2 where spw.nchan > 1000
            step "again":
                repeat "bin"
        """)
    c = cascade(run(p, spws(500)))
    assert c.steps[1].changes == ["repeat 'bin': no change"]


# ---------------------------------------------------------------- keep: limit, ranking keys, while
def keep_program(tmp_path, clauses: str):
    return program(tmp_path, f"""
        cascade shrink:
            until dataset.total <= 1
            step "fewer":
                keep spw {clauses}
        """)


def kept(ev: Evaluation) -> list[str]:
    return [e.key for e in ev.all_of("spw")]


@pytest.mark.parametrize("limit, n", [("2.7", 2), ("2", 2), ("0.3", 1), ("-5", 1), ("inf", 4), ("10", 4)])
def test_keep_limit_keeps_max_1_floor_n_groups(tmp_path, limit, n):
    ev = run(keep_program(tmp_path, f"ranked by spw.id limit {limit}"), spws(100, 200, 300, 400))
    assert kept(ev) == ["0", "1", "2", "3"][:n]


def test_keep_limit_is_evaluated_once_before_anything_is_dropped(tmp_path):
    ev = run(keep_program(tmp_path, "ranked by -spw.id limit count(spws) / 2"), spws(100, 200, 300, 400, 500, 600))
    assert kept(ev) == ["3", "4", "5"]


def test_keep_limit_that_is_unknown_makes_the_cascade_unknown(tmp_path):
    ev = run(keep_program(tmp_path, "ranked by spw.id limit count(s for s in spws where s.online_hanning)"),
             spws(100, 200))
    c = cascade(ev)
    assert c.status == "unknown" and "spw[0].online_hanning" in c.waits_for
    assert kept(ev) == ["0", "1"]  # nothing dropped


def test_keep_limit_nan_makes_the_cascade_unknown(tmp_path):
    ev = run(keep_program(tmp_path, "ranked by spw.id limit inf - inf"), spws(100, 200))
    assert cascade(ev).status == "unknown" and kept(ev) == ["0", "1"]


def test_ranking_keys_are_lexicographic_false_before_true(tmp_path):
    # first key: not wide (false sorts first, so wide spws come first); then by nchan
    ev = run(keep_program(tmp_path, "ranked by spw.nchan < 1000, spw.nchan limit 3"),
             spws(500, 3000, 200, 2000, 100))
    assert kept(ev) == ["1", "3", "4"]  # 2000, 3000 (wide, by nchan), then 100
    c = cascade(ev)
    assert c.steps[0].changes[:3] == ["kept spw[3]", "kept spw[1]", "kept spw[4]"]


def test_ranking_strings_by_text_and_unknown_last(tmp_path):
    ev = run(keep_program(tmp_path, "ranked by spw.frame limit 3"),
             Dataset.model_validate({"spws": [{"id": 0, "nchan": 10, "frame": "TOPO"}, {"id": 1, "nchan": 10},
                                              {"id": 2, "nchan": 10, "frame": "BARY"},
                                              {"id": 3, "nchan": 10, "frame": "LSRK"}]}))
    assert kept(ev) == ["0", "2", "3"]  # BARY, LSRK, TOPO; the unknown frame is last and dropped


def test_ties_keep_first_seen_order_and_the_single_key_form_works(tmp_path):
    ev = run(keep_program(tmp_path, "ranked by spw.nchan > 150 limit 2"), spws(300, 100, 200, 50))
    assert kept(ev) == ["1", "3"]
    ev = run(keep_program(tmp_path, "ranked by -spw.nchan while dataset.total <= 90"), spws(100, 300, 200))
    assert kept(ev) == ["1"]  # 300 first; adding 200 would give 100 > 90


def test_while_sees_the_candidate_group_as_the_kind_variable(tmp_path):
    # sizes 90, 12.8, 4: the 64-channel spw is kept although the total then exceeds 100
    ev = run(keep_program(tmp_path, "ranked by -spw.nchan while dataset.total <= 100 or spw.nchan == 64"),
             spws(450, 64, 20))
    assert kept(ev) == ["0", "1"]
    ev = run(keep_program(tmp_path, "ranked by -spw.nchan while dataset.total <= 100"), spws(450, 64, 20))
    assert kept(ev) == ["0"]


def test_groups_of_entity_tuples_are_named_by_their_paths(tmp_path):
    p = program(tmp_path, """
        cascade shrink:
            until dataset.total <= 1
            step "fewer":
                keep spw group by [spw] ranked by spw.id
        """)
    assert cascade(run(p, spws(10, 20))).steps[0].changes == ["kept spw[0]", "dropped spw[1] (1 spw)"]


# ---------------------------------------------------------------- outcomes
OUTCOME = """
param give_up = 0

derive dataset.score = if dataset.shrink_outcome == "not needed" then 1.0 else if dataset.shrink_outcome == "mitigated" then 0.85 else 0

cascade shrink:
    until dataset.total <= limit
    step "cell" when not any(s.online_hanning for s in spws):
        set ppb = 10
    step "check":
        error "too big" when give_up > 0 and dataset.total > limit
"""


@pytest.mark.parametrize("nchans, extra, sets, outcome, score", [
    ((100,), {}, [], "not needed", 1.0),
    ((800,), {"online_hanning": False}, [], "mitigated", 0.85),
    ((8000,), {"online_hanning": False}, [], "still exceeded", 0.0),
    ((8000,), {"online_hanning": False}, ["give_up=1"], "error", 0.0),
    ((800,), {}, [], "unknown", 0.0),
])
def test_every_cascade_defines_its_outcome_attribute(tmp_path, nchans, extra, sets, outcome, score):
    p = program(tmp_path, OUTCOME)
    d = evaluate(p, spws(*nchans, **extra), sets=sets)
    v = d.value("dataset.shrink_outcome")
    assert (v.status, v.value, v.text) == ("known", outcome, outcome)
    assert v.rule == "cascade shrink" and v.at.endswith("r.rules:14:1")
    assert d.value("dataset.score").value == score
    assert d.cascades[0].outcome == outcome


def test_the_outcome_values_are_the_checkers_outcome_type(cycle4):
    from almarules.dsl.checker import OUTCOMES
    from almarules.engine.evaluate.api import evaluate, load_dataset

    from conftest import EXAMPLES

    seen = set()
    for example in EXAMPLES:
        for c in evaluate(cycle4, load_dataset([example])).cascades:
            assert c.outcome == c.status
            seen.add(c.status)
    assert seen and seen <= set(OUTCOMES)


def test_the_outcome_read_before_its_cascade_has_finished_is_an_error_value(tmp_path):
    p = program(tmp_path, OUTCOME)
    ev = Evaluation(p, World(spws(100), p.schema), {}, {})
    value = ev.attr(ev.dataset, "shrink_outcome")  # not run yet: no crash, an error value
    assert isinstance(value, Unknown)
    assert value.errors == {"dataset.shrink_outcome is not known until cascade shrink has finished"}
    ev.run()  # the cached error does not outlive the cascade
    assert ev.attr(ev.dataset, "shrink_outcome") == "not needed"


def test_a_cascade_reading_another_outcome_runs_after_it(tmp_path):
    p = program(tmp_path, """
        cascade first:
            until dataset.second_outcome == "not needed" or dataset.total <= 1
            step "cell":
                set ppb = 1000
        cascade second:
            until dataset.total <= limit
            step "bin":
                set spw.nbin = 2
        """)
    assert [c.decl.name for c in p.cascades] == ["second", "first"]
    ev = run(p, spws(100))
    assert [c.name for c in ev.cascades] == ["second", "first"]
    assert [c.status for c in ev.cascades] == ["not needed", "not needed"]


def test_a_cascade_cannot_read_its_own_outcome_even_through_a_rule(tmp_path):
    path = tmp_path / "r.rules"
    path.write_text(textwrap.dedent(BASE) + textwrap.dedent("""
        derive dataset.done = dataset.shrink_outcome != "not needed"
        cascade shrink:
            until dataset.total <= limit
            step "cell" when not dataset.done:
                set ppb = 10
        """))
    _, result = check_rules([path])
    assert [(f.code, f.message) for f in result.findings] == [
        ("cycle", "dependency cycle: dataset.done -> cascade shrink -> dataset.done")]
    with pytest.raises(RuleError):
        load_program([path])


# ---------------------------------------------------------------- warnings
WARN = '''
warn "many spectral windows" when count(spws) > 2
    """More than two spws take long to image."""
warn "Hanning smoothing" when any(s.online_hanning for s in spws)
warn "never" when count(spws) > 100
'''


def test_warnings_that_fire_and_that_may_apply(tmp_path):
    p = program(tmp_path, WARN)
    ev = run(p, spws(10, 20, 30))
    d = decisions(ev)
    assert [(w.message, w.status, w.waits_for) for w in d.warnings] == [
        ("many spectral windows", "fires", []),
        ("Hanning smoothing", "unknown", ["spw[0].online_hanning", "spw[1].online_hanning", "spw[2].online_hanning"])]
    assert d.warnings[0].doc == "More than two spws take long to image." and d.warnings[0].at.endswith("r.rules:10:1")
    text = decisions_table(d)
    assert "Warnings\n  warning: many spectral windows   [" in text
    assert "  may apply: Hanning smoothing (waits for spw[0].online_hanning, " in text
    assert json.loads(d.to_json())["warnings"][0]["status"] == "fires"
    items = language_coverage_items(p)
    assert len(items) == 3 and len(set(items) & ev.coverage) == 1  # only the warning that fired


def test_warnings_see_the_state_the_cascades_leave(tmp_path):
    p = program(tmp_path, WARN + textwrap.dedent("""
        cascade shrink:
            until count(spws) <= 2
            step "fewer":
                keep spw ranked by spw.id limit 2
        """))
    d = evaluate(p, spws(10, 20, 30, 40, online_hanning=False))
    assert d.warnings == []
    assert "Warnings" not in decisions_table(d)


def test_override_warn_and_override_step_with_a_condition(tmp_path):
    program(tmp_path, WARN + textwrap.dedent("""
        cascade shrink:
            until dataset.total <= limit
            step "cell":
                set ppb = 10
        """), name="base.rules")
    (tmp_path / "over.rules").write_text(textwrap.dedent("""
        import "base.rules"

        override warn "many spectral windows" when count(spws) > 5

        override cascade shrink:
            step "cell" when count(spws) > 1:
                set ppb = 20
            step "bin" before "cell" when false:
                set spw.nbin = 2
        """))
    p = load_program([tmp_path / "over.rules"])
    ev = run(p, spws(1000, 1000, 1000, online_hanning=False))
    d = decisions(ev)
    assert d.warnings == []
    c = d.cascades[0]
    assert [s.name for s in c.steps] == ["cell"] and c.steps[0].changes == ["ppb = 20"]
    assert [k.name for k in c.skipped] == ["bin"]


def test_a_later_step_like_an_earlier_conditional_one_may_still_apply(tmp_path):
    path = tmp_path / "r.rules"
    path.write_text(textwrap.dedent(BASE) + textwrap.dedent("""
        cascade shrink:
            until dataset.total <= limit
            step "first" when count(spws) > 3:
                set ppb = 10
            step "second":
                set ppb = 10
        """))
    _, result = check_rules([path])
    assert result.findings == []


# ---------------------------------------------------------------- the current rule set
def many_targets(n: int, nchan: int = 1920, l80: float | None = 50) -> Dataset:
    fields = [{"id": 0, "name": "P", "intents": ["PHASE"], "pointings": [{}]}]
    fields += [{"id": i, "name": f"T{i}", "intents": ["TARGET"], "pointings": [{}]} for i in range(1, n + 1)]
    return Dataset.model_validate({
        "array": "12m", "ebs": [{"id": "eb1", "baselines": {"l80": l80}}],
        "antennas": [{"name": "DA41", "dish_diameter": 12}],
        "spws": [{"id": 0, "nchan": nchan, "start_frequency": "230 GHz", "channel_width": "0.9765625 MHz",
                  "intents": ["TARGET", "PHASE"]}],
        "fields": fields})


@pytest.fixture(scope="module")
def current():
    return load_program([CURRENT])


def test_current_warns_about_more_than_30_targets_and_960_channels(current):
    message = ("more than 30 science targets and more than 960 channels in total: imaging will take "
               "substantial time")
    ev = run(current, many_targets(31))
    d = decisions(ev)
    assert [(w.message, w.status) for w in d.warnings] == [(message, "fires")]
    assert d.cascades[0].status == "not needed"
    assert set(language_coverage_items(current)) & ev.coverage
    assert decisions(run(current, many_targets(30))).warnings == []
    assert decisions(run(current, many_targets(31, nchan=960))).warnings == []


def test_current_outcome_strings_error_and_unknown(current):
    facts = many_targets(1, nchan=128)
    d = evaluate(current, facts, sets=["max_product_size=0.001GB"])
    assert d.value("dataset.productsize_outcome").value == "error"
    assert d.cascades[0].error == "the product size cannot be mitigated"
    d = evaluate(current, many_targets(1, nchan=128, l80=None))
    assert d.value("dataset.productsize_outcome").value == "unknown"
    assert d.cascades[0].waits_for == ["eb[eb1].baselines.l80"]


def test_current_evaluates_every_example_without_crashing(current):
    for path in sorted((REPO / "examples").glob("*.yaml")):
        from almarules.engine.evaluate.api import load_facts

        d = evaluate(current, load_facts(path))
        assert d.value("dataset.productsize_outcome").status == "known"
        errors = [v.path for v in d.values if v.status == "error"]
        assert not errors, (path.name, errors)
        assert not math.isnan(d.value("dataset.importdata_score").value)
