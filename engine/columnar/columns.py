"""Columns: one value per row of an entity table (or of an expanded frame), with an
unknown mask, and the segment operations aggregates reduce with.

Representations (``Col.t``):
  num   float64, canonical units          bool  bool
  str   int32 codes into `STRINGS`        ent   int64 row index into the table of `ekind`
  set   int64 bitmask of enum members     rel   int64 owner index into `base` (CSR offsets, items)
  nums  int64 owner index into `base` (CSR offsets, float values): lists of numbers
  obj   object (tuples: lists of numbers or strings; rarely used, evaluated in Python)
A value is a numpy scalar when it is the same on every row (constants).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np


class Unsupported(Exception):
    """A construct the vectorised evaluator does not compile (the corpus falls back)."""


class Interner:
    """Strings <-> int32 codes, shared by every column (so equal strings have equal codes)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.texts: list[str] = []

    def code(self, text: str) -> int:
        c = self.codes.get(text)
        if c is None:
            c = self.codes[text] = len(self.texts)
            self.texts.append(text)
        return c

    def encode(self, values: list) -> tuple[np.ndarray, Optional[np.ndarray]]:
        codes = self.codes
        out = np.empty(len(values), dtype=np.int32)
        unk = None
        for i, v in enumerate(values):
            if v is None:
                if unk is None:
                    unk = np.zeros(len(values), dtype=bool)
                unk[i] = True
                out[i] = -1
                continue
            c = codes.get(v)
            out[i] = c if c is not None else self.code(v)
        return out, unk

    def text(self, code: int) -> str:
        return self.texts[code]

    def mark(self) -> int:
        """How many strings are interned now (for `reset`)."""
        return len(self.texts)

    def reset(self, mark: int) -> None:
        """Forget the strings interned since `mark` (a worker evaluating part after part of a corpus
        keeps no codes of earlier parts: nothing that holds them may outlive the part)."""
        for text in self.texts[mark:]:
            del self.codes[text]
        del self.texts[mark:]

    def array(self) -> np.ndarray:
        return np.array(self.texts, dtype=object)


STRINGS = Interner()


class Col:
    __slots__ = ("t", "v", "unk", "ekind", "base")

    def __init__(self, t: str, v: Any, unk: Optional[np.ndarray] = None, ekind: Optional[str] = None,
                 base: Optional[tuple[np.ndarray, np.ndarray]] = None):
        self.t = t
        self.v = v
        self.unk = unk if unk is None or unk.any() else None
        self.ekind = ekind
        self.base = base

    def __repr__(self) -> str:
        return f"Col({self.t}{'/' + self.ekind if self.ekind else ''}, {self.v!r}, unk={self.unk!r})"

    def full(self, n: int) -> np.ndarray:
        """The values as an array of n rows (constants broadcast)."""
        v = self.v
        if isinstance(v, np.ndarray) and v.ndim == 1:
            return v
        if self.t == "obj":
            out = np.empty(n, dtype=object)
            for i in range(n):
                out[i] = v
            return out
        return np.full(n, v)

    def take(self, idx: np.ndarray) -> "Col":
        """Rows idx of this column (a gather)."""
        v = self.v
        if isinstance(v, np.ndarray) and v.ndim == 1:
            v = v[idx]
        unk = self.unk[idx] if self.unk is not None else None
        return Col(self.t, v, unk, self.ekind, self.base)


def unk_or(*cols: Any) -> Optional[np.ndarray]:
    """The union of unknown masks (None: all known)."""
    out = None
    for c in cols:
        u = c.unk if isinstance(c, Col) else c
        if u is None:
            continue
        out = u if out is None else (out | u)
    return out


def mask_of(u: Optional[np.ndarray], n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if u is None else u


def truth(c: Col, n: int) -> np.ndarray:
    """Rows where a boolean column is known and true."""
    v = np.broadcast_to(np.asarray(c.v, dtype=bool), (n,))
    return v & ~c.unk if c.unk is not None else v.copy()


def falsity(c: Col, n: int) -> np.ndarray:
    v = np.broadcast_to(np.asarray(c.v, dtype=bool), (n,))
    return ~v & ~c.unk if c.unk is not None else ~v


# ---------------------------------------------------------------- CSR relations
def csr(owner: np.ndarray, n_owners: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group `items` by `owner` (owner sorted or not; item order kept within an owner)."""
    counts = np.bincount(owner, minlength=n_owners)
    offsets = np.zeros(n_owners + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if len(owner) < 2 or bool(np.all(owner[1:] >= owner[:-1])):  # already grouped (tables are)
        return offsets, items
    return offsets, items[np.argsort(owner, kind="stable")]


def expand(owner: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row r: the items of owner[r]. Returns (parent row, item, position within the row's items)."""
    owner = np.asarray(owner, dtype=np.int64)
    starts = offsets[owner]
    counts = offsets[owner + 1] - starts
    total = int(counts.sum())
    parent = np.repeat(np.arange(len(owner), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    within = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
    elem = items[np.repeat(starts, counts) + within]
    return parent, elem, within


def rel_counts(c: Col, n: int) -> np.ndarray:
    offsets = c.base[0]
    owner = np.broadcast_to(np.asarray(c.v, dtype=np.int64), (n,))
    return offsets[owner + 1] - offsets[owner]


# ---------------------------------------------------------------- segment reductions
def seg_sum(parent: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    """Per-segment sums, added in row order (equal to Python's sum of the same values)."""
    return np.bincount(parent, weights=vals, minlength=n).astype(np.float64)


def seg_count(parent: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(parent, minlength=n).astype(np.float64)


def seg_any(parent: np.ndarray, flags: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(parent[flags], minlength=n) > 0


def first_of(parent: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of each segment's first row, and whether the segment is non-empty."""
    idx = np.full(n, -1, dtype=np.int64)
    if len(parent):
        starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        idx[parent[starts]] = starts
    return idx, idx >= 0
