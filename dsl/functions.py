"""The registry of functions callable from rules: their static signature and their
pure implementation. Rule files can call nothing else.

Scalar functions take canonical floats. Aggregates (``count sum min max mean any
all percentile the``) take a generator ``f(x for x in coll where cond)`` or a
collection; they are evaluated by the engine, and only typed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from almarules.dsl.types import ANY, BOOL, NUM, BoolT, CollT, NumT, T, is_any


class SignatureError(Exception):
    """An argument list a function does not accept; the message says why."""


def _num(t: T, what: str) -> Optional[NumT]:
    if is_any(t):
        return None
    if not isinstance(t, NumT):
        raise SignatureError(f"{what} must be a number, got {t.describe()}")
    return t


def _same_dims(types: list[T], what: str) -> T:
    nums = [_num(t, what) for t in types]
    known = [n for n in nums if n is not None]
    for n in known[1:]:
        if n.dim != known[0].dim:
            raise SignatureError(
                f"{what} must share one unit, got {known[0].dim.display_unit() or 'a number'}"
                f" and {n.dim.display_unit() or 'a number'}")
    return known[0] if known else ANY


def _dimensionless(types: list[T], what: str) -> T:
    for t in types:
        n = _num(t, what)
        if n is not None and not n.dim.is_dimensionless:
            raise SignatureError(f"{what} must be dimensionless, got a quantity in {n.dim.display_unit()}")
    return NUM


@dataclass(frozen=True)
class Function:
    name: str
    arity: tuple[int, int]  # min, max number of arguments
    signature: Callable[[list[T]], T]
    impl: Callable[..., object]
    doc: str

    def check_arity(self, n: int) -> Optional[str]:
        lo, hi = self.arity
        if lo <= n <= hi:
            return None
        want = str(lo) if lo == hi else (f"{lo} or more" if hi > 99 else f"{lo} to {hi}")
        return f"{self.name}() takes {want} argument{'s' if want != '1' else ''}, got {n}"


def linear_score(x: float, x1: float, x2: float, y1: float, y2: float) -> float:
    """Clip x to [x1, x2] (either order) and interpolate from (x1, y1) to (x2, y2)."""
    if x1 == x2:
        raise ValueError("linear_score is undefined when x1 == x2")
    lo, hi = min(x1, x2), max(x1, x2)
    xc = min(max(x, lo), hi)
    return y1 + (y2 - y1) * (xc - x1) / (x2 - x1)


def erf_score(r: float, good: float, bad: float, floor: float) -> float:
    """floor + (1 - floor) * (erf(r*slope + offset) + 1) / 2, slope and offset from good/bad.

    slope = 6/sqrt(2)/(good - bad); offset = 3/sqrt(2) * (1 - 2 good/(good - bad)).
    """
    if good == bad:
        raise ValueError("erf_score is undefined when good == bad")
    slope = 6.0 / math.sqrt(2.0) / (good - bad)
    offset = 3.0 / math.sqrt(2.0) * (1.0 - 2.0 * good / (good - bad))
    return floor + (1.0 - floor) * (math.erf(r * slope + offset) + 1.0) / 2.0


def fft_size(n: float) -> float:
    """Smallest even integer >= n whose prime factors are only 2, 3, 5 and 7."""
    m = max(2, int(math.ceil(n - 1e-9)))
    if m % 2:
        m += 1
    while True:
        k = m
        for p in (2, 3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return float(m)
        m += 2


def round_half_up(x: float, digits: float = 0) -> float:
    scale = 10.0 ** int(digits)
    return math.floor(x * scale + 0.5) / scale


def clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _sqrt_sig(ts: list[T]) -> T:
    n = _num(ts[0], "sqrt's argument")
    return ANY if n is None else NumT(n.dim ** 0.5)


def _lookup_sig(ts: list[T]) -> T:
    coll, key = ts
    if is_any(coll):
        return ANY
    if not isinstance(coll, CollT):
        raise SignatureError(f"lookup() searches a collection, got {coll.describe()}")
    return coll.elem


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("abs", (1, 1), lambda ts: _same_dims(ts, "abs's argument"), abs, "absolute value"),
        Function("sqrt", (1, 1), _sqrt_sig, math.sqrt, "square root (the unit too)"),
        Function("log", (1, 1), lambda ts: _dimensionless(ts, "log's argument"), math.log, "natural logarithm"),
        Function("log10", (1, 1), lambda ts: _dimensionless(ts, "log10's argument"), math.log10, "base-10 logarithm"),
        Function("exp", (1, 1), lambda ts: _dimensionless(ts, "exp's argument"), math.exp, "e to the power x"),
        Function("erf", (1, 1), lambda ts: _dimensionless(ts, "erf's argument"), math.erf, "error function"),
        Function("floor", (1, 1), lambda ts: _dimensionless(ts, "floor's argument"), lambda x: float(math.floor(x)), "round down"),
        Function("ceil", (1, 1), lambda ts: _dimensionless(ts, "ceil's argument"), lambda x: float(math.ceil(x)), "round up"),
        Function("round", (1, 2), lambda ts: _dimensionless(ts, "round's arguments"), round_half_up,
                 "round half up, optionally to n decimal digits"),
        Function("clip", (3, 3), lambda ts: _same_dims(ts, "clip's arguments"), clip, "clip x to [lo, hi]"),
        Function("min", (2, 999), lambda ts: _same_dims(ts, "min's arguments"), min, "smallest argument"),
        Function("max", (2, 999), lambda ts: _same_dims(ts, "max's arguments"), max, "largest argument"),
        Function("linear_score", (5, 5),
                 lambda ts: (_same_dims(ts[:3], "linear_score's x, x1 and x2"), _same_dims(ts[3:], "linear_score's y1 and y2"))[1],
                 linear_score, "linear_score(x, x1, x2, y1, y2): clip x to [x1, x2], interpolate to [y1, y2]"),
        Function("erf_score", (4, 4), lambda ts: _dimensionless(ts, "erf_score's arguments"), erf_score,
                 "erf_score(r, good, bad, floor): error-function score between good and bad"),
        Function("fft_size", (1, 1), lambda ts: _dimensionless(ts, "fft_size's argument"), fft_size,
                 "smallest even size >= n with prime factors 2, 3, 5, 7"),
        Function("known", (1, 1), lambda ts: BOOL, None, "true when the value is known (its facts are present)"),
        Function("lookup", (2, 2), _lookup_sig, None,
                 "lookup(collection, key): the element whose key is `key` (unknown while absent)"),
    ]
}

AGGREGATES = {"count", "sum", "min", "max", "mean", "any", "all", "percentile", "the", "list"}

CONSTANTS: dict[str, tuple[float, str]] = {
    # name -> (value in canonical units, unit text)
    "c": (299792458.0, "m/s"),
    "pi": (math.pi, ""),
}


def aggregate_type(func: str, lead: list[T], elem: T) -> T:
    """Result type of an aggregate over elements of type `elem` (lead: leading args)."""
    if func == "count":
        return NUM
    if func in ("any", "all"):
        if not (is_any(elem) or isinstance(elem, BoolT)):
            raise SignatureError(f"{func}() needs true/false elements, got {elem.describe()}")
        return BOOL
    if func == "the":
        return elem
    if func == "list":
        return CollT(elem)
    if func == "percentile":
        if len(lead) != 1:
            raise SignatureError("percentile() takes the percentile first: percentile(80, x for x in xs)")
        _dimensionless(lead, "percentile's level")
    if func in ("sum", "min", "max", "mean", "percentile"):
        if is_any(elem):
            return ANY
        if not isinstance(elem, NumT):
            raise SignatureError(f"{func}() needs numeric elements, got {elem.describe()}")
        return elem
    raise SignatureError(f"unknown aggregate {func}")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default 'linear' method), q in [0, 100]."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile level {q} is outside [0, 100]")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


__all__ = [
    "FUNCTIONS", "AGGREGATES", "CONSTANTS", "Function", "SignatureError", "aggregate_type",
    "linear_score", "erf_score", "fft_size", "percentile",
]
