"""Rule arithmetic that stays in the finite reals.

Every operation returns a finite float, or an `Unknown` error value whose reason says what went
wrong (overflow, a result that is not a number, a power that leaves the reals). Rule values are
never ``inf``, ``nan`` or complex, and no operation raises.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from almarules.engine.evaluate.values import Unknown


def _show(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def not_finite(what: str, result: Any) -> Unknown:
    """The error value for a computation `what` whose result is not a finite real."""
    if isinstance(result, complex):
        return Unknown(errors=[f"{what} is not a real number"])
    if isinstance(result, float) and math.isnan(result):
        return Unknown(errors=[f"{what} is not a number"])
    return Unknown(errors=[f"{what} overflows (beyond ±1.8e308)"])


def _checked(symbol: str, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        r = op(a, b)
        if r - r == 0:  # false for inf and nan
            return r
        return not_finite(f"{_show(a)} {symbol} {_show(b)}", r)
    return apply


add = _checked("+", lambda a, b: a + b)
sub = _checked("-", lambda a, b: a - b)
mul = _checked("*", lambda a, b: a * b)


def div(a: Any, b: Any) -> Any:
    """a / b; division by zero and non-finite quotients are error values."""
    if b == 0:
        return Unknown(errors=["division by zero"])
    r = a / b
    if r - r == 0:
        return r
    return not_finite(f"{_show(a)} / {_show(b)}", r)


def power(a: Any, b: Any) -> Any:
    """a ^ b in floats: overflow, 0 ^ negative and real powers of negatives are error values."""
    try:
        r = float(a) ** float(b)
    except OverflowError:
        return not_finite(_power_text(a, b), math.inf)
    except ZeroDivisionError:
        return Unknown(errors=[f"{_power_text(a, b)}: 0 to a negative power is a division by zero"])
    if r.__class__ is complex:
        return not_finite(_power_text(a, b), r)
    if r - r == 0:
        return r
    return not_finite(_power_text(a, b), r)


def _power_text(a: Any, b: Any) -> str:
    """How ``a ^ b`` is named in its error value (made only when there is one)."""
    return f"{_show(a) if a >= 0 else f'({_show(a)})'} ^ {_show(b)}"


def finite_result(func: str, args: tuple, r: Any) -> Any:
    """A function's result, or the error value if it is a float that is not finite."""
    if r.__class__ is float and not r - r == 0:
        return not_finite(f"{func}({', '.join(_show(a) for a in args)})", r)
    return r


ARITH = {"+": add, "-": sub, "*": mul, "/": div, "^": power}

__all__ = ["ARITH", "add", "sub", "mul", "div", "power", "finite_result", "not_finite"]
