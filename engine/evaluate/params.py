"""Rule parameters from outside the rules: ``--set NAME=VALUE`` read into canonical values."""

from __future__ import annotations

import math
from typing import Optional

from almarules.dsl import allowed as allowed_values
from almarules.dsl import ast as A
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import NumT, StrT, T
from almarules.dsl.units import UnitError, parse_quantity


class UsageError(Exception):
    """A mistake in how the engine was asked to run (bad --set, unknown value path)."""


def param_unit(p: A.Param) -> Optional[str]:
    """The unit a parameter's default is written in (``40 GB`` -> "GB"), or None."""
    e = p.value
    if isinstance(e, A.Unary):
        e = e.operand
    return e.unit if isinstance(e, A.Num) else None


def resolve_set(rs: RuleSet, param_types: dict[str, T], assignment: str) -> tuple[str, float | str]:
    """``imaging.max_cube_size=40GB`` -> ("max_cube_size", canonical value); a bad one raises
    `UsageError` with one line naming what is wrong."""
    if "=" not in assignment:
        raise UsageError(f"--set needs name=value, got {assignment!r}")
    name, text = (s.strip() for s in assignment.split("=", 1))
    stem = None
    if "." in name:
        stem, name = name.rsplit(".", 1)
    if name not in rs.params:
        import difflib

        close = difflib.get_close_matches(name, list(rs.params), n=1)
        raise UsageError(f"--set {assignment}: no parameter {name!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else ""))
    if stem is not None and rs.param_modules.get(name) != stem:
        raise UsageError(f"--set {assignment}: parameter {name!r} is declared in "
                         f"{rs.param_modules.get(name)!r}, not {stem!r}")
    value = set_value(param_types[name], name, text, assignment)
    check_allowed(rs.params[name], name, value, text, assignment)
    return name, value


def set_value(want: T, name: str, text: str, assignment: str) -> float | str:
    """The canonical value of ``--set`` text for parameter `name` of type `want`."""
    if isinstance(want, StrT):
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text
    if text.lower() in ("true", "false"):
        raise UsageError(f"--set {assignment}: parameters are numbers or strings")
    try:
        value, dim = parse_quantity(text)
    except UnitError as exc:
        raise UsageError(f"--set {assignment}: {exc}") from None
    if isinstance(want, NumT) and want.dim != dim:
        raise UsageError(f"--set {assignment}: {name} is in {want.dim.display_unit() or 'plain numbers'}, "
                         f"got {dim.display_unit() or 'a plain number'}")
    if math.isnan(value):
        raise UsageError(f"--set {assignment}: {name} needs a number")
    return value


def check_allowed(param: A.Param, name: str, value: float | str, text: str, assignment: str) -> None:
    """Refuse a value outside the parameter's ``in`` clause: one line naming the parameter,
    the value, what it accepts and where that is declared."""
    clause = param.allowed
    if clause is None or allowed_values.accepts(clause, value):
        return
    hint = ""
    if clause.values and isinstance(value, str):
        import difflib

        close = difflib.get_close_matches(value, list(clause.values), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"--set {assignment}: param {name} does not accept {text}: it takes "
                     f"{allowed_values.describe(clause)} (declared at {clause.loc}){hint}")
