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

from almarules.dsl.functions import even_smooth_sizes
from almarules.dsl.limits import MAX_FFT_SIZE

Result = tuple[np.ndarray, Optional[np.ndarray]]


def _ok(v) -> Result:
    return v, None


@lru_cache(maxsize=1)
def _smooth_sizes() -> np.ndarray:
    """Every even 2,3,5,7-smooth integer up to limits.MAX_FFT_SIZE (the FFT-friendly image sizes)."""
    return np.array(even_smooth_sizes(), dtype=np.float64)


def v_fft_size(n) -> Result:
    """`fft_size` per row; sizes beyond limits.MAX_FFT_SIZE (2^31) or not finite are error values."""
    n = np.asarray(n, dtype=np.float64)
    bad = ~(n <= MAX_FFT_SIZE)  # nan and inf too
    safe = np.where(bad, 2.0, n)
    m = np.maximum(2.0, np.ceil(safe - 1e-9))
    sizes = _smooth_sizes()
    out = sizes[np.searchsorted(sizes, m)]
    return out, (bad if np.any(bad) else None)


def v_round(x, digits=0.0) -> Result:
    """`round_half_up` per row: digits outside [-308, 308] are error values."""
    digits = np.asarray(digits, dtype=np.float64)
    bad = ~((digits >= -308) & (digits <= 308))
    d = np.trunc(np.where(bad, 0.0, digits))
    with np.errstate(all="ignore"):
        scale = np.power(10.0, d)
        scaled = x * scale
        v = np.where(np.abs(scaled) < 2.0 ** 53, np.floor(scaled + 0.5) / scale, x)
    return v, (bad if np.any(bad) else None)


def v_linear_score(x, x1, x2, y1, y2) -> Result:
    bad = np.asarray(x1 == x2)
    lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    xc = np.minimum(np.maximum(x, lo), hi)
    with np.errstate(all="ignore"):
        v = y1 + (y2 - y1) * (xc / 2 - x1 / 2) / (x2 / 2 - x1 / 2)  # as the scalar one: no overflow
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
