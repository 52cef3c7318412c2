"""The checker's entry point keeps the names engine/ and the tests import from it (the split into
check_* modules must not lose them); the package-wide layout rules are tests/test_layout.py."""

from __future__ import annotations


def test_the_checker_entry_point_keeps_its_names(tmp_path):
    """engine/ and the tests import these from dsl.checker; a checked rule set shows them at work."""
    from almarules.dsl.checker import OUTCOMES, CheckResult, check, outcome_attr, plural
    from almarules.dsl.loader import load_ruleset
    from almarules.dsl.types import Schema, StrT

    (tmp_path / "t.rules").write_text(
        'param limit = 1\n'
        'collection spw:\n    emit nchan = 4\n'
        'cascade size:\n    until count(spws) <= limit\n    step "a":\n        drop spw where spw.nchan > 2\n')
    result = check(load_ruleset([tmp_path]), Schema(kinds={"dataset": {}}, collections={}, enums={}))
    assert isinstance(result, CheckResult) and result.ok, result.findings
    # README: every cascade NAME defines dataset.NAME_outcome, one of these five words
    words = {"not needed", "mitigated", "still exceeded", "error", "unknown"}
    assert outcome_attr("size") == "size_outcome"
    assert result.schema.kinds["dataset"]["size_outcome"].type == StrT(frozenset(words))
    assert set(OUTCOMES) == words
    assert plural("spw") == "spws" and result.schema.collections == {"spws": "spw"}
