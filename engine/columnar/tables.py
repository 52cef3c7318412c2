"""A corpus of datasets as entity tables: one row per entity across all datasets.

The facts come as Arrow columns (engine.corpus: a stored corpus read column by column, or
validated models turned into a batch in memory); a fact column is converted on first use
(only those the rules read), in canonical units; a null is an unknown row.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from almarules.dsl.types import BoolT, CollT, EntityT, EnumT, NumT, Schema, StrT
from almarules.dsl.units import parse_unit
from almarules.engine.columnar.columns import STRINGS, Col, Unsupported, csr
from almarules.engine.corpus.access import FactTables, MemoryTables, contiguous
from almarules.engine.corpus.batch import batch_of_summaries
from almarules.engine.corpus.layout import layout
from almarules.engine.facts.model import KEY_FACTS, Dataset, key_text
from almarules.engine.facts.summary import dump_summary


class Table:
    """The entities of one kind across the corpus (rows grouped by dataset, in entity order)."""

    def __init__(self, kind: str, ds: np.ndarray, backing: object = None, keys: Optional[list] = None):
        self.kind = kind
        self.ds = np.asarray(ds, dtype=np.int64)
        self.n = len(self.ds)
        self.backing = backing  # the facts its rows are (None: created by the rules); evaluations share it
        self._keys = keys  # entity keys (str), or computed by key_fn on first use
        self.live = np.ones(self.n, dtype=bool)
        self.facts: dict[str, Col] = {}
        self.created: dict[str, Col] = {}
        self._rel: Optional[tuple[np.ndarray, np.ndarray]] = None
        self.key_fn: Optional[Callable[[np.ndarray], list]] = None  # rows -> key texts
        self.identity: Optional[np.ndarray] = None  # arange(n), one array (frames recognise their own rows)

    def keys_of(self, rows: np.ndarray) -> list:
        """Key texts of some rows (without building every key of the table)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._keys is not None:
            keys = self._keys
            return [keys[i] for i in rows.tolist()]
        return self.key_fn(rows)

    @property
    def keys(self) -> list:
        if self._keys is None:
            self._keys = self.key_fn(np.arange(self.n, dtype=np.int64))
        return self._keys

    def by_dataset(self, n_datasets: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR of live rows grouped by dataset (row order kept)."""
        if self._rel is None:
            rows = np.flatnonzero(self.live)
            self._rel = csr(self.ds[rows], n_datasets, rows)
        return self._rel

    def changed(self) -> None:
        self._rel = None


def enum_bits(members: Sequence[str]) -> dict[str, int]:
    return {m: i for i, m in enumerate(sorted(members))}


def models_tables(datasets: Sequence[Dataset], names: Optional[Sequence[str]] = None) -> MemoryTables:
    """Validated datasets as in-memory fact tables."""
    names = list(names) if names is not None else [f"dataset {i}" for i in range(len(datasets))]
    return MemoryTables(batch_of_summaries([dump_summary(d) for d in datasets], names, trusted=True))


class Corpus:
    """Datasets as tables; `tables[kind]`, `tables["dataset"]` has one row per dataset.

    `datasets`: fact tables (engine.corpus.access), or validated `Dataset` models."""

    def __init__(self, datasets: Union[FactTables, Sequence[Dataset]], schema: Schema,
                 names: Optional[Sequence[str]] = None):
        self.facts = datasets if isinstance(datasets, FactTables) else models_tables(datasets, names)
        self.schema = schema
        self.n = self.facts.n
        self._names = list(names) if names is not None else None
        self.tables: dict[str, Table] = {"dataset": Table("dataset", np.arange(self.n), self.facts,
                                                          ["dataset"] * self.n)}
        self.bits = {name: enum_bits(e.members) for name, e in schema.enums.items()}
        self._owner_rows: dict[str, np.ndarray] = {}
        self._key_columns: dict[tuple[str, str], pa.Array] = {}  # the facts entity keys are made of

    @property
    def names(self) -> list[str]:
        if self._names is None:
            self._names = self.facts.names
        return self._names

    def table(self, kind: str) -> Optional[Table]:
        """The table of a kind of facts (built on first use), or None."""
        t = self.tables.get(kind)
        if t is None and kind in layout():
            ds, _ = self.facts.structure(kind)
            t = self.tables[kind] = Table(kind, ds, self.facts)
            t.key_fn = lambda rows, kind=kind: self._keys(kind, rows)
        return t

    def owner_rows(self, kind: str) -> np.ndarray:
        """For each row of a nested kind, its owner's row in the owner's table."""
        got = self._owner_rows.get(kind)
        if got is None:
            spec = layout()[kind]
            ds, owner = self.facts.structure(kind)
            if spec.parent == "dataset":
                got = ds
            else:
                first = np.searchsorted(self.table(spec.parent).ds, np.arange(self.n))
                got = first[ds] + owner
            self._owner_rows[kind] = got
        return got

    # ------------------------------------------------------------ fact columns
    def fact(self, kind: str, name: str) -> Col:
        t = self.table(kind)
        col = t.facts.get(name)
        if col is None:
            col = t.facts[name] = self._build(t, name)
        return col

    def _build(self, t: Table, name: str) -> Col:
        info = self.schema.kinds[t.kind][name]
        typ = info.type
        fact = info.fact_name or name
        if isinstance(typ, EntityT):
            return self._nested_one(t, typ.kind)
        if isinstance(typ, CollT) and isinstance(typ.elem, EntityT):
            return self._nested_many(t, fact, typ.elem.kind)
        arr = contiguous(self.facts.column(t.kind, fact))
        unk = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
        if isinstance(typ, NumT):
            scale = parse_unit(info.unit)[0] if info.unit else 1.0
            vals = arr.to_numpy(zero_copy_only=False) if not arr.null_count else \
                pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
            vals = vals.astype(np.float64, copy=False)
            return Col("num", vals * scale if scale != 1.0 else vals, unk)
        if isinstance(typ, BoolT):
            return Col("bool", pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool), unk)
        if isinstance(typ, (StrT, EnumT)):
            return Col("str", _codes(arr), unk)
        if isinstance(typ, CollT) and isinstance(typ.elem, EnumT):
            return Col("set", _bitmasks(arr, enum_bits(typ.elem.members)), unk, ekind=typ.elem.name)
        if isinstance(typ, CollT) and isinstance(typ.elem, NumT):
            scale = parse_unit(info.unit)[0] if info.unit else 1.0
            counts = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            offsets = np.zeros(t.n + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.float64) * scale
            return Col("nums", np.arange(t.n, dtype=np.int64), unk, base=(offsets, flat))
        if isinstance(typ, CollT):
            vals = np.empty(t.n, dtype=object)
            for i, v in enumerate(arr.to_pylist()):
                if v is not None:
                    vals[i] = tuple(v)
            return Col("obj", vals, unk)
        raise Unsupported(f"{t.kind}.{name}: facts of this type")

    def _nested_one(self, owner: Table, kind: str) -> Col:
        child = self.table(kind)
        idx = np.full(owner.n, -1, dtype=np.int64)
        idx[self.owner_rows(kind)] = np.arange(child.n, dtype=np.int64)
        return Col("ent", idx, idx < 0, ekind=kind)

    def _nested_many(self, owner: Table, name: str, kind: str) -> Col:
        child = self.table(kind)
        counts = np.bincount(self.owner_rows(kind), minlength=owner.n)
        offsets = np.zeros(owner.n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        given = contiguous(self.facts.column(owner.kind, name))
        unk = given.is_null().to_numpy(zero_copy_only=False) if given.null_count else None
        return Col("rel", np.arange(owner.n, dtype=np.int64), unk, ekind=kind,
                   base=(offsets, np.arange(child.n, dtype=np.int64)))

    # ------------------------------------------------------------ entity keys
    def _key_column(self, kind: str, name: str) -> pa.Array:
        got = self._key_columns.get((kind, name))
        if got is None:
            got = self._key_columns[(kind, name)] = contiguous(self.facts.column(kind, name))
        return got

    def _keys(self, kind: str, rows: np.ndarray) -> list[str]:
        """The keys of some rows (`key_text` of their key facts, as the interpreter's entities have)."""
        facts = KEY_FACTS.get(kind)
        if facts:
            take = pa.array(rows)
            cols = [self._key_column(kind, f).take(take).to_pylist() for f in facts]
            return [key_text(kind, values) for values in zip(*cols, strict=True)]
        spec = layout()[kind]
        owners = self.owner_rows(kind)[rows]
        if not spec.many:
            return [f"{k}.{spec.attr}" for k in self.table(spec.parent).keys_of(owners)]
        starts = np.searchsorted(self.owner_rows(kind), owners)  # an owner's rows are contiguous, in list order
        return [str(r - s) for r, s in zip(rows.tolist(), starts.tolist(), strict=True)]


def _codes(arr: pa.Array) -> np.ndarray:
    """String values as `STRINGS` codes (-1 for nulls)."""
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    lookup = np.array([STRINGS.code(s) for s in arr.dictionary.to_pylist()] + [-1], dtype=np.int32)
    idx = pc.fill_null(arr.indices, len(arr.dictionary)).to_numpy(zero_copy_only=False)
    return lookup[idx]


def _bitmasks(arr: pa.Array, bits: dict[str, int]) -> np.ndarray:
    """Lists of enum members as bitmasks (0 for an empty or null list)."""
    n = len(arr)
    counts = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.zeros(n, dtype=np.int64)
    if counts.sum() == 0:
        return out
    flat = pc.list_flatten(arr).dictionary_encode()
    member_bits = np.array([1 << bits[m] for m in flat.dictionary.to_pylist()], dtype=np.int64)
    values = member_bits[flat.indices.to_numpy(zero_copy_only=False)]
    has = counts > 0
    starts = np.r_[0, np.cumsum(counts)[:-1]][has]
    out[has] = np.bitwise_or.reduceat(values, starts)
    return out


__all__ = ["Corpus", "Table", "enum_bits", "models_tables"]
