"""The registry of functions callable from rules: their static signature and their
pure implementation. Rule files can call nothing else.

Scalar functions take canonical floats. Aggregates (``count sum min max mean any
all percentile the``) take a generator ``f(x for x in coll where cond)`` or a
collection; they are evaluated by the engine, and only typed here.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

from almarules.dsl.limits import MAX_FFT_SIZE
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
    # halved differences: the same floats (halving is exact), but x2 - x1 cannot overflow
    return y1 + (y2 - y1) * (xc / 2 - x1 / 2) / (x2 / 2 - x1 / 2)


def erf_score(r: float, good: float, bad: float, floor: float) -> float:
    """floor + (1 - floor) * (erf(r*slope + offset) + 1) / 2, slope and offset from good/bad.

    slope = 6/sqrt(2)/(good - bad); offset = 3/sqrt(2) * (1 - 2 good/(good - bad)).
    """
    if good == bad:
        raise ValueError("erf_score is undefined when good == bad")
    slope = 6.0 / math.sqrt(2.0) / (good - bad)
    offset = 3.0 / math.sqrt(2.0) * (1.0 - 2.0 * good / (good - bad))
    return floor + (1.0 - floor) * (math.erf(r * slope + offset) + 1.0) / 2.0


@lru_cache(maxsize=1)
def even_smooth_sizes() -> tuple[int, ...]:
    """Every even integer <= MAX_FFT_SIZE whose prime factors are 2, 3, 5 and 7, ascending."""
    out = []
    p7 = 2
    while p7 <= MAX_FFT_SIZE:
        p5 = p7
        while p5 <= MAX_FFT_SIZE:
            p3 = p5
            while p3 <= MAX_FFT_SIZE:
                p2 = p3
                while p2 <= MAX_FFT_SIZE:
                    out.append(p2)
                    p2 *= 2
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return tuple(sorted(out))


def fft_size(n: float) -> float:
    """Smallest even integer >= n whose prime factors are only 2, 3, 5 and 7.

    A binary search in the (about 10^4) such sizes up to `limits.MAX_FFT_SIZE` (2^31): n above
    that, or not finite, is refused (ValueError, an error value in rules)."""
    if not -math.inf < n <= MAX_FFT_SIZE:
        raise ValueError(f"size {n:g} is beyond the largest FFT size {MAX_FFT_SIZE} (2^31)"
                         if n == n else "size is not a number")
    m = max(2, int(math.ceil(n - 1e-9)))
    sizes = even_smooth_sizes()
    return float(sizes[bisect_left(sizes, m)])


def round_half_up(x: float, digits: float = 0) -> float:
    """x rounded half up to `digits` decimal digits (|digits| at most 308)."""
    if not -308 <= digits <= 308:
        raise ValueError(f"{digits:g} digits is outside [-308, 308]")
    scale = 10.0 ** int(digits)
    scaled = x * scale
    if not abs(scaled) < 2.0 ** 53:  # already integral at this scale (or beyond a float's range)
        return x
    return math.floor(scaled + 0.5) / scale


def _sqrt(x: float) -> float:
    if x < 0:
        raise ValueError(f"square root of a negative number ({x:g})")
    return math.sqrt(x)


def _logarithm(log: Callable[[float], float]) -> Callable[[float], float]:
    def f(x: float) -> float:
        if not x > 0:
            raise ValueError(f"logarithm of {x:g} (needs a positive number)")
        return log(x)
    return f


def _exp(x: float) -> float:
    if x > 709.78:
        raise ValueError(f"e ^ {x:g} overflows (beyond 1.8e308)")
    return math.exp(x)


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
        Function("sqrt", (1, 1), _sqrt_sig, _sqrt, "square root (the unit too)"),
        Function("log", (1, 1), lambda ts: _dimensionless(ts, "log's argument"), _logarithm(math.log), "natural logarithm"),
        Function("log10", (1, 1), lambda ts: _dimensionless(ts, "log10's argument"), _logarithm(math.log10), "base-10 logarithm"),
        Function("exp", (1, 1), lambda ts: _dimensionless(ts, "exp's argument"), _exp, "e to the power x"),
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
        raise ValueError(f"percentile level {q:g} is outside [0, 100]")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


__all__ = [
    "FUNCTIONS", "AGGREGATES", "CONSTANTS", "Function", "SignatureError", "aggregate_type",
    "linear_score", "erf_score", "fft_size", "even_smooth_sizes", "percentile",
]
