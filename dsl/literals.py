"""Static reading of literal numbers in rule expressions: value, canonical SI value, text, free 0/inf."""

from __future__ import annotations

import math
from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.units import DIMENSIONLESS, UnitError, parse_unit


def is_free_literal(e: A.Expr) -> bool:
    """0 and inf without a unit fit any dimension (``dish_diameter > 0``)."""
    if isinstance(e, A.Unary) and e.op == "-":
        return is_free_literal(e.operand)
    return isinstance(e, A.Num) and e.unit is None and (e.value == 0 or math.isinf(e.value))


def literal_number(e: Optional[A.Expr]) -> Optional[float]:
    """The value of ``3`` or ``-3`` (in its own unit, if any), else None."""
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, A.Unary) and e.op == "-" and isinstance(e.operand, A.Num):
        return -e.operand.value
    return None


def literal_canonical(e: Optional[A.Expr]) -> Optional[tuple]:
    """(canonical value, dimension) of a literal number with its unit, else None."""
    v = literal_number(e)
    if v is None:
        return None
    unit = e.operand.unit if isinstance(e, A.Unary) else getattr(e, "unit", None)
    if unit is None:
        return v, DIMENSIONLESS
    try:
        scale, dim = parse_unit(unit)
    except UnitError:
        return None
    return float(f"{v * scale:.12g}"), dim


def literal_text(e: A.Expr) -> str:
    """A literal number as written: ``30000 MB``."""
    v = literal_number(e)
    unit = e.operand.unit if isinstance(e, A.Unary) else getattr(e, "unit", None)
    return f"{v:g}" + (f" {unit}" if unit else "")


def unit_ok(unit: Optional[str]) -> bool:
    """Is `unit` absent or a known unit?"""
    if unit is None:
        return True
    try:
        parse_unit(unit)
        return True
    except UnitError:
        return False
