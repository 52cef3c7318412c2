"""Evaluate a compiled rule set over a whole corpus at once, column by column.

`VProgram(program)` compiles the interpreter's checked `Program` to vectorised
closures; `VProgram.run(corpus)` returns a `CorpusEvaluation` whose columns hold
every derived value of every entity of every dataset. Cascades run for all
datasets together: each step applies to the datasets whose stop condition is still
false, and only the columns that depend on what the step changed are recomputed.
The semantics are the per-dataset interpreter's (`almarules.engine.evaluate.program`); a
property test checks that both give the same decisions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from almarules.dsl import ast as A
from almarules.dsl.checker import outcome_attr, plural
from almarules.dsl.intervals import Span
from almarules.dsl.types import BoolT, CollT, EntityT, EnumT, NumT, StrT
from almarules.engine.columnar.columns import (
    STRINGS, Col, Unsupported, expand, mask_of, truth, unk_or,
)
from almarules.engine.columnar.deps import Dependencies
from almarules.engine.columnar.tables import Corpus, Table
from almarules.engine.columnar.vcompile import Compiler, Frame, VFn, expand_binders
from almarules.engine.evaluate.program import Program
from almarules.engine.evaluate.values import key_text

_BIG = np.int64(1) << np.int64(32)


@dataclass
class VRule:
    when: Optional[VFn]
    expr: VFn


@dataclass
class VTable:
    spans: list[Span]
    rows: list[VFn]  # tables: row formulas
    labels: Optional[np.ndarray]  # bands: label codes
    arg: str


@dataclass
class VEmit:
    assigns: list[tuple[str, VFn]]


@dataclass
class VFor:
    binders: list
    body: list


@dataclass
class VAction:
    decl: A.Action
    value: Optional[VFn] = None
    where: Optional[VFn] = None
    group: Optional[VFn] = None
    rank: list[VFn] = field(default_factory=list)  # ranking keys, lexicographic
    while_: Optional[VFn] = None  # sees dataset and the keep's kind (the candidate group's first entity)
    limit: Optional[VFn] = None
    when: Optional[VFn] = None  # an error action's condition


@dataclass
class VStep:
    decl: A.Step
    actions: list[VAction]
    when: Optional[VFn] = None


@dataclass
class VCascade:
    decl: A.Cascade
    until: VFn
    steps: list[VStep]
    by_name: dict[str, VStep] = field(default_factory=dict)


class VProgram:
    """A checked `Program`, compiled to vectorised closures."""

    def __init__(self, program: Program):
        self.p = program
        rs = program.rs
        c = Compiler(program.names)
        self.compiler = c
        self.derives: dict[tuple[str, str], list[VRule]] = {}
        for target, rules in rs.derives.items():
            kind, attr = target.split(".", 1)
            local = frozenset({"dataset", kind})
            ordered = sorted(rules, key=lambda r: -(r.priority or 0))
            self.derives[(kind, attr)] = [VRule(c.expr(r.when, local), c.expr(r.expr, local)) for r in ordered]
        self.scores: dict[tuple[str, str], tuple] = {}
        for s in rs.scores.values():
            local = frozenset({"dataset", s.kind})
            terms = [(1.0 if t.sign == "+" else -1.0, c.expr(t.amount, local), c.expr(t.when, local)) for t in s.terms]
            clamp = (c.expr(s.clamp[0], local), c.expr(s.clamp[1], local)) if s.clamp else None
            self.scores[(s.kind, s.attr)] = (c.expr(s.start, local), terms, clamp, c.expr(s.when, local))
        self.tables: dict[str, VTable] = {}
        for name, t in program.tables.items():
            decl = t.decl
            if isinstance(decl, A.Table):
                rows = [c.expr(r.expr, frozenset({decl.arg})) for r in decl.rows]
                self.tables[name] = VTable(t.spans, rows, None, decl.arg)
            else:
                labels = np.array([STRINGS.code(lab) for lab in t.labels], dtype=np.int32)
                self.tables[name] = VTable(t.spans, [], labels, decl.arg)
        self.collections = {kind: self._body(coll.body, frozenset({"dataset"})) for kind, coll in rs.collections.items()}
        self.cascades = [self._cascade(rs.cascades[c.decl.name]) for c in program.cascades]
        self.warns = [(w.decl, c.expr(w.decl.when, frozenset({"dataset"}))) for w in program.warns]
        ds = frozenset({"dataset"})
        self.recipes = {name: [(st, c.expr(st.when, ds)) for st in r.stages] for name, r in rs.recipes.items()}
        self.deps = Dependencies(rs, program.schema.collections)

    def _body(self, body, local: frozenset[str]) -> list:
        out: list = []
        for item in body:
            if isinstance(item, A.Emit):
                out.append(VEmit([(n, self.compiler.expr(x, local)) for n, x in item.assigns]))
            else:
                binders, scope = self.compiler.binders(item.binders, local)
                out.append(VFor(binders, self._body(item.body, scope)))
        return out

    def _cascade(self, cc: A.Cascade) -> VCascade:
        c = self.compiler
        ds = frozenset({"dataset"})
        steps = []
        for st in cc.steps:
            actions = []
            for a in st.actions:
                if isinstance(a, A.SetAction):
                    local = ds if a.kind is None else frozenset({"dataset", a.kind})
                    actions.append(VAction(a, value=c.expr(a.value, local), where=c.expr(a.where, local)))
                elif isinstance(a, A.DropAction):
                    actions.append(VAction(a, where=c.expr(a.where, frozenset({"dataset", a.kind}))))
                elif isinstance(a, A.KeepAction):
                    local = frozenset({"dataset", a.kind})
                    actions.append(VAction(a, where=c.expr(a.where, local), group=c.expr(a.group, local),
                                           rank=[c.expr(k, local) for k in a.rank_keys],
                                           while_=c.expr(a.while_, local), limit=c.expr(a.limit, ds)))
                elif isinstance(a, A.ErrorAction):
                    actions.append(VAction(a, when=c.expr(a.when, ds)))
                elif isinstance(a, A.RepeatAction):
                    actions.append(VAction(a))
                else:
                    raise Unsupported(f"cascade action {type(a).__name__}")
            steps.append(VStep(st, actions, c.expr(st.when, ds)))
        return VCascade(cc, c.expr(cc.until, ds), steps, {st.decl.name: st for st in steps})

    def run(self, corpus: Corpus, params: Optional[dict[str, float]] = None) -> "CorpusEvaluation":
        """Evaluate on a corpus (its fact columns are shared: several evaluations can use one corpus)."""
        ev = CorpusEvaluation(self, corpus, params or {})
        ev.run()
        return ev


@dataclass
class CascadeResult:
    """Per dataset: the cascade's status and the names of the steps applied."""

    name: str
    status: np.ndarray  # object: "not needed", "mitigated", "still exceeded", "error", "unknown"
    steps: list[list[str]]
    errors: list = field(default_factory=list)  # per dataset: the error action's message, or None


class CorpusEvaluation:
    def __init__(self, vp: VProgram, corpus: Corpus, overrides: dict[str, float]):
        self.vp = vp
        self.p = vp.p
        self.corpus = corpus
        self.schema = vp.p.schema
        n = corpus.n
        self.params: dict[str, np.ndarray] = {}
        self.param_unk: dict[str, np.ndarray] = {}
        for name, value in vp.p.params.items():
            value = overrides.get(name, value)
            if isinstance(value, str):  # a word: interned codes, as string columns hold
                self.params[name] = np.full(n, STRINGS.code(value), dtype=np.int32)
            else:
                self.params[name] = np.full(n, value, dtype=np.float64)
        self.memo: dict[tuple[str, str], Col] = {}
        self.join_cache: dict[tuple, tuple] = {}  # sorted join keys of fact collections
        self.expand_cache: dict[tuple, tuple] = {}  # (owner, base) ids -> (owner, base, parent, element)
        self.tables: dict[str, Table] = {}  # this evaluation's views of the corpus tables, and created ones
        self.overlay: dict[tuple[str, str], tuple[np.ndarray, Col]] = {}
        self.reasons: dict[tuple[str, str], np.ndarray] = {}
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
        t = self.tables.get(kind)
        if t is not None:
            return t
        if kind in self.vp.collections:
            self._emit(kind)
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
        key = (kind, attr)
        c = self.memo.get(key)
        if c is not None:
            return c
        origin = self.p.origins[kind].get(attr)
        if origin == "fact":
            if kind == "dataset" and attr in self.schema.collections:
                c = self._collection_rel(self.schema.collections[attr], self.corpus.fact("dataset", attr).unk)
            else:
                c = self.corpus.fact(kind, attr)
        elif origin == "builtin":
            c = self.key_codes(kind)
        elif origin == "created":
            if kind == "dataset":
                ck = self.schema.collections[attr]
                self.table_of(ck)
                c = self._collection_rel(ck, self.coll_unknown.get(ck))
            else:
                c = self.table_of(kind).created[attr]
        elif origin == "outcome":
            cascade = self.p.outcome_of[attr]
            if cascade not in self.outcomes:
                c = Col("str", np.zeros(self.corpus.n, dtype=np.int32), np.ones(self.corpus.n, dtype=bool))
            else:
                codes, _ = STRINGS.encode(self.outcomes[cascade].tolist())
                c = Col("str", codes)
        elif origin in ("derived", "score"):
            if key in self._active:
                raise Unsupported(f"{kind}.{attr} depends on itself")
            self._active.add(key)
            try:
                c = self._derive(kind, attr) if origin == "derived" else self._score(kind, attr)
            finally:
                self._active.discard(key)
            hit = self.overlay.get(key)
            if hit is not None:
                c = _overlay(c, hit, self.table_of(kind).n)
        else:
            raise Unsupported(f"{kind}.{attr}")
        self.memo[key] = c
        return c

    def _collection_rel(self, kind: str, unk: Optional[np.ndarray]) -> Col:
        t = self.table_of(kind)
        return Col("rel", np.arange(self.corpus.n, dtype=np.int64), unk, ekind=kind,
                   base=t.by_dataset(self.corpus.n))

    def key_codes(self, kind: str) -> Col:
        t = self.table_of(kind)
        c = t.facts.get("key")
        if c is None:
            codes, _ = STRINGS.encode(t.keys)
            c = t.facts["key"] = Col("str", codes)
        return c

    # ------------------------------------------------------------ derived values
    def _derive(self, kind: str, attr: str) -> Col:
        rules = self.vp.derives[(kind, attr)]
        fr = self.frame(kind)
        n = fr.n
        if len(rules) == 1 and rules[0].when is None:
            return rules[0].expr(self, fr)
        remaining = np.ones(n, dtype=bool)
        unk = np.zeros(n, dtype=bool)
        out: Optional[Col] = None
        for rule in rules:
            if rule.when is not None:
                cond = rule.when(self, fr)
                cu = mask_of(cond.unk, n) & remaining
                applies = truth(cond, n) & remaining
                unk |= cu
                remaining &= ~(cu | applies)
            else:
                applies, remaining = remaining, np.zeros(n, dtype=bool)
            if not applies.any():
                continue
            v = rule.expr(self, fr)
            unk |= applies & mask_of(v.unk, n)
            out = _merge(out, v, applies, n)
        unk |= remaining
        if out is None:
            return _empty_of(self.schema.kinds[kind][attr].type, n)
        return Col(out.t, out.v, unk, out.ekind, out.base)

    def _score(self, kind: str, attr: str) -> Col:
        start, terms, clamp, when = self.vp.scores[(kind, attr)]
        fr = self.frame(kind)
        n = fr.n
        s = start(self, fr)
        value = s.full(n).astype(np.float64)
        unk = mask_of(s.unk, n).copy()
        if when is not None:
            w = when(self, fr)
            unk |= ~truth(w, n)
        reasons = np.zeros(n, dtype=np.int64)
        for i, (sign, amount_fn, cond_fn) in enumerate(terms):
            cond = cond_fn(self, fr)
            unk |= mask_of(cond.unk, n)
            on = truth(cond, n)
            if not on.any():
                continue
            amount = amount_fn(self, fr)
            au = mask_of(amount.unk, n)
            unk |= on & au
            applied = on & ~au
            reasons |= applied.astype(np.int64) << i
            value = np.where(applied, value + sign * np.broadcast_to(amount.v, (n,)), value)
        if clamp is not None:
            lo, hi = clamp[0](self, fr), clamp[1](self, fr)
            unk |= mask_of(unk_or(lo, hi), n)
            value = np.minimum(np.maximum(value, lo.v), hi.v)
        self.reasons[(kind, attr)] = reasons
        return Col("num", value, unk)

    def table(self, name: str, x: Col, fr: Frame) -> Col:
        t = self.vp.tables[name]
        n = fr.n
        xv = np.broadcast_to(np.asarray(x.v, dtype=np.float64), (n,))
        row = np.full(n, -1, dtype=np.int64)
        for i, sp in enumerate(t.spans):
            inside = (sp.lo <= xv) & (xv <= sp.hi)
            if not sp.lo_closed:
                inside &= xv != sp.lo
            if not sp.hi_closed:
                inside &= xv != sp.hi
            row[inside & (row < 0)] = i
        unk = unk_or(x, row < 0)
        if t.labels is not None:
            return Col("str", t.labels[np.maximum(row, 0)], unk)
        sub = Frame(n, fr.ds, {t.arg: x})
        out = np.zeros(n)
        for i, fn in enumerate(t.rows):
            sel = row == i
            if not sel.any():
                continue
            c = fn(self, sub)
            out = np.where(sel, c.v, out)
            if c.unk is not None:
                unk = unk_or(unk, sel & c.unk)
        return Col("num", out, unk)

    def member(self, a: Col, b: Col, n: int) -> np.ndarray:
        """``a in b`` for a set of enum members, a per-row collection, or tuples."""
        if b.t == "set" and a.t == "str":
            bits = self.corpus.bits[b.ekind]
            for member in bits:
                STRINGS.code(member)
            table = np.full(len(STRINGS.texts), -1, dtype=np.int64)
            for member, bit in bits.items():
                table[STRINGS.code(member)] = bit
            codes = np.broadcast_to(np.asarray(a.v, dtype=np.int64), (n,))
            bit = table[np.clip(codes, 0, len(table) - 1)]
            sets = np.broadcast_to(np.asarray(b.v, dtype=np.int64), (n,))
            return (bit >= 0) & (((sets >> np.maximum(bit, 0)) & 1) == 1)
        if b.t == "rel" and a.t == "ent":
            owner = np.broadcast_to(np.asarray(b.v, dtype=np.int64), (n,))
            parent, elem, _ = expand(owner, *b.base)
            av = np.broadcast_to(np.asarray(a.v, dtype=np.int64), (n,))
            return np.bincount(parent[elem == av[parent]], minlength=n) > 0
        if b.t == "nums" and a.t == "num":
            owner = np.broadcast_to(np.asarray(b.v, dtype=np.int64), (n,))
            parent, elem, _ = expand(owner, *b.base)
            av = np.broadcast_to(np.asarray(a.v, dtype=np.float64), (n,))
            return np.bincount(parent[elem == av[parent]], minlength=n) > 0
        if b.t == "obj":
            av = np.broadcast_to(a.v, (n,))
            bv = b.full(n)
            texts = STRINGS.texts
            conv = (lambda v: texts[v]) if a.t == "str" else (lambda v: v)
            return np.fromiter((bv[i] is not None and conv(av[i]) in bv[i] for i in range(n)), dtype=bool, count=n)
        raise Unsupported(f"membership of a {a.t} in a {b.t}")

    def lookup_entity(self, coll: Col, ent: Col, n: int) -> Col:
        """``lookup(coll, x.key)``: key texts are built only for rows whose collection is not empty."""
        if coll.t != "rel" or ent.t != "ent":
            raise Unsupported("lookup() of this kind")
        offsets = coll.base[0]
        owner = np.broadcast_to(np.asarray(coll.v, dtype=np.int64), (n,))
        rows = np.flatnonzero(offsets[owner + 1] > offsets[owner])
        codes = np.full(n, -1, dtype=np.int32)
        if len(rows):
            idx = np.broadcast_to(np.asarray(ent.v, dtype=np.int64), (n,))[rows]
            texts = self.table_of(ent.ekind).keys_of(idx)
            codes[rows], _ = STRINGS.encode(texts)
        return self.lookup(coll, Col("str", codes, ent.unk), n)

    def lookup(self, coll: Col, key: Col, n: int) -> Col:
        """The element of each row's collection whose key is `key` (first match), else unknown."""
        if coll.t != "rel" or key.t != "str":
            raise Unsupported("lookup() of this kind")
        offsets, items = coll.base
        owners = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
        keys = self.key_codes(coll.ekind).v[items].astype(np.int64)
        combined = owners * _BIG + keys
        uniq, first = np.unique(combined, return_index=True)
        owner = np.broadcast_to(np.asarray(coll.v, dtype=np.int64), (n,))
        query = owner * _BIG + np.broadcast_to(np.asarray(key.v, dtype=np.int64), (n,))
        pos = np.searchsorted(uniq, query)
        pos_c = np.minimum(pos, max(len(uniq) - 1, 0))
        found = (pos < len(uniq)) & (uniq[pos_c] == query) if len(uniq) else np.zeros(n, dtype=bool)
        idx = np.where(found, items[first[pos_c]] if len(uniq) else 0, -1)
        return Col("ent", idx, unk_or(coll, key, ~found), ekind=coll.ekind)

    # ------------------------------------------------------------ collections
    def _emit(self, kind: str) -> None:
        """Create the entities of a collection rule for every dataset, in the interpreter's order."""
        n = self.corpus.n
        fr = Frame(n, np.arange(n, dtype=np.int64), {"dataset": Col("ent", np.arange(n, dtype=np.int64),
                                                                     ekind="dataset")})
        blocks: list[tuple[dict[str, Col], list[np.ndarray], np.ndarray]] = []
        bad = np.zeros(n, dtype=bool)
        self._walk(self.vp.collections[kind], fr, [np.arange(n, dtype=np.int64)], np.arange(n), blocks, bad)
        table = self._assemble(kind, blocks, bad)
        self.tables[kind] = table
        self.coll_unknown[kind] = bad

    def _reemit(self, kind: str) -> None:
        """Create a collection anew (what it depends on changed); dropped entities stay dropped."""
        if any(k == kind for k, _ in self.overlay):
            raise Unsupported(f"a cascade both sets {kind} values and changes what creates them")
        old = self.tables.pop(kind)
        gone = np.flatnonzero(~old.live)
        dropped = set(zip(old.ds[gone].tolist(), old.keys_of(gone)))
        self._emit(kind)
        t = self.tables[kind]
        if dropped:
            t.live = np.array([(d, k) not in dropped for d, k in zip(t.ds.tolist(), t.keys)], dtype=bool)
        self.memo.clear()

    def _walk(self, body: list, fr: Frame, path: list[np.ndarray], root: np.ndarray, blocks: list,
              bad: np.ndarray) -> None:
        for i, item in enumerate(body):
            here = path + [np.full(fr.n, i, dtype=np.int64)]
            if isinstance(item, VEmit):
                values = {name: fn(self, fr) for name, fn in item.assigns}
                for c in values.values():
                    if c.unk is not None:
                        bad[fr.ds[c.unk]] = True
                blocks.append((values, here, fr.ds))
                continue
            inner, parent, pending = expand_binders(self, fr, item.binders)
            if pending is not None:
                bad[fr.ds[pending]] = True
            inner_path = [p[parent] for p in here] + [np.arange(inner.n, dtype=np.int64)]
            self._walk(item.body, inner, inner_path, root[parent], blocks, bad)

    def _assemble(self, kind: str, blocks: list, bad: np.ndarray) -> Table:
        if not blocks:
            return Table(kind, np.zeros(0, dtype=np.int64), None, [])
        depth = max(len(p) for _, p, _ in blocks)
        paths = [np.concatenate([p[j] if j < len(p) else np.full(len(ds), -1, dtype=np.int64)
                                 for _, p, ds in blocks]) for j in range(depth)]
        ds_all = np.concatenate([ds for _, _, ds in blocks])
        order = np.lexsort(tuple(reversed([ds_all] + paths)))
        names = list(blocks[0][0])
        cols: dict[str, Col] = {}
        for name in names:
            cols[name] = _concat([b[0][name] for b in blocks], [len(b[2]) for b in blocks]).take(order)
        ds_sorted = ds_all[order]
        keep_idx = self._first_of_each(ds_sorted, [self._identity(cols[name], len(order)) for name in names], bad)
        table = Table(kind, ds_sorted[keep_idx], None)
        table.created = {name: c.take(keep_idx) for name, c in cols.items()}
        table.key_fn = lambda rows: self._keys(table, names, rows)
        return table

    def _identity(self, c: Col, n: int) -> np.ndarray:
        """An int64 per row that is equal exactly when the values (hence the key texts) are."""
        v = np.broadcast_to(np.asarray(c.v), (n,))
        if c.t in ("ent", "str", "bool"):
            return v.astype(np.int64)
        if c.t == "num":
            return v.astype(np.float64).view(np.int64)
        if c.t == "rel":
            offsets, items = c.base
            counts = offsets[v + 1] - offsets[v]
            ids = np.where(counts == 1, items[np.minimum(offsets[v], max(len(items) - 1, 0))] if len(items) else -1,
                           -1)
            several = np.flatnonzero(counts > 1)
            if len(several):  # lists of several: intern them exactly, as rows of a padded matrix
                owners = v[several]
                width = int(counts[several].max())
                grid = np.full((len(several), width), -1, dtype=np.int64)
                parent, elem, within = expand(owners, offsets, items)
                grid[parent, within] = elem
                _, inverse = np.unique(grid, axis=0, return_inverse=True)
                ids[several] = -2 - inverse.reshape(-1)
            return ids
        raise Unsupported(f"entity keys from {c.t} values")

    @staticmethod
    def _first_of_each(ds: np.ndarray, ids: list[np.ndarray], bad: np.ndarray) -> np.ndarray:
        """Rows to keep: the first of rows with equal (dataset, values), none of unknown collections."""
        h = ds.astype(np.int64)
        for a in ids:
            h = (h * np.int64(1000003)) ^ a
        ok = ~bad[ds]
        uniq, first, counts = np.unique(h, return_index=True, return_counts=True)
        if (counts == 1).all():
            return np.flatnonzero(ok)
        keep = np.ones(len(ds), dtype=bool)
        clash = np.isin(h, uniq[counts > 1])
        seen: set[tuple] = set()
        for r in np.flatnonzero(clash).tolist():
            key = (int(ds[r]),) + tuple(int(a[r]) for a in ids)
            if key in seen:
                keep[r] = False
            seen.add(key)
        return np.flatnonzero(keep & ok)

    def _keys(self, table: Table, names: list[str], rows: np.ndarray) -> list[str]:
        parts = [self._key_texts(table.created[name], rows) for name in names]
        if len(parts) == 1:
            return parts[0]
        return [".".join(t) for t in zip(*parts)]

    def _key_texts(self, c: Col, rows: np.ndarray) -> list[str]:
        """How each row's value appears in an entity key (`almarules.engine.evaluate.values.key_text`)."""
        v = c.v[rows] if isinstance(c.v, np.ndarray) and c.v.ndim == 1 else np.broadcast_to(c.v, (len(rows),))
        if c.t == "ent":
            return self._keys_of(c.ekind, v)
        if c.t == "str":
            return _texts_array()[v].tolist()
        if c.t == "rel":
            offsets, items = c.base
            parent, elem, _ = expand(np.asarray(v, dtype=np.int64), offsets, items)
            texts = self._keys_of(c.ekind, elem)
            counts = np.bincount(parent, minlength=len(v))
            if (counts == 1).all():
                return texts
            ends = np.cumsum(counts).tolist()
            starts = [e - k for e, k in zip(ends, counts.tolist())]
            return ["_".join(texts[a:b]) for a, b in zip(starts, ends)]
        if c.t in ("num", "bool"):
            return [key_text(x) for x in v.tolist()]
        raise Unsupported(f"entity keys from {c.t} values")

    def _keys_of(self, kind: str, rows: np.ndarray) -> list[str]:
        """Key texts of rows of a kind, each distinct row keyed once."""
        if not len(rows):
            return []
        uniq, inverse = np.unique(rows, return_inverse=True)
        texts = np.empty(len(uniq), dtype=object)
        texts[:] = self.table_of(kind).keys_of(uniq)
        return texts[inverse.reshape(-1)].tolist()

    # ------------------------------------------------------------ driver
    def run(self) -> None:
        for vc in self.vp.cascades:
            self._cascade(vc)
        for name, stages in self.vp.recipes.items():
            fr = self.frame("dataset")
            out = []
            for st, when in stages:
                if when is None:
                    out.append((st, np.ones(fr.n, dtype=bool), np.zeros(fr.n, dtype=bool)))
                    continue
                c = when(self, fr)
                out.append((st, truth(c, fr.n), mask_of(c.unk, fr.n)))
            self.stages[name] = out
        dsf = self.frame("dataset")
        for decl, when in self.vp.warns:
            c = when(self, dsf)
            self.warnings.append((decl, truth(c, dsf.n), mask_of(c.unk, dsf.n)))

    def compute_all(self) -> None:
        """Compute every derived and scored column of every kind (what a report shows)."""
        for kind, attrs in self.schema.kinds.items():
            if kind != "dataset" and plural(kind) not in self.schema.collections:
                continue
            for attr, info in attrs.items():
                if info.origin in ("derived", "score", "outcome"):
                    self.column(kind, attr)

    def invalidate(self, changed: set[str]) -> None:
        """Forget every column whose value can depend on a changed name."""
        deps = self.vp.deps
        for kind in list(self.vp.collections):
            coll = plural(kind)
            if kind in self.tables and any(deps.touches(m, changed) for m in deps.direct.get((None, coll), ())
                                                  if m != coll):
                self._reemit(kind)
                return
        for key in list(self.memo):
            kind, attr = key
            origin = self.p.origins[kind].get(attr)
            if origin in ("derived", "score", "outcome") or (kind == "dataset" and origin in ("created", "fact")
                                                  and attr in self.schema.collections):
                if deps.touches(attr, changed, kind if (kind, attr) in deps.direct else None):
                    del self.memo[key]

    # ------------------------------------------------------------ cascades
    def _cascade(self, vc: VCascade) -> None:
        """Run a cascade for every dataset at once, as `Evaluation._cascade` does for one."""
        n = self.corpus.n
        dsf = self.frame("dataset")
        status = np.full(n, "not needed", dtype=object)
        steps: list[list[str]] = [[] for _ in range(n)]
        errors: list[Optional[str]] = [None] * n
        cond = vc.until(self, dsf)
        unknown = mask_of(cond.unk, n)
        status[unknown] = "unknown"
        active = ~unknown & ~truth(cond, n)
        for st in vc.steps:
            if not active.any():
                break
            applies = active.copy()
            if st.when is not None:
                c = st.when(self, dsf)
                cu = mask_of(c.unk, n) & active
                status[cu] = "unknown"
                active &= ~cu
                applies = active & truth(c, n)
            if not applies.any():
                continue
            running = applies.copy()
            stopped = np.full(n, None, dtype=object)
            self._run_actions(vc, st, running, stopped, errors)
            for d in np.flatnonzero(applies).tolist():
                steps[d].append(st.decl.name)
            cond = vc.until(self, dsf)
            halted = applies & ~running
            status[halted] = stopped[halted]
            rest = applies & running
            cu = mask_of(cond.unk, n) & rest
            status[cu] = "unknown"
            done = truth(cond, n) & rest
            status[done] = "mitigated"
            active &= ~(halted | cu | done)
        status[active] = "still exceeded"
        self.cascades.append(CascadeResult(vc.decl.name, status, steps, errors))
        self.outcomes[vc.decl.name] = status.copy()  # the status is the outcome
        # columns were recomputed after every action, so all are of the final state; only those
        # that read the outcome (an error while the cascade ran) must be computed anew
        self.invalidate({outcome_attr(vc.decl.name)})

    def _run_actions(self, vc: VCascade, st: VStep, running: np.ndarray, stopped: np.ndarray,
                     errors: list) -> None:
        """Apply a step's actions in order to the running datasets, recomputing after each;
        an error action (or an unknown limit or error condition) stops a dataset's step."""
        n = self.corpus.n
        for action in st.actions:
            if not running.any():
                return
            a = action.decl
            if isinstance(a, A.RepeatAction):
                for name in a.steps:
                    self._run_actions(vc, vc.by_name[name], running, stopped, errors)
                continue
            if isinstance(a, A.ErrorAction):
                if action.when is None:
                    fires, cu = running.copy(), np.zeros(n, dtype=bool)
                else:
                    c = action.when(self, self.frame("dataset"))
                    cu = mask_of(c.unk, n) & running
                    fires = truth(c, n) & running & ~cu
                stopped[cu] = "unknown"
                stopped[fires] = "error"
                for d in np.flatnonzero(fires).tolist():
                    errors[d] = a.message
                running &= ~(cu | fires)
                continue
            self.invalidate(self._apply(action, running, stopped))

    def _apply(self, action: VAction, active: np.ndarray, stopped: np.ndarray) -> set[str]:
        a = action.decl
        if isinstance(a, A.SetAction) and a.kind is None:
            value = action.value(self, self.frame("dataset"))
            n = self.corpus.n
            v = np.broadcast_to(np.asarray(value.v, dtype=self.params[a.name].dtype), (n,))
            self.params[a.name] = np.where(active, v, self.params[a.name])
            if value.unk is not None:
                self.param_unk[a.name] = mask_of(self.param_unk.get(a.name), n) | (active & value.unk)
            return {a.name}
        table = self.table_of(a.kind)
        fr = self.frame(a.kind)
        live = table.live & active[table.ds]
        if isinstance(a, A.SetAction):
            sel = live if action.where is None else live & truth(action.where(self, fr), fr.n)
            value = action.value(self, fr)
            key = (a.kind, a.name)
            old = self.overlay.get(key)
            mask = sel if old is None else (old[0] | sel)
            vals = value.full(fr.n)
            if old is not None:
                vals = np.where(sel, vals, old[1].full(fr.n))
            vunk = mask_of(value.unk, fr.n) & sel
            if old is not None:
                vunk |= mask_of(old[1].unk, fr.n) & ~sel
            self.overlay[key] = (mask, Col(value.t, vals, vunk, value.ekind, value.base))
            return {a.name}
        if isinstance(a, A.DropAction):
            gone = live & truth(action.where(self, fr), fr.n)
            self._set_live(table, table.live & ~gone)
            return {plural(a.kind)}
        self._keep(action, table, fr, active, stopped)
        return {plural(a.kind)}

    def _set_live(self, table: Table, live: np.ndarray) -> None:
        table.live = live
        table.changed()
        self.invalidate({plural(table.kind)})

    def _keep(self, action: VAction, table: Table, fr: Frame, active: np.ndarray, stopped: np.ndarray) -> None:
        """`Evaluation._keep` for every running dataset: limit first; groups ranked by their first
        entity's keys (known before unknown, lexicographic, ties by first appearance); the first
        kept, the rest dropped, then restored in rank order while the condition holds."""
        a: A.KeepAction = action.decl  # type: ignore[assignment]
        n_ds = self.corpus.n
        limit = None
        if action.limit is not None:
            c = action.limit(self, self.frame("dataset"))
            lv = np.broadcast_to(np.asarray(c.v, dtype=np.float64), (n_ds,))
            bad = (mask_of(c.unk, n_ds) | np.isnan(lv)) & active
            stopped[bad] = "unknown"
            active &= ~bad  # (the caller's running mask: these datasets stop here)
            limit = np.maximum(1, np.floor(np.clip(np.nan_to_num(lv, nan=1.0), -1e15, 1e15))).astype(np.int64)
        n = fr.n
        live = table.live & active[table.ds]
        cand = live if action.where is None else live & truth(action.where(self, fr), n)
        rows = np.flatnonzero(cand)
        if not len(rows):
            return
        if action.group is not None:
            g = action.group(self, fr)
            if g.t not in ("ent", "str", "num", "bool", "rel"):
                raise Unsupported(f"grouping by a {g.t}")
            if g.t == "num":
                g = Col("num", np.broadcast_to(np.asarray(g.v, dtype=np.float64), (n,)) + 0.0, g.unk)
            gkey = self._identity(g, n)[rows]  # equal exactly when the key texts are
            gkey = np.where(mask_of(g.unk, n)[rows], np.int64(-(1 << 62)), gkey)  # unknown groups together
        else:
            gkey = rows.astype(np.int64)
        ds = table.ds[rows]
        pairs = np.stack([ds, gkey], axis=1)
        _, first_idx, group = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        first_row = rows[first_idx]
        n_groups = len(first_idx)
        sort_keys: list[np.ndarray] = []
        for fn in action.rank:
            r = fn(self, fr)
            unk = mask_of(r.unk, n)[first_row]
            v = np.broadcast_to(np.asarray(r.v), (n,))[first_row]
            if r.t == "str":
                v = _text_rank()[v]
            elif r.t in ("num", "bool"):
                v = v.astype(np.float64)
            else:
                raise Unsupported(f"ranking by a {r.t}")
            sort_keys += [unk.astype(np.int8), np.where(unk, 0, v)]
        gds = table.ds[first_row]
        order = np.lexsort(tuple(reversed([gds] + sort_keys + [first_row])))
        ordinal = np.empty(n_groups, dtype=np.int64)
        sorted_ds = gds[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_ds)) + 1]
        seg = np.repeat(starts, np.diff(np.r_[starts, n_groups]))
        ordinal[order] = np.arange(n_groups) - seg
        count = np.bincount(gds, minlength=n_ds)
        row_ord = ordinal[group]
        several = count[ds] > 1
        keep_n = limit[ds] if limit is not None else np.ones(len(rows), dtype=np.int64)
        new_live = table.live.copy()
        new_live[rows[several & (row_ord >= keep_n)]] = False
        self._set_live(table, new_live)
        if limit is not None or action.while_ is None:
            return
        first_of_group = np.full((n_ds, int(count.max())), -1, dtype=np.int64)
        first_of_group[gds, ordinal] = first_row
        adding = count > 1
        redrop: list[np.ndarray] = []  # groups whose condition failed: dropped again at the end
        for k in range(1, int(count.max())):
            trying = adding & (count > k)
            if not trying.any():
                break
            sel = rows[(row_ord == k) & trying[ds]]
            new_live = table.live.copy()
            new_live[sel] = True
            self._set_live(table, new_live)
            dsf = self.frame("dataset")
            dsf.vars[a.kind] = Col("ent", np.maximum(first_of_group[:, k], 0), ekind=a.kind)
            ok = truth(action.while_(self, dsf), n_ds)
            failed = trying & ~ok
            if failed.any():
                # datasets are independent, so a failed group can stay live until the end: the
                # datasets still trying see none of it
                redrop.append(sel[failed[table.ds[sel]]])
                adding &= ~failed
        if redrop:
            new_live = table.live.copy()
            new_live[np.concatenate(redrop)] = False
            self._set_live(table, new_live)


def _texts_array() -> np.ndarray:
    """Every interned string as an object array (rebuilt when strings were added)."""
    global _TEXTS
    if len(_TEXTS) != len(STRINGS.texts):
        _TEXTS = np.empty(len(STRINGS.texts), dtype=object)
        _TEXTS[:] = STRINGS.texts
    return _TEXTS


_TEXTS = np.empty(0, dtype=object)


def _text_rank() -> np.ndarray:
    """code -> position of its text in sorted order (strings rank by text, not by code)."""
    texts = STRINGS.texts
    rank = np.empty(len(texts), dtype=np.float64)
    rank[np.argsort(np.array(texts, dtype=object))] = np.arange(len(texts))
    return rank


# ---------------------------------------------------------------- helpers
def _identity_of(t: Table) -> np.ndarray:
    """``arange(n)`` of a table, one array per table (so a frame's own rows are recognised)."""
    ident = t.identity
    if ident is None or len(ident) != t.n:
        ident = t.identity = np.arange(t.n, dtype=np.int64)
    return ident


def _merge(out: Optional[Col], v: Col, applies: np.ndarray, n: int) -> Col:
    if out is None:
        return Col(v.t, v.full(n).copy() if v.t != "rel" else v.full(n), None, v.ekind, v.base)
    if v.t == "rel" or out.t == "rel":
        raise Unsupported("several rules giving collections")
    return Col(out.t, np.where(applies, v.full(n), out.v), None, out.ekind or v.ekind, out.base)


def _overlay(c: Col, hit: tuple[np.ndarray, Col], n: int) -> Col:
    mask, vals = hit
    v = np.where(mask, vals.full(n), c.full(n))
    unk = (mask & mask_of(vals.unk, n)) | (~mask & mask_of(c.unk, n))
    return Col(c.t, v, unk, c.ekind, c.base)


def _concat(cols: list[Col], sizes: list[int]) -> Col:
    t = cols[0].t
    if t == "rel":
        offsets = [np.zeros(1, dtype=np.int64)]
        items = []
        total = 0
        for c, size in zip(cols, sizes):
            o, it = c.base
            owner = np.broadcast_to(np.asarray(c.v, dtype=np.int64), (size,))
            parent, elem, _ = expand(owner, o, it)
            counts = np.bincount(parent, minlength=size)
            offsets.append(total + np.cumsum(counts))
            items.append(elem)
            total += int(counts.sum())
        n = sum(sizes)
        return Col("rel", np.arange(n, dtype=np.int64), _cat_unk(cols, sizes), cols[0].ekind,
                   (np.concatenate(offsets), np.concatenate(items) if items else np.zeros(0, dtype=np.int64)))
    return Col(t, np.concatenate([c.full(s) for c, s in zip(cols, sizes)]), _cat_unk(cols, sizes),
               cols[0].ekind)


def _cat_unk(cols: list[Col], sizes: list[int]) -> Optional[np.ndarray]:
    if all(c.unk is None for c in cols):
        return None
    return np.concatenate([mask_of(c.unk, s) for c, s in zip(cols, sizes)])


def _empty_of(t: Any, n: int) -> Col:
    unk = np.ones(n, dtype=bool)
    if isinstance(t, NumT):
        return Col("num", np.zeros(n), unk)
    if isinstance(t, BoolT):
        return Col("bool", np.zeros(n, dtype=bool), unk)
    if isinstance(t, (StrT, EnumT)):
        return Col("str", np.zeros(n, dtype=np.int32), unk)
    if isinstance(t, EntityT):
        return Col("ent", np.zeros(n, dtype=np.int64), unk, ekind=t.kind)
    if isinstance(t, CollT) and isinstance(t.elem, EntityT):
        return Col("rel", np.zeros(n, dtype=np.int64), unk, ekind=t.elem.kind,
                   base=(np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int64)))
    raise Unsupported(f"values of type {t}")


__all__ = ["VProgram", "CorpusEvaluation", "CascadeResult", "Unsupported"]
