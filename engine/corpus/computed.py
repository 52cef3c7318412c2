"""The computed facts of the facts models (``spw.bandwidth``, ``field.is_mosaic`` ...), column by
column: the same formulas as the models' properties, in the same floating-point order, so the
stored values equal those a validated `Dataset` computes (tests/engine/corpus checks it)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from almarules.engine.facts.model import measurement_key
from almarules.kernels.segments import segment_reduce

Columns = dict[str, pa.Array]


def _num(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64 with NaN for nulls, known mask)."""
    x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    known = ~arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(len(arr), dtype=bool)
    return x, known


def _float(x: np.ndarray, known: np.ndarray) -> pa.Array:
    return pa.array(np.where(known, x, 0.0), type=pa.float64(), mask=~known)


def _from_owned(values: pa.Array, owner_row: np.ndarray, n_owners: int) -> pa.Array:
    """Each owner's value of its (single) nested entity; null where it has none."""
    x, known = _num(values)
    out = np.zeros(n_owners)
    has = np.zeros(n_owners, dtype=bool)
    out[owner_row] = x
    has[owner_row] = known
    return _float(out, has)


def eb(cols: Columns, children: dict[str, tuple[Columns, np.ndarray]], n: int) -> Columns:
    stats, owner = children["baselinestats"]
    return {"l80": _from_owned(stats["l80"], owner, n), "l75": _from_owned(stats["l75"], owner, n)}


def spw(cols: Columns, children: dict, n: int) -> Columns:
    width, w_known = _num(cols["channel_width"])
    half = np.abs(np.where(w_known, width, 0.0)) / 2
    freqs = cols["channel_frequencies"]
    counts = pc.list_value_length(freqs).fill_null(0).to_numpy(zero_copy_only=False)
    listed = counts > 0
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    if listed.any():
        flat = pc.list_flatten(freqs).to_numpy(zero_copy_only=False)
        starts = np.r_[0, np.cumsum(counts)[:-1]][listed]
        lo[listed] = np.minimum.reduceat(flat, starts) - half[listed]
        hi[listed] = np.maximum.reduceat(flat, starts) + half[listed]
    start, s_known = _num(cols["start_frequency"])
    nchan, n_known = _num(cols["nchan"])
    ranged = ~listed & s_known & w_known & n_known & (nchan != 0)
    last = start + (nchan - 1) * width
    lo = np.where(ranged, np.minimum(start, last) - half, lo)
    hi = np.where(ranged, np.maximum(start, last) + half, hi)
    known = listed | ranged
    return {"min_frequency": _float(lo, known), "max_frequency": _float(hi, known),
            "centre_frequency": _float((lo + hi) / 2, known), "bandwidth": _float(hi - lo, known)}


def field(cols: Columns, children: dict, n: int) -> Columns:
    count, known = _num(cols["pointings"])
    pts, owner = children["pointing"]
    spread = np.zeros(n)
    for name in ("ra_offset", "dec_offset"):
        x, k = _num(pts[name])
        x = np.where(k, x, 0.0)  # an offset not given counts as 0, as the model's property
        highest, _ = segment_reduce(owner, x, n, np.maximum, -np.inf)
        lowest, _ = segment_reduce(owner, x, n, np.minimum, np.inf)
        extent = highest - lowest
        spread = np.maximum(spread, np.where(count > 0, extent, 0.0))
    return {"is_mosaic": pa.array(count > 1, mask=~known), "pointing_spread": _float(spread, known)}


def scan(cols: Columns, children: dict, n: int) -> Columns:
    start, s = _num(cols["start"])
    end, e = _num(cols["end"])
    return {"duration": _float(end - start, s & e)}


def weight(cols: Columns, children: dict, n: int) -> Columns:
    w, known = _num(cols["sum_weight"])
    known = known & (w != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"sensitivity": _float(1.0 / np.sqrt(np.where(known, w, 1.0)), known)}


def measurement(cols: Columns, children: dict, n: int) -> Columns:
    keys = [measurement_key(f, i, s, m) if s is not None else None for f, i, s, m in zip(
        cols["field"].to_pylist(), cols["intent"].to_pylist(), cols["spws"].to_pylist(), cols["specmode"].to_pylist(),
        strict=True)]
    return {"key": pa.array(keys, type=pa.string())}


COMPUTE: dict[str, Callable[[Columns, dict, int], Columns]] = {
    "eb": eb, "spw": spw, "field": field, "scan": scan, "weight": weight, "measurement": measurement}


def computed_columns(kind: str, cols: Columns, children: dict[str, tuple[Columns, np.ndarray]],
                     n: int) -> Optional[Columns]:
    """The computed columns of a table of `n` rows (children: kind -> (columns, owner row of each))."""
    fn = COMPUTE.get(kind)
    return fn(cols, children, n) if fn is not None else None


__all__ = ["computed_columns", "COMPUTE"]
