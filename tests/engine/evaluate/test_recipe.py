"""Recipes: ordered stages with conditions; a condition on a missing fact is reported, not guessed."""

from __future__ import annotations

from almarules.engine.evaluate.api import evaluate, load_program
from almarules.engine.facts.model import Dataset

RULES = '''
derive dataset.has_tsys = any(ATMOSPHERE in s.intents for s in scans)

recipe cycle4_calibration:
    """The first stages of the Cycle 4 calibration recipe."""
    importdata
    tsyscal when dataset.has_tsys
    tsysflag when dataset.has_tsys
    makeimlist(PHASE, BANDPASS, CHECK)
'''


def test_stages_run_skip_and_wait(tmp_path):
    f = tmp_path / "recipe.rules"
    f.write_text(RULES)
    program = load_program([f])
    with_tsys = evaluate(program, Dataset.model_validate({"scans": [{"number": 1, "intents": ["ATMOSPHERE"]}]}))
    stages = with_tsys.recipes["cycle4_calibration"]
    assert [(s.name, s.run) for s in stages] == [
        ("importdata", True), ("tsyscal", True), ("tsysflag", True), ("makeimlist", True)]
    assert stages[3].args == ["PHASE", "BANDPASS", "CHECK"]
    without = evaluate(program, Dataset.model_validate({"scans": [{"number": 1, "intents": ["TARGET"]}]}))
    assert [s.run for s in without.recipes["cycle4_calibration"]] == [True, False, False, True]
    unknown = evaluate(program, Dataset())
    tsys = unknown.recipes["cycle4_calibration"][1]
    assert tsys.run is None and tsys.waits_for == ["dataset.scans"]
