"""A corpus of datasets as entity tables: one row per entity across all datasets.

Fact columns are built lazily (only those the rules read), in canonical units,
from the validated `Dataset` models; an absent fact is an unknown row.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from almarules.dsl.types import BoolT, CollT, EntityT, EnumT, NumT, Schema, StrT
from almarules.dsl.units import parse_unit
from almarules.engine.columnar.columns import STRINGS, Col, Unsupported, csr
from almarules.engine.facts.model import Dataset
from almarules.engine.evaluate.world import entity_key


class Table:
    """The entities of one kind across the corpus (rows grouped by dataset, in entity order)."""

    def __init__(self, kind: str, ds: np.ndarray, models: Optional[list], keys: Optional[list] = None,
                 within: Optional[np.ndarray] = None):
        self.kind = kind
        self.within = within  # position of each row in its owner's list (default: in its dataset's)
        self.ds = np.asarray(ds, dtype=np.int64)
        self.n = len(self.ds)
        self.models = models
        self._keys = keys  # entity keys (str); fact tables compute them on first use
        self.live = np.ones(self.n, dtype=bool)
        self.facts: dict[str, Col] = {}
        self.created: dict[str, Col] = {}
        self._rel: Optional[tuple[np.ndarray, np.ndarray]] = None
        self.key_fn: Optional[Callable[[np.ndarray], list]] = None  # created tables: rows -> key texts
        self.identity: Optional[np.ndarray] = None  # arange(n), one array (frames recognise their own rows)

    def keys_of(self, rows: np.ndarray) -> list:
        """Key texts of some rows (without building every key of the table)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._keys is not None:
            keys = self._keys
            return [keys[i] for i in rows.tolist()]
        if self.key_fn is not None:
            return self.key_fn(rows)
        within = self.within[rows] if self.within is not None else rows - self._first_rows()[rows]
        models = self.models
        return [entity_key(self.kind, models[r], j) for r, j in zip(rows.tolist(), within.tolist())]

    def _first_rows(self) -> np.ndarray:
        """For each row, the first row of its dataset (rows are grouped by dataset)."""
        if self.n == 0:
            return np.zeros(0, dtype=np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(self.ds)) + 1]
        return np.repeat(starts, np.diff(np.r_[starts, self.n]))

    @property
    def keys(self) -> list:
        if self._keys is None and self.key_fn is not None:
            self._keys = self.key_fn(np.arange(self.n, dtype=np.int64))
        if self._keys is None and self.within is not None:
            self._keys = [entity_key(self.kind, m, j) for m, j in zip(self.models, self.within.tolist())]
        if self._keys is None:
            starts = np.r_[0, np.flatnonzero(np.diff(self.ds)) + 1]
            first = np.repeat(starts, np.diff(np.r_[starts, self.n])).tolist() if self.n else []
            self._keys = [entity_key(self.kind, m, i - f) for i, (m, f) in enumerate(zip(self.models, first))]
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


class Corpus:
    """Datasets as tables; `tables[kind]`, `tables["dataset"]` has one row per dataset."""

    def __init__(self, datasets: Sequence[Dataset], schema: Schema, names: Optional[Sequence[str]] = None):
        self.datasets = list(datasets)
        self.names = list(names) if names is not None else [f"dataset {i}" for i in range(len(datasets))]
        self.schema = schema
        self.n = len(self.datasets)
        self.tables: dict[str, Table] = {
            "dataset": Table("dataset", np.arange(self.n), self.datasets, ["dataset"] * self.n)}
        self.parents: dict[str, tuple[str, str]] = {}  # nested kind -> (owner kind, attribute)
        self.fact_collections = {kind: coll for coll, kind in schema.collections.items()
                                 if kind in schema.kinds and _is_fact_collection(schema, coll)}
        self.bits = {name: enum_bits(e.members) for name, e in schema.enums.items()}

    def table(self, kind: str) -> Optional[Table]:
        """The table of a kind of facts (built on first use), or None."""
        t = self.tables.get(kind)
        if t is None and kind in self.fact_collections:
            t = self.tables[kind] = self._collection_table(kind, self.fact_collections[kind])
        return t

    def _collection_table(self, kind: str, coll: str) -> Table:
        models: list = []
        counts = np.zeros(self.n, dtype=np.int64)
        for i, d in enumerate(self.datasets):
            items = getattr(d, coll, None)
            if items:
                models.extend(items)
                counts[i] = len(items)
        return Table(kind, np.repeat(np.arange(self.n, dtype=np.int64), counts), models)

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
        raw = [getattr(m, fact, None) for m in t.models]
        missing = None in raw
        unk = np.fromiter((v is None for v in raw), dtype=bool, count=t.n) if missing else None
        if isinstance(typ, NumT):
            scale = parse_unit(info.unit)[0] if info.unit else 1.0
            vals = np.array([0.0 if v is None else v for v in raw] if missing else raw, dtype=np.float64)
            return Col("num", vals * scale if scale != 1.0 else vals, unk)
        if isinstance(typ, BoolT):
            return Col("bool", np.array([bool(v) for v in raw] if missing else raw, dtype=bool), unk)
        if isinstance(typ, (StrT, EnumT)):
            codes, unk = STRINGS.encode([None if v is None else str(v) for v in raw])
            return Col("str", codes, unk)
        if isinstance(typ, EntityT):
            return self._nested_one(t, name, typ.kind, raw)
        if isinstance(typ, CollT) and isinstance(typ.elem, EntityT):
            return self._nested_many(t, name, typ.elem.kind, raw)
        if isinstance(typ, CollT) and isinstance(typ.elem, EnumT):
            bits = enum_bits(typ.elem.members)
            masks: dict[tuple, int] = {}
            vals = np.zeros(t.n, dtype=np.int64)
            for i, v in enumerate(raw):
                if v:
                    key = tuple(v)
                    m = masks.get(key)
                    if m is None:
                        m = masks[key] = sum(1 << bits[x] for x in set(v))
                    vals[i] = m
            return Col("set", vals, unk, ekind=typ.elem.name)
        if isinstance(typ, CollT) and isinstance(typ.elem, NumT):
            scale = parse_unit(info.unit)[0] if info.unit else 1.0
            counts = np.fromiter((len(v) if v else 0 for v in raw), dtype=np.int64, count=t.n)
            offsets = np.zeros(t.n + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            flat = np.array([x for v in raw if v for x in v], dtype=np.float64) * scale
            return Col("nums", np.arange(t.n, dtype=np.int64), unk, base=(offsets, flat))
        if isinstance(typ, CollT):
            scale = None
            vals = np.empty(t.n, dtype=object)
            for i, v in enumerate(raw):
                if v is not None:
                    vals[i] = tuple(float(x) * scale for x in v) if scale else tuple(v)
            return Col("obj", vals, unk)
        raise Unsupported(f"{t.kind}.{name}: facts of this type")

    def _nested_table(self, owner: Table, name: str, kind: str) -> Optional[Table]:
        have = self.parents.get(kind)
        if have is not None and have != (owner.kind, name):
            raise Unsupported(f"{kind} entities nested in both {have[0]}.{have[1]} and {owner.kind}.{name}")
        return self.tables.get(kind) if have else None

    def _nested_one(self, owner: Table, name: str, kind: str, raw: list) -> Col:
        self._nested_table(owner, name, kind)
        idx = np.full(owner.n, -1, dtype=np.int64)
        ds, models, keys = [], [], []
        for i, v in enumerate(raw):
            if v is not None:
                idx[i] = len(models)
                ds.append(owner.ds[i])
                models.append(v)
                keys.append(f"{owner.keys[i] if owner.keys else i}.{name}")
        self.tables[kind] = Table(kind, np.array(ds, dtype=np.int64), models, keys)
        self.parents[kind] = (owner.kind, name)
        return Col("ent", idx, idx < 0, ekind=kind)

    def _nested_many(self, owner: Table, name: str, kind: str, raw: list) -> Col:
        self._nested_table(owner, name, kind)
        counts = np.zeros(owner.n, dtype=np.int64)
        models: list = []
        for i, v in enumerate(raw):
            if v:
                models.extend(v)
                counts[i] = len(v)
        offsets = np.zeros(owner.n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        within = np.arange(len(models)) - np.repeat(offsets[:-1], counts)
        self.tables[kind] = Table(kind, np.repeat(owner.ds, counts), models, within=within)
        self.parents[kind] = (owner.kind, name)
        unk = np.fromiter((v is None for v in raw), dtype=bool, count=owner.n)
        return Col("rel", np.arange(owner.n, dtype=np.int64), unk, ekind=kind,
                   base=(offsets, np.arange(len(models), dtype=np.int64)))


def _is_fact_collection(schema: Schema, coll: str) -> bool:
    info = schema.kinds["dataset"].get(coll)
    return info is not None and info.origin == "fact"


__all__ = ["Corpus", "Table", "enum_bits"]
