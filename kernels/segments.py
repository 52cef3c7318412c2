"""Reductions over segments: rows grouped by an owner index (sorted, each owner's rows together),
as the corpus tables and the vectorised evaluator lay out entities of many datasets."""

from __future__ import annotations

import numpy as np


def segment_reduce(owner: np.ndarray, x: np.ndarray, n: int, ufunc: np.ufunc,
                   empty: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``ufunc.reduce`` of the values `x` of each of `n` owners (`owner[i]`: row i's owner, rows
    sorted by owner): (per owner the result, `empty` for an owner without rows; whether it has rows)."""
    out = np.full(n, empty, dtype=x.dtype if x.dtype != bool else np.float64)
    has = np.zeros(n, dtype=bool)
    if len(owner):
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[owner[starts]] = ufunc.reduceat(x, starts)
        has[owner[starts]] = True
    return out, has


__all__ = ["segment_reduce"]
