"""Conditions no entity can satisfy: contradictions within one condition, disjointness of two.

Sound for conjunctions of simple atoms (``x == c``, ``x in {..}``, ``x < c``, a boolean attribute
and their negations); anything else is taken as satisfiable. Numbers compare in SI units.
"""

from __future__ import annotations

from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.intervals import Span
from almarules.dsl.literals import unit_ok
from almarules.dsl.units import parse_unit

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _atoms(cond: Optional[A.Expr]) -> list[A.Expr]:
    if cond is None:
        return []
    if isinstance(cond, A.Binary) and cond.op == "and":
        return _atoms(cond.left) + _atoms(cond.right)
    return [cond]


def _constant(e: A.Expr, members: frozenset[str] = frozenset()):
    if isinstance(e, A.Num):
        return ("num", e.value * (parse_unit(e.unit)[0] if e.unit else 1.0)) if unit_ok(e.unit) else None
    if isinstance(e, A.Unary) and e.op == "-":
        c = _constant(e.operand)
        return ("num", -c[1]) if c and c[0] == "num" else None
    if isinstance(e, A.Str):
        return ("sym", e.value)
    if isinstance(e, A.Name) and e.id in members:
        return ("sym", e.id)
    if isinstance(e, A.Bool):
        return ("bool", e.value)
    return None


def _negated(atom: A.Unary, members: frozenset[str]):
    inner = _constraint(atom.operand, members)
    if inner and inner[1][0] in ("in", "notin"):
        kind, vals = inner[1]
        return inner[0], ("notin" if kind == "in" else "in", vals)
    if inner is None and isinstance(atom.operand, (A.Attr, A.Name)):
        return repr(atom.operand), ("in", frozenset([("bool", False)]))
    return None


def _membership(atom: A.Binary, members: frozenset[str]):
    consts = [_constant(i, members) for i in atom.right.items]
    if any(c is None for c in consts):
        return None
    vals = frozenset(consts)
    return repr(atom.left), ("in" if atom.op == "in" else "notin", vals)


def _constraint(atom: A.Expr, members: frozenset[str]):
    """(subject, constraint) for simple atoms, else None. Constraints:
    ("in", set) / ("notin", set) for symbols and booleans, ("span", Span) for numbers."""
    if isinstance(atom, A.Unary) and atom.op == "not":
        return _negated(atom, members)
    if isinstance(atom, (A.Attr,)):
        return repr(atom), ("in", frozenset([("bool", True)]))
    if not isinstance(atom, A.Binary):
        return None
    op, left, right = atom.op, atom.left, atom.right
    if op in ("in", "notin") and isinstance(right, (A.SetLit, A.ListLit)):
        return _membership(atom, members)
    if op not in _FLIP:
        return None
    lc, rc = _constant(left, members), _constant(right, members)
    if rc is None and lc is not None:
        left, right, lc, rc, op = right, left, rc, lc, _FLIP[op]
    if rc is None or lc is not None:
        return None
    subject = repr(left)
    if op in ("==", "!="):
        return subject, ("in" if op == "==" else "notin", frozenset([rc]))
    if rc[0] != "num":
        return None
    v = rc[1]
    inf = float("inf")
    span = {"<": Span(-inf, v, False, False), "<=": Span(-inf, v, False, True),
            ">": Span(v, inf, False, False), ">=": Span(v, inf, True, False)}[op]
    return subject, ("span", span)


def _intersect_empty(constraints: list) -> bool:
    sets = [c for c in constraints if c[0] == "in"]
    nots = [c for c in constraints if c[0] == "notin"]
    spans = [c[1] for c in constraints if c[0] == "span"]
    if sets:
        common = frozenset.intersection(*[s[1] for s in sets])
        for n in nots:
            common = common - n[1]
        if spans:
            common = frozenset(v for v in common if v[0] != "num" or all(s.contains(v[1]) for s in spans))
        return not common
    if spans:
        lo = max(spans, key=lambda s: (s.lo, not s.lo_closed))
        hi = min(spans, key=lambda s: (s.hi, s.hi_closed))
        return Span(lo.lo, hi.hi, lo.lo_closed, hi.hi_closed).empty()
    return False


def disjoint(a: Optional[A.Expr], b: Optional[A.Expr], members: frozenset[str]) -> bool:
    """Can no entity satisfy both conditions? (sound for simple atoms, else 'no')."""
    if a is None or b is None:
        return False
    return contradiction(A.Binary("and", a, b), members)


def contradiction(cond: A.Expr, members: frozenset[str]) -> bool:
    """Can no entity satisfy `cond`? `members` are the enum members (bare names that are symbols)."""
    by_subject: dict[str, list] = {}
    for atom in _atoms(cond):
        if isinstance(atom, A.Bool) and not atom.value:
            return True
        c = _constraint(atom, members)
        if c is not None:
            by_subject.setdefault(c[0], []).append(c[1])
    return any(_intersect_empty(cs) for cs in by_subject.values())
