"""Show run-time values to people: canonical floats in readable units."""

from __future__ import annotations

from typing import Any, Optional

from almarules.dsl.types import NumT, T
from almarules.dsl.units import display_unit_for, format_number, from_canonical
from almarules.engine.evaluate.values import Entity, Unknown


def unit_for(t: T, preferred: Optional[str]) -> Optional[str]:
    """The unit a value of type `t` is shown in ('' for plain numbers)."""
    if not isinstance(t, NumT):
        return None
    if preferred:
        return preferred
    return display_unit_for(t.dim)


def plain(value: Any, t: T, preferred: Optional[str] = None) -> tuple[Any, Optional[str]]:
    """(JSON-able value, unit) for a run-time value; numbers in the display unit."""
    if isinstance(value, Unknown):
        return None, None
    if isinstance(value, bool):
        return value, None
    if isinstance(value, (int, float)):
        unit = unit_for(t, preferred)
        shown = from_canonical(float(value), unit) if unit else float(value)
        return _tidy(shown), unit or None
    if isinstance(value, Entity):
        return value.path, None
    if isinstance(value, (tuple, list, frozenset)):
        items = sorted(value, key=str) if isinstance(value, frozenset) else list(value)
        return [plain(v, getattr(t, "elem", t), preferred)[0] for v in items], None
    return value, None


def _tidy(x: float) -> float:
    """Drop float noise from unit conversion (12 significant digits), keep the type float."""
    if x == 0 or x != x or x in (float("inf"), float("-inf")):
        return x
    return float(f"{x:.12g}")


def show_value(value: Any, t: T, preferred: Optional[str] = None, digits: int = 4) -> str:
    if isinstance(value, Unknown):
        if value.errors:
            return "error: " + "; ".join(sorted(value.errors))
        return "unknown (waits for " + ", ".join(sorted(value.waits)) + ")"
    v, unit = plain(value, t, preferred)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = format_number(v, digits)
        return f"{text} {unit}" if unit else text
    if isinstance(v, list):
        return "[" + ", ".join(str(x) if not isinstance(x, float) else format_number(x, digits) for x in v) + "]"
    return str(v)


def present(value: Any, t: T, preferred: Optional[str] = None, digits: int = 4) -> tuple[Any, Optional[str], str]:
    """(JSON-able value, unit, text) in one pass: the common case of reports."""
    if value.__class__ is float or value.__class__ is int:
        unit = unit_for(t, preferred)
        shown = _tidy(from_canonical(float(value), unit) if unit else float(value))
        text = format_number(shown, digits)
        return shown, unit or None, (f"{text} {unit}" if unit else text)
    v, unit = plain(value, t, preferred)
    return v, unit, show_value(value, t, preferred, digits)


def input_text(item: Any) -> str:
    """An input as recorded by the evaluator, as a path: ``spw[3].nchan``, ``param:ppb``."""
    if isinstance(item, tuple):
        ent, name = item
        return f"{ent.path}.{name}"
    return item
