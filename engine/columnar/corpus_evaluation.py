"""`CorpusEvaluation`: one rule set's columns over a corpus, computed on demand, and its driver."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Optional

import numpy as np

from almarules.dsl import ast as A
from almarules.dsl.checker import plural
from almarules.engine.columnar.cascade import CascadeResult, run_cascade
from almarules.engine.columnar.columns import STRINGS, Col, Unsupported, mask_of, truth, unk_or
from almarules.engine.columnar.derived import derive_column, overlay_column, score_column, table_lookup
from almarules.engine.columnar.emits import emit_collection, reemit_collection
from almarules.engine.columnar.membership import lookup, lookup_entity, member
from almarules.engine.columnar.tables import Corpus, Table
from almarules.engine.columnar.vcompile import Frame

if TYPE_CHECKING:
    from almarules.engine.columnar.vevaluate import VProgram

_COMPUTED = ("derived", "score", "outcome")  # origins whose columns a change can invalidate


class CorpusEvaluation:
    """Every derived value of every entity of every dataset of a corpus, as memoised columns;
    `run` applies the cascades, then evaluates recipes and warnings."""

    def __init__(self, vp: VProgram, corpus: Corpus, overrides: dict[str, float]):
        self.vp = vp
        self.p = vp.p
        self.corpus = corpus
        self.schema = vp.p.schema
        self.params: dict[str, np.ndarray] = _param_columns(vp.p.params, overrides, corpus.n)
        self.param_unk: dict[str, np.ndarray] = {}
        self.memo: dict[tuple[str, str], Col] = {}
        self.join_cache: dict[tuple, tuple] = {}  # sorted join keys of fact collections
        self.expand_cache: dict[tuple, tuple] = {}  # (owner, base) ids -> (owner, base, parent, element)
        self.tables: dict[str, Table] = {}  # this evaluation's views of the corpus tables, and created ones
        self.overlay: dict[tuple[str, str], tuple[np.ndarray, Col]] = {}  # values set by cascades: (mask, values)
        self.reasons: dict[tuple[str, str], np.ndarray] = {}  # score -> bit i set when term i applied
        self.coll_unknown: dict[str, np.ndarray] = {}  # created kind -> datasets whose collection is unknown
        self.cascades: list[CascadeResult] = []
        self.outcomes: dict[str, np.ndarray] = {}  # cascade -> outcome text per dataset, once finished
        self.warnings: list[tuple[A.Warn, np.ndarray, np.ndarray]] = []  # (decl, fired, unknown)
        self.stages: dict[str, list[tuple[A.Stage, np.ndarray, np.ndarray]]] = {}
        self._active: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ access
    def param(self, name: str, ds: np.ndarray) -> Col:
        unk = self.param_unk.get(name)
        values = self.params[name]
        return Col("str" if values.dtype == np.int32 else "num", values[ds], unk[ds] if unk is not None else None)

    def table_of(self, kind: str) -> Table:
        """This evaluation's table of a kind (created collections are emitted on first use)."""
        t = self.tables.get(kind)
        if t is not None:
            return t
        if kind in self.vp.collections:
            emit_collection(self, kind)
            return self.tables[kind]
        base = self.corpus.table(kind)
        if base is None:
            raise Unsupported(f"no table of {kind}")
        t = self.tables[kind] = copy.copy(base)  # facts shared; which rows are live is this evaluation's
        t.live = np.ones(t.n, dtype=bool)
        t.changed()
        return t

    def frame(self, kind: str) -> Frame:
        """Every row of a kind: the frame its rules are evaluated in."""
        t = self.table_of(kind)
        if kind == "dataset":
            return Frame(t.n, t.ds, {"dataset": Col("ent", _identity_of(t), ekind="dataset")})
        return Frame(t.n, t.ds, {"dataset": Col("ent", t.ds, ekind="dataset"),
                                 kind: Col("ent", _identity_of(t), ekind=kind)})

    def attr_of(self, obj: Col, attr: str, n: int) -> Col:
        """``obj.attr`` for n rows of entities of one kind."""
        if obj.t != "ent":
            raise Unsupported(f"attribute .{attr} of a {obj.t}")
        full = self.column(obj.ekind, attr)
        t = self.table_of(obj.ekind)
        if obj.unk is None and obj.v is t.identity:
            return full  # every row of the kind, in order: the column itself
        idx = np.broadcast_to(np.asarray(obj.v, dtype=np.int64), (n,))
        if t.n == 0:
            return Col(full.t, np.zeros(n, dtype=np.asarray(full.v).dtype), np.ones(n, dtype=bool), full.ekind,
                       full.base)
        if obj.unk is not None:
            idx = np.where(obj.unk, 0, idx)
        got = full.take(idx)
        return Col(got.t, got.v, unk_or(got, obj), got.ekind, got.base)

    def column(self, kind: str, attr: str) -> Col:
        """The column of `kind.attr` over every row of the kind (memoised until invalidated)."""
        key = (kind, attr)
        c = self.memo.get(key)
        if c is not None:
            return c
        origin = self.p.origins[kind].get(attr)
        if origin == "fact":
            c = self._fact_column(kind, attr)
        elif origin == "builtin":
            c = self.key_codes(kind)
        elif origin == "created":
            c = self._created_column(kind, attr)
        elif origin == "outcome":
            c = self._outcome_column(attr)
        elif origin in ("derived", "score"):
            c = self._computed_column(kind, attr, origin)
        else:
            raise Unsupported(f"{kind}.{attr}")
        self.memo[key] = c
        return c

    def _fact_column(self, kind: str, attr: str) -> Col:
        if kind == "dataset" and attr in self.schema.collections:
            return self._collection_rel(self.schema.collections[attr], self.corpus.fact("dataset", attr).unk)
        return self.corpus.fact(kind, attr)

    def _created_column(self, kind: str, attr: str) -> Col:
        if kind == "dataset":
            ck = self.schema.collections[attr]
            self.table_of(ck)
            return self._collection_rel(ck, self.coll_unknown.get(ck))
        return self.table_of(kind).created[attr]

    def _outcome_column(self, attr: str) -> Col:
        cascade = self.p.outcome_of[attr]
        if cascade not in self.outcomes:
            return Col("str", np.zeros(self.corpus.n, dtype=np.int32), np.ones(self.corpus.n, dtype=bool))
        codes, _ = STRINGS.encode(self.outcomes[cascade].tolist())
        return Col("str", codes)

    def _computed_column(self, kind: str, attr: str, origin: str) -> Col:
        """A derived or scored column, with the values cascades set laid over it."""
        key = (kind, attr)
        if key in self._active:
            raise Unsupported(f"{kind}.{attr} depends on itself")
        self._active.add(key)
        try:
            c = derive_column(self, kind, attr) if origin == "derived" else score_column(self, kind, attr)
        finally:
            self._active.discard(key)
        hit = self.overlay.get(key)
        if hit is not None:
            c = overlay_column(c, hit, self.table_of(kind).n)
        return c

    def _collection_rel(self, kind: str, unk: Optional[np.ndarray]) -> Col:
        t = self.table_of(kind)
        return Col("rel", np.arange(self.corpus.n, dtype=np.int64), unk, ekind=kind,
                   base=t.by_dataset(self.corpus.n))

    def key_codes(self, kind: str) -> Col:
        """The entity keys of a kind as string codes."""
        t = self.table_of(kind)
        c = t.facts.get("key")
        if c is None:
            codes, _ = STRINGS.encode(t.keys)
            c = t.facts["key"] = Col("str", codes)
        return c

    def set_live(self, table: Table, live: np.ndarray) -> None:
        """Change which rows of a table are live, and forget what depends on its collection."""
        table.live = live
        table.changed()
        self.invalidate({plural(table.kind)})

    # ------------------------------------------------------------ what compiled expressions call
    def table(self, name: str, x: Col, fr: Frame) -> Col:
        """The table or band `name` at x."""
        return table_lookup(self, name, x, fr)

    def member(self, a: Col, b: Col, n: int) -> np.ndarray:
        """``a in b`` for a set of enum members, a per-row collection, or tuples."""
        return member(self, a, b, n)

    def lookup_entity(self, coll: Col, ent: Col, n: int) -> Col:
        """``lookup(coll, x.key)``."""
        return lookup_entity(self, coll, ent, n)

    def lookup(self, coll: Col, key: Col, n: int) -> Col:
        """The element of each row's collection whose key is `key` (first match), else unknown."""
        return lookup(self, coll, key, n)

    # ------------------------------------------------------------ driver
    def run(self) -> None:
        """Run the cascades in order, then evaluate the recipes' stages and the warnings."""
        for vc in self.vp.cascades:
            run_cascade(self, vc)
        for name, stages in self.vp.recipes.items():
            self.stages[name] = self._stages(stages)
        dsf = self.frame("dataset")
        for decl, when in self.vp.warns:
            c = when(self, dsf)
            self.warnings.append((decl, truth(c, dsf.n), mask_of(c.unk, dsf.n)))

    def _stages(self, stages: list) -> list[tuple[A.Stage, np.ndarray, np.ndarray]]:
        """Per stage of a recipe: (decl, runs, unknown) per dataset."""
        fr = self.frame("dataset")
        out = []
        for st, when in stages:
            if when is None:
                out.append((st, np.ones(fr.n, dtype=bool), np.zeros(fr.n, dtype=bool)))
                continue
            c = when(self, fr)
            out.append((st, truth(c, fr.n), mask_of(c.unk, fr.n)))
        return out

    def compute_all(self) -> None:
        """Compute every derived and scored column of every kind (what a report shows)."""
        for kind, attrs in self.schema.kinds.items():
            if kind != "dataset" and plural(kind) not in self.schema.collections:
                continue
            for attr, info in attrs.items():
                if info.origin in _COMPUTED:
                    self.column(kind, attr)

    def invalidate(self, changed: set[str]) -> None:
        """Forget every column whose value can depend on a changed name."""
        deps = self.vp.deps
        for kind in list(self.vp.collections):
            coll = plural(kind)
            if kind in self.tables and any(deps.touches(m, changed) for m in deps.direct.get((None, coll), ())
                                           if m != coll):
                reemit_collection(self, kind)
                return
        for key in list(self.memo):
            kind, attr = key
            origin = self.p.origins[kind].get(attr)
            if origin in _COMPUTED or (kind == "dataset" and origin in ("created", "fact")
                                       and attr in self.schema.collections):
                if deps.touches(attr, changed, kind if (kind, attr) in deps.direct else None):
                    del self.memo[key]


def _param_columns(params: dict, overrides: dict[str, float], n: int) -> dict[str, np.ndarray]:
    """Each parameter (or its override) as a column of n datasets: float64, or string codes for words."""
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        value = overrides.get(name, value)
        if isinstance(value, str):  # a word: interned codes, as string columns hold
            out[name] = np.full(n, STRINGS.code(value), dtype=np.int32)
        else:
            out[name] = np.full(n, value, dtype=np.float64)
    return out


def _identity_of(t: Table) -> np.ndarray:
    """``arange(n)`` of a table, one array per table (so a frame's own rows are recognised)."""
    ident = t.identity
    if ident is None or len(ident) != t.n:
        ident = t.identity = np.arange(t.n, dtype=np.int64)
    return ident
