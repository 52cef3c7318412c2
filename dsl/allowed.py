"""What a parameter accepts: the ``in`` clause of ``param``.

    param pblimit_image = 0.2
        in (0, 1]
    param pb_model = "airy"
        in {"airy", "gaussian"}

A number parameter takes an interval (ends in any unit of the parameter's dimension; a bare
``0`` or ``inf`` fits any unit), a string parameter a set of strings. The checker requires the
clause to fit the parameter's type and the default to satisfy it; ``--set`` and rule tests'
``set:`` are refused outside it. Values here are canonical (SI-decomposed) floats.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from almarules.dsl import ast as A
from almarules.dsl.errors import Finding
from almarules.dsl.intervals import Span, span_of
from almarules.dsl.types import NumT, StrT, T, is_any
from almarules.dsl.units import DIMENSIONLESS, UnitError, parse_unit


def _scale(unit: Optional[str]) -> float:
    return 1.0 if unit is None else parse_unit(unit)[0]


def span(allowed: A.Allowed) -> Optional[Span]:
    """The canonical interval of a numeric clause (None for a set of strings)."""
    return None if allowed.interval is None else span_of(allowed.interval, _scale)


def accepts(allowed: A.Allowed, value: Any) -> bool:
    """Does `value` (canonical float, or str) satisfy the clause?"""
    if allowed.interval is not None:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and span(allowed).contains(value)
    return isinstance(value, str) and value in allowed.values


def describe(allowed: A.Allowed) -> str:
    """How an error names what is accepted: ``a value in (0, 1]``, ``one of "airy", "gaussian"``."""
    if allowed.interval is not None:
        return f"a value in {allowed.interval}"
    return "one of " + str(allowed)[1:-1]


def problems(p: A.Param, t: T, default: Any) -> list[Finding]:
    """Findings about `p`'s clause: it must fit type `t`, and `default` (canonical value, or
    None when it is not a literal the checker can evaluate) must satisfy it."""
    a = p.allowed
    if a is None or is_any(t):
        return []
    if a.interval is not None:
        if not isinstance(t, NumT):
            return [Finding(a.loc, "type-mismatch", f"param {p.name} is {t.describe()}: an interval of accepted "
                                                    "values needs a number parameter",
                            hint='a string parameter lists its values: in {"a", "b"}')]
        out = _interval_problems(p, a.interval, t)
        if out:
            return out
    elif not isinstance(t, StrT):
        return [Finding(a.loc, "type-mismatch", f"param {p.name} is {t.describe()}: a set of accepted strings "
                                                "needs a string parameter",
                        hint="a number parameter takes an interval: in [lo, hi], ends open with ( or )")]
    elif len(set(a.values)) != len(a.values):
        return [Finding(a.loc, "duplicate", f"param {p.name}: a value is listed twice in {a}")]
    if default is not None and not accepts(a, default):
        return [Finding(p.value.loc, "out-of-range",
                        f"the default of param {p.name} is not {describe(a)}")]
    return []


def _interval_problems(p: A.Param, iv: A.Interval, t: NumT) -> list[Finding]:
    out: list[Finding] = []
    for b, closed in ((iv.lo, iv.lo_closed), (iv.hi, iv.hi_closed)):
        if b.infinite:
            if closed:
                out.append(Finding(b.loc, "bad-interval", "an infinite end must be open: write '(-inf' or 'inf)'"))
            continue
        try:
            dim = DIMENSIONLESS if b.unit is None else parse_unit(b.unit)[1]
        except UnitError:
            out.append(Finding(b.loc, "unknown-unit", f"unknown unit {b.unit!r}"))
            continue
        if dim != t.dim and not (b.value == 0 and b.unit is None):
            out.append(Finding(b.loc, "unit-mismatch",
                               f"bound {b.value:g}{' ' + b.unit if b.unit else ''} does not match param {p.name}, "
                               f"which is in {t.dim.display_unit() or 'plain numbers'}"))
    if not out and span_of(iv, _scale).empty():
        out.append(Finding(iv.loc, "bad-interval", f"interval {iv} is empty"))
    return out


def constant_value(e: A.Expr, params: dict[str, A.Param], seen: frozenset[str] = frozenset()) -> Any:
    """The canonical value of a literal default (numbers with units, strings, arithmetic, other
    parameters); None when it is anything else (the engine checks those when it compiles)."""
    if isinstance(e, A.Num):
        try:
            return e.value * _scale(e.unit) if math.isfinite(e.value) else e.value
        except UnitError:
            return None
    if isinstance(e, A.Str):
        return e.value
    if isinstance(e, A.Name) and e.id in params and e.id not in seen:
        return constant_value(params[e.id].value, params, seen | {e.id})
    if isinstance(e, A.Unary) and e.op == "-":
        v = constant_value(e.operand, params, seen)
        return -v if isinstance(v, float) else None
    if isinstance(e, A.Binary) and e.op in "+-*/^":
        a, b = constant_value(e.left, params, seen), constant_value(e.right, params, seen)
        if not (isinstance(a, float) and isinstance(b, float)):
            return None
        try:
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None, "^": a ** b}[e.op]
        except (OverflowError, ZeroDivisionError):
            return None
    return None
