"""Evaluate a compiled rule set over a whole corpus at once, column by column.

`VProgram(program)` compiles the interpreter's checked `Program` to vectorised
closures; `VProgram.run(corpus)` returns a `CorpusEvaluation` whose columns hold
every derived value of every entity of every dataset. Cascades run for all
datasets together: each step applies to the datasets whose stop condition is still
false, and only the columns that depend on what the step changed are recomputed.
The semantics are the per-dataset interpreter's (`almarules.engine.evaluate.program`); a
property test checks that both give the same decisions.

The evaluation itself lives in `corpus_evaluation` (columns, driver), `derived` (derive
rules, scores, tables), `membership` (``in``, ``lookup()``), `emits` (created collections),
`cascade` and `keep` (cascade steps); this module compiles and re-exports.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from almarules.dsl import ast as A
from almarules.engine.columnar.cascade import CascadeResult
from almarules.engine.columnar.columns import STRINGS, Unsupported
from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation
from almarules.dsl.dependencies import Dependencies
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vcompile import Compiler
from almarules.engine.columnar.vnodes import VAction, VCascade, VEmit, VFor, VRule, VScore, VStep, VTable
from almarules.engine.evaluate.program import Program

_DATASET = frozenset({"dataset"})


class VProgram:
    """A checked `Program`, compiled to vectorised closures."""

    def __init__(self, program: Program):
        self.p = program
        rs = program.rs
        self.compiler = Compiler(program.names)
        self.derives: dict[tuple[str, str], list[VRule]] = self._derives()
        self.scores: dict[tuple[str, str], VScore] = {(s.kind, s.attr): self._score(s) for s in rs.scores.values()}
        self.tables: dict[str, VTable] = {name: self._table(t) for name, t in program.tables.items()}
        self.collections = {kind: self._body(coll.body, _DATASET) for kind, coll in rs.collections.items()}
        self.cascades = [self._cascade(rs.cascades[c.decl.name]) for c in program.cascades]
        c = self.compiler
        self.warns = [(w.decl, c.expr(w.decl.when, _DATASET)) for w in program.warns]
        self.recipes = {name: [(st, c.expr(st.when, _DATASET)) for st in r.stages] for name, r in rs.recipes.items()}
        self.deps = Dependencies(rs, program.schema.collections)

    def _derives(self) -> dict[tuple[str, str], list[VRule]]:
        """(kind, attr) -> its rules, highest priority first."""
        c = self.compiler
        out: dict[tuple[str, str], list[VRule]] = {}
        for target, rules in self.p.rs.derives.items():
            kind, attr = target.split(".", 1)
            local = frozenset({"dataset", kind})
            ordered = sorted(rules, key=lambda r: -(r.priority or 0))
            out[(kind, attr)] = [VRule(c.expr(r.when, local), c.expr(r.expr, local)) for r in ordered]
        return out

    def _score(self, s) -> VScore:
        c = self.compiler
        local = frozenset({"dataset", s.kind})
        terms = [(1.0 if t.sign == "+" else -1.0, c.expr(t.amount, local), c.expr(t.when, local)) for t in s.terms]
        clamp = (c.expr(s.clamp[0], local), c.expr(s.clamp[1], local)) if s.clamp else None
        return VScore(c.expr(s.start, local), terms, clamp, c.expr(s.when, local))

    def _table(self, t) -> VTable:
        decl = t.decl
        if isinstance(decl, A.Table):
            rows = [self.compiler.expr(r.expr, frozenset({decl.arg})) for r in decl.rows]
            return VTable(t.spans, rows, None, decl.arg)
        labels = np.array([STRINGS.code(lab) for lab in t.labels], dtype=np.int32)
        return VTable(t.spans, [], labels, decl.arg)

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
        steps = [VStep(st, [self._action(a) for a in st.actions], c.expr(st.when, _DATASET)) for st in cc.steps]
        return VCascade(cc, c.expr(cc.until, _DATASET), steps, {st.decl.name: st for st in steps})

    def _action(self, a: A.Action) -> VAction:
        c = self.compiler
        if isinstance(a, A.SetAction):
            local = _DATASET if a.kind is None else frozenset({"dataset", a.kind})
            return VAction(a, value=c.expr(a.value, local), where=c.expr(a.where, local))
        if isinstance(a, A.DropAction):
            return VAction(a, where=c.expr(a.where, frozenset({"dataset", a.kind})))
        if isinstance(a, A.KeepAction):
            local = frozenset({"dataset", a.kind})
            return VAction(a, where=c.expr(a.where, local), group=c.expr(a.group, local),
                           rank=[c.expr(k, local) for k in a.rank_keys],
                           while_=c.expr(a.while_, local), limit=c.expr(a.limit, _DATASET))
        if isinstance(a, A.ErrorAction):
            return VAction(a, when=c.expr(a.when, _DATASET))
        if isinstance(a, A.RepeatAction):
            return VAction(a)
        raise Unsupported(f"cascade action {type(a).__name__}")

    def run(self, corpus: Corpus, params: Optional[dict[str, float]] = None) -> CorpusEvaluation:
        """Evaluate on a corpus (its fact columns are shared: several evaluations can use one corpus)."""
        ev = CorpusEvaluation(self, corpus, params or {})
        ev.run()
        return ev


__all__ = ["VProgram", "CorpusEvaluation", "CascadeResult", "Unsupported",
           "VAction", "VCascade", "VEmit", "VFor", "VRule", "VScore", "VStep", "VTable"]
