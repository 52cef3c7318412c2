"""Vectorised versions of the function registry (`almarules.dsl.functions`).

Each takes value arrays (or scalars) and returns (values, extra unknown mask): the
rows where the scalar function raises (a domain error) become unknown, as in the
interpreter. Arithmetic is numpy's; `erf` is scipy's (agrees with `math.erf` to
a few ulp), so real-valued results match the interpreter to ~1e-15 relative.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional

import numpy as np
from scipy.special import erf as _erf

from almarules.dsl.functions import fft_size

Result = tuple[np.ndarray, Optional[np.ndarray]]


def _ok(v) -> Result:
    return v, None


@lru_cache(maxsize=1)
def _smooth_sizes() -> np.ndarray:
    """Every even 2,3,5,7-smooth integer up to 2^26 (the FFT-friendly image sizes)."""
    top = 1 << 26
    out = []
    p2 = 2
    while p2 <= top:
        p3 = p2
        while p3 <= top:
            p5 = p3
            while p5 <= top:
                p7 = p5
                while p7 <= top:
                    out.append(p7)
                    p7 *= 7
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return np.array(sorted(out), dtype=np.float64)


def v_fft_size(n) -> Result:
    n = np.asarray(n, dtype=np.float64)
    bad = ~np.isfinite(n)
    safe = np.where(bad, 2.0, n)
    m = np.maximum(2.0, np.ceil(safe - 1e-9))
    sizes = _smooth_sizes()
    idx = np.searchsorted(sizes, m)
    out = np.atleast_1d(sizes[np.minimum(idx, len(sizes) - 1)]).copy()
    for i in np.flatnonzero(np.atleast_1d(idx >= len(sizes))):  # beyond the table: the scalar search
        out[i] = fft_size(float(np.atleast_1d(safe)[i]))
    out = out.reshape(np.shape(m))
    return out, (bad if np.any(bad) else None)


def v_round(x, digits=0.0) -> Result:
    d = np.trunc(np.asarray(digits, dtype=np.float64))
    scale = np.power(10.0, d)
    return np.floor(x * scale + 0.5) / scale, None


def v_linear_score(x, x1, x2, y1, y2) -> Result:
    bad = np.asarray(x1 == x2)
    lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    xc = np.minimum(np.maximum(x, lo), hi)
    with np.errstate(all="ignore"):
        v = y1 + (y2 - y1) * (xc - x1) / (x2 - x1)
    return v, (bad if np.any(bad) else None)


def v_erf_score(r, good, bad_, floor) -> Result:
    bad = np.asarray(good == bad_)
    with np.errstate(all="ignore"):
        slope = 6.0 / math.sqrt(2.0) / (good - bad_)
        offset = 3.0 / math.sqrt(2.0) * (1.0 - 2.0 * good / (good - bad_))
        v = floor + (1.0 - floor) * (_erf(r * slope + offset) + 1.0) / 2.0
    return v, (bad if np.any(bad) else None)


def _domain(fn, bad_of) -> Callable:
    def f(x) -> Result:
        bad = bad_of(x)
        with np.errstate(all="ignore"):
            v = fn(x)
        return v, (bad if np.any(bad) else None)
    return f


def _exp(x) -> Result:
    with np.errstate(all="ignore"):
        v = np.exp(x)
    bad = np.isinf(v) & np.isfinite(x)
    return v, (bad if np.any(bad) else None)


def _nary(ufunc) -> Callable:
    def f(*xs) -> Result:
        v = xs[0]
        for x in xs[1:]:
            v = ufunc(v, x)
        return v, None
    return f


VFUNCS: dict[str, Callable[..., Result]] = {
    "abs": lambda x: _ok(np.abs(x)),
    "sqrt": _domain(np.sqrt, lambda x: np.asarray(x) < 0),
    "log": _domain(np.log, lambda x: np.asarray(x) <= 0),
    "log10": _domain(np.log10, lambda x: np.asarray(x) <= 0),
    "exp": _exp,
    "erf": lambda x: _ok(_erf(x)),
    "floor": lambda x: _ok(np.floor(x)),
    "ceil": lambda x: _ok(np.ceil(x)),
    "round": v_round,
    "clip": lambda x, lo, hi: _ok(np.minimum(np.maximum(x, lo), hi)),
    "min": _nary(np.minimum),
    "max": _nary(np.maximum),
    "linear_score": v_linear_score,
    "erf_score": v_erf_score,
    "fft_size": v_fft_size,
}
