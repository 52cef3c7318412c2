"""Raw column values into Arrow arrays, checked as the facts schema checks them.

Plain values (numbers for a quantity, whole numbers for a count, strings, booleans) convert at
C speed; any other value (``"230 GHz"``, ``"3"``, ``true`` where a number is expected) is
validated alone by the field's own pydantic validator, so it is accepted or refused exactly as a
summary loaded one by one would be. The bounds, enum members and list lengths are then checked
per column with numpy. Each failure is `fail(row, text)` (row of the raw column).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from almarules.engine.corpus.flatten import MISSING
from almarules.engine.corpus.layout import Check, ColumnSpec
from almarules.engine.facts.summary import MAX_FACT_INTEGER, short_text

Fail = Callable[[int, str], None]
_PLAIN = {"float": {float, int}, "int": {int}, "bool": {bool}, "str": {str}}


def convert_column(col: ColumnSpec, values: list, fail: Fail) -> pa.Array:
    """The stored array of one column (its values as given; `fail` for each invalid row)."""
    if col.structure:
        return pa.array(values, type=col.arrow_type)
    if col.many:
        return _lists(col, values, fail)
    values = _plain(col, values, fail)
    arr = pa.array(values, type=col.value_type)
    _bounds(col.check, col.value, arr, fail)
    return arr


def _plain(col: ColumnSpec, values: list, fail: Fail, optional: bool = True) -> list:
    """`values` with every value that is not plain validated alone (None where it fails)."""
    plain = _PLAIN[col.value]
    kinds = set(map(type, values))
    if optional and not col.required:
        kinds.discard(type(None))
    if kinds <= plain and (col.value not in ("float", "int") or int not in kinds or _small(values)):
        return values
    out = list(values)
    for i, v in enumerate(out):
        if type(v) in plain and not (type(v) is int and abs(v) > MAX_FACT_INTEGER):
            continue
        if v is None and optional and not col.required:
            continue
        out[i] = None
        if v is MISSING:
            fail(i, "required field is missing")
        elif type(v) is int:
            fail(i, f"an integer of {len(str(abs(v)))} digits: at most {MAX_FACT_INTEGER} (the limit)")
        else:
            try:
                out[i] = col.adapter.validate_python(v)
            except ValidationError as exc:
                fail(i, f"{exc.errors()[0]['msg']} (got {short_text(v)})")
    return out


def _small(values: list) -> bool:
    """No integer beyond MAX_FACT_INTEGER (every integer fact is exact as a float below it)."""
    ints = [v for v in values if type(v) is int]
    return not ints or (max(ints) <= MAX_FACT_INTEGER and min(ints) >= -MAX_FACT_INTEGER)


def _lists(col: ColumnSpec, rows: list, fail: Fail) -> pa.Array:
    """A list column: each row's list checked for length, its items converted and checked together."""
    counts = np.zeros(len(rows), dtype=np.int64)
    absent = np.zeros(len(rows), dtype=bool)
    flat: list = []
    for i, v in enumerate(rows):
        if v is None or v is MISSING:
            absent[i] = True
            if col.required:
                fail(i, "required field is missing" if v is MISSING else "Input should be a valid list (got None)")
            continue
        if type(v) is not list:
            if isinstance(v, tuple):
                v = list(v)
            else:
                absent[i] = True
                fail(i, f"Input should be a valid {'tuple' if col.length else 'list'} (got {short_text(v)})")
                continue
        if col.max_len is not None and len(v) > col.max_len:
            absent[i] = True
            fail(i, f"{len(v)} items, more than the limit of {col.max_len} (far above real data: see "
                    "'almarules schema')")
            continue
        if col.length is not None and len(v) != col.length:
            absent[i] = True
            fail(i, f"expected {col.length} items, not {len(v)}")
            continue
        counts[i] = len(v)
        flat.extend(v)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    def fail_item(j: int, text: str) -> None:
        i = int(np.searchsorted(offsets, j, side="right") - 1)
        fail(i, f"[{j - offsets[i]}]: {text}")

    items = _plain(col, flat, fail_item, optional=False)
    arr = pa.array(items, type=col.value_type)
    _bounds(col.check, col.value, arr, fail_item)
    mask = pa.array(absent) if absent.any() else None
    return pa.LargeListArray.from_arrays(pa.array(offsets), arr, mask=mask).cast(col.arrow_type)


def _bounds(check: Check, value: str, arr: pa.Array, fail: Fail) -> None:
    """The bounds, finiteness and enum membership of every value (vectorised)."""
    if value == "str":
        if check.allowed is not None and len(arr):
            bad = pc.and_(pc.invert(pc.is_in(arr, value_set=pa.array(check.allowed))), pc.is_valid(arr))
            for i in np.flatnonzero(bad.to_numpy(zero_copy_only=False)).tolist():
                fail(i, f"{short_text(arr[i].as_py())} is not one of {', '.join(check.allowed)}")
        return
    if value not in ("float", "int") or not len(arr) or (check.gt is None and check.ge is None and
                                                         check.le is None and not check.nonzero and not check.finite):
        return
    x = arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    valid = ~arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(len(x), dtype=bool)
    u = f" {check.unit}" if check.unit else ""
    done = np.zeros(len(x), dtype=bool)
    with np.errstate(invalid="ignore"):
        tests = []
        if check.finite:
            tests.append((~np.isfinite(x), "must be a finite number"))
        skip = np.isnan(x) if check.nan_ok else np.zeros(len(x), dtype=bool)
        if check.gt is not None:
            tests.append((~(x > check.gt) & ~skip, f"must be greater than {check.gt:g}{u}"))
        if check.ge is not None:
            tests.append((~(x >= check.ge) & ~skip, f"must be at least {check.ge:g}{u}"))
        if check.le is not None:
            tests.append((~(x <= check.le) & ~skip, f"must be at most {check.le:g}{u}"))
        if check.nonzero:
            tests.append((x == 0, "must not be 0"))
    for bad, text in tests:
        rows = np.flatnonzero(bad & valid & ~done)
        done[rows] = True
        for i in rows.tolist():
            fail(i, f"{text} (got {x[i]:g}{u})")


__all__ = ["convert_column"]
