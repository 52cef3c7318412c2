"""Cascades over a corpus: every step for all datasets whose stop condition is still false."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from almarules.dsl import ast as A
from almarules.dsl.checker import outcome_attr, plural
from almarules.engine.columnar.columns import Col, mask_of, truth
from almarules.engine.columnar.keep import keep_action
from almarules.engine.columnar.vcompile import Frame
from almarules.engine.columnar.vnodes import VAction, VCascade, VStep

if TYPE_CHECKING:
    from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation


@dataclass
class CascadeResult:
    """Per dataset: the cascade's status and the names of the steps applied."""

    name: str
    status: np.ndarray  # object: "not needed", "mitigated", "still exceeded", "error", "unknown"
    steps: list[list[str]]
    errors: list = field(default_factory=list)  # per dataset: the error action's message, or None


def run_cascade(ev: CorpusEvaluation, vc: VCascade) -> None:
    """Run a cascade for every dataset at once, as `engine.evaluate.cascade.run_cascade` does for
    one; appends its `CascadeResult` to ``ev.cascades`` and its outcome to ``ev.outcomes``."""
    n = ev.corpus.n
    dsf = ev.frame("dataset")
    status = np.full(n, "not needed", dtype=object)
    steps: list[list[str]] = [[] for _ in range(n)]
    errors: list[Optional[str]] = [None] * n
    cond = vc.until(ev, dsf)
    unknown = mask_of(cond.unk, n)
    status[unknown] = "unknown"
    active = ~unknown & ~truth(cond, n)
    for st in vc.steps:
        if not active.any():
            break
        applies = active.copy()
        if st.when is not None:
            c = st.when(ev, dsf)
            cu = mask_of(c.unk, n) & active
            status[cu] = "unknown"
            active &= ~cu
            applies = active & truth(c, n)
        if not applies.any():
            continue
        running = applies.copy()
        stopped = np.full(n, None, dtype=object)
        _run_actions(ev, vc, st, running, stopped, errors)
        for d in np.flatnonzero(applies).tolist():
            steps[d].append(st.decl.name)
        cond = vc.until(ev, dsf)
        halted = applies & ~running
        status[halted] = stopped[halted]
        rest = applies & running
        cu = mask_of(cond.unk, n) & rest
        status[cu] = "unknown"
        done = truth(cond, n) & rest
        status[done] = "mitigated"
        active &= ~(halted | cu | done)
    status[active] = "still exceeded"
    ev.cascades.append(CascadeResult(vc.decl.name, status, steps, errors))
    ev.outcomes[vc.decl.name] = status.copy()  # the status is the outcome
    # columns were recomputed after every action, so all are of the final state; only those
    # that read the outcome (an error while the cascade ran) must be computed anew
    ev.invalidate({outcome_attr(vc.decl.name)})


def _run_actions(ev: CorpusEvaluation, vc: VCascade, st: VStep, running: np.ndarray, stopped: np.ndarray,
                 errors: list[Optional[str]]) -> None:
    """Apply a step's actions in order to the running datasets, recomputing after each;
    an error action (or an unknown limit or error condition) stops a dataset's step."""
    for action in st.actions:
        if not running.any():
            return
        a = action.decl
        if isinstance(a, A.RepeatAction):
            for name in a.steps:
                _run_actions(ev, vc, vc.by_name[name], running, stopped, errors)
            continue
        if isinstance(a, A.ErrorAction):
            _error(ev, action, running, stopped, errors)
            continue
        ev.invalidate(_apply(ev, action, running, stopped))


def _error(ev: CorpusEvaluation, action: VAction, running: np.ndarray, stopped: np.ndarray,
           errors: list[Optional[str]]) -> None:
    """An error action: the running datasets where it fires stop with "error" (and its message),
    those where its condition is unknown with "unknown"."""
    n = ev.corpus.n
    if action.when is None:
        fires, cu = running.copy(), np.zeros(n, dtype=bool)
    else:
        c = action.when(ev, ev.frame("dataset"))
        cu = mask_of(c.unk, n) & running
        fires = truth(c, n) & running & ~cu
    stopped[cu] = "unknown"
    stopped[fires] = "error"
    for d in np.flatnonzero(fires).tolist():
        errors[d] = action.decl.message
    running &= ~(cu | fires)


def _apply(ev: CorpusEvaluation, action: VAction, active: np.ndarray, stopped: np.ndarray) -> set[str]:
    """Apply a set, drop or keep action to the active datasets; returns the names it changed."""
    a = action.decl
    if isinstance(a, A.SetAction) and a.kind is None:
        _set_param(ev, action, active)
        return {a.name}
    table = ev.table_of(a.kind)
    fr = ev.frame(a.kind)
    live = table.live & active[table.ds]
    if isinstance(a, A.SetAction):
        sel = live if action.where is None else live & truth(action.where(ev, fr), fr.n)
        _set_values(ev, action, fr, sel)
        return {a.name}
    if isinstance(a, A.DropAction):
        gone = live & truth(action.where(ev, fr), fr.n)
        ev.set_live(table, table.live & ~gone)
        return {plural(a.kind)}
    keep_action(ev, action, table, fr, active, stopped)
    return {plural(a.kind)}


def _set_param(ev: CorpusEvaluation, action: VAction, active: np.ndarray) -> None:
    """``set param = value``: the parameter's column changes for the active datasets."""
    a = action.decl
    value = action.value(ev, ev.frame("dataset"))
    n = ev.corpus.n
    v = np.broadcast_to(np.asarray(value.v, dtype=ev.params[a.name].dtype), (n,))
    ev.params[a.name] = np.where(active, v, ev.params[a.name])
    if value.unk is not None:
        ev.param_unk[a.name] = mask_of(ev.param_unk.get(a.name), n) | (active & value.unk)


def _set_values(ev: CorpusEvaluation, action: VAction, fr: Frame, sel: np.ndarray) -> None:
    """``set kind.attr = value where ...``: the selected rows' values go into ``ev.overlay``,
    over those earlier sets gave."""
    a = action.decl
    value = action.value(ev, fr)
    n = fr.n
    key = (a.kind, a.name)
    old = ev.overlay.get(key)
    mask = sel if old is None else (old[0] | sel)
    vals = value.full(n)
    if old is not None:
        vals = np.where(sel, vals, old[1].full(n))
    vunk = mask_of(value.unk, n) & sel
    if old is not None:
        vunk |= mask_of(old[1].unk, n) & ~sel
    ev.overlay[key] = (mask, Col(value.t, vals, vunk, value.ekind, value.base))
