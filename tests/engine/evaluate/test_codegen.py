"""The generated Python code evaluates exactly as the closures do.

Every expression and derived attribute is compiled to Python source (engine/evaluate/codegen.py);
an expression too deep for Python's compiler falls back to nested closures (compile.closure_expr),
the interpreter's reference semantics. On synthetic datasets, with the default and with tight size
limits (so that the product-size cascade applies its steps), both give the same evaluation: every
value (unknowns with their reasons), every value's provenance (rule, inputs read in order,
reasons), the cascades' records, the stages, the warnings and the coverage.
"""

from __future__ import annotations

import gc

import pytest

from almarules.engine.evaluate import codegen, codegen_scores
from almarules.engine.evaluate.api import load_facts, load_program
from almarules.engine.evaluate.evaluation import collector_paused
from almarules.engine.evaluate.values import Entity
from almarules.engine.facts.model import Dataset
from almarules.engine.facts.synth import synthesize

from conftest import EXAMPLES, REPO
from evaluation_snapshot import everything, input_text

RULE_SETS = ["cycle4", "current", "cycle5"]
DATASETS = [Dataset.model_validate(s) for s in synthesize(24, seed=3)]


def _closures_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_deep(*args, **kwargs):
        raise codegen.TooDeep()

    monkeypatch.setattr(codegen, "expr_function", too_deep)
    monkeypatch.setattr(codegen, "derive_function", too_deep)
    monkeypatch.setattr(codegen, "collection_function", too_deep)
    monkeypatch.setattr(codegen_scores, "score_function", too_deep)


@pytest.mark.parametrize("rules", RULE_SETS)
def test_generated_code_evaluates_as_the_closures(rules, monkeypatch):
    generated = load_program([REPO / "rules" / "alma" / rules])
    _closures_only(monkeypatch)
    closures = load_program([REPO / "rules" / "alma" / rules])
    assert not any(fn.__code__.co_filename.startswith("<derive") for fns in closures.derive_fns.values()
                   for fn in fns.values())
    assert not closures.collection_fns and set(generated.collection_fns) == set(generated.rs.collections)
    assert all(generated.getters[s.kind][s.attr].__qualname__ == f"score {s.kind}.{s.attr}"
               for s in generated.rs.scores.values())
    tight = {k: generated.params[k] / 50 for k in ("max_cube_size", "max_product_size", "max_cube_limit")
             if k in generated.params}
    datasets = DATASETS + [load_facts(p) for p in EXAMPLES] + [Dataset()]
    for params in ({}, tight):
        for i, d in enumerate(datasets):
            assert everything(generated.run(d, dict(params))) == everything(closures.run(d, dict(params))), (
                rules, params, i)


def test_cascades_run_their_steps_in_the_comparison():
    """(The tight limits above make the cascade apply steps, where values are recomputed.)"""
    p = load_program([REPO / "rules" / "alma" / "cycle4"])
    tight = {k: p.params[k] / 50 for k in ("max_cube_size", "max_product_size") if k in p.params}
    assert any(c.steps for d in DATASETS for c in p.run(d, dict(tight)).cascades)


def test_the_collector_is_paused_while_evaluating_and_left_as_it_was(cycle4):
    seen = []
    before = gc.isenabled()
    try:
        gc.enable()
        assert collector_paused(lambda ev: gc.isenabled(), None) is False
        seen.append(gc.isenabled())
        gc.disable()
        assert collector_paused(lambda ev: gc.isenabled(), None) is False
        seen.append(gc.isenabled())
        gc.enable()
        with pytest.raises(ZeroDivisionError):
            collector_paused(lambda ev: 1 / 0, None)
        seen.append(gc.isenabled())
        cycle4.run(DATASETS[0]).compute_all()
        seen.append(gc.isenabled())
    finally:
        (gc.enable if before else gc.disable)()
    assert seen == [True, False, True, True]


def test_an_entity_made_elsewhere_is_evaluated_with_its_provenance(cycle4):
    ev = cycle4.run(DATASETS[0])
    spw = ev.all_of("spw")[0]
    other = Entity("spw", "other", spw.model)
    assert ev.attr(other, "is_science") == ev.attr(spw, "is_science")
    assert [input_text(i) for i in other.prov.get("is_science").inputs] == ["spw[other].intents"]
