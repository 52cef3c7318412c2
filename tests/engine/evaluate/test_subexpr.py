"""Which subexpressions generated code computes once and reuses (engine/evaluate/subexpr.py).

That reusing one records the same inputs as computing it again is shown by the generated code
evaluating as the closures do (test_codegen.py: image.mosaic_overlap writes its distance twice)."""

from __future__ import annotations

from almarules.dsl import ast as A
from almarules.engine.evaluate.subexpr import reuse_key, straight


def _read(obj: str, attr: str) -> A.Attr:
    return A.Attr(A.Name(obj), attr)


DISTANCE = A.Binary("^", A.Binary("-", _read("p", "ra_offset"), _read("image", "centre")), A.Num(2.0))


def test_arithmetic_comparisons_and_registry_calls_are_straight_line():
    assert straight(DISTANCE, {})
    assert straight(A.Call("sqrt", (DISTANCE,)), {})
    assert straight(A.Binary("<", DISTANCE, _read("image", "fwhp")), {})


def test_logic_conditionals_aggregates_and_tables_are_not():
    assert not straight(A.Binary("and", A.Bool(True), _read("image", "ok")), {})
    assert not straight(A.IfElse(A.Bool(True), A.Num(1.0), A.Num(2.0)), {})
    assert not straight(A.Call("dr_correction_12m", (DISTANCE,)), {})  # a table, not a function
    assert not straight(A.Binary("+", A.Num(1.0), A.IfElse(A.Bool(True), A.Num(1.0), A.Num(2.0))), {})


def test_the_key_is_the_meaning_in_its_scope_not_the_place():
    here = A.Binary("^", A.Binary("-", _read("p", "ra_offset"), _read("image", "centre")), A.Num(2.0),
                    loc=A.Loc("x.rules", 3, 9))
    scope = {"p": "v5", "image": "ent"}
    assert reuse_key(here, scope, {}) == reuse_key(DISTANCE, dict(scope), {})
    assert reuse_key(DISTANCE, {"p": "v6", "image": "ent"}, {}) != reuse_key(DISTANCE, scope, {})
    assert reuse_key(_read("image", "centre"), scope, {}) is None  # a read is reused by itself already
