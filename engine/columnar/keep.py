"""The cascade's ``keep`` action for every running dataset: limit, groups ranked, the rest dropped,
then groups restored in rank order while a condition holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from almarules.dsl import ast as A
from almarules.engine.columnar.columns import STRINGS, Col, Unsupported, mask_of, truth
from almarules.engine.columnar.emits import value_identity
from almarules.engine.columnar.tables import Table
from almarules.engine.columnar.vcompile import Frame
from almarules.engine.columnar.vnodes import VAction

if TYPE_CHECKING:
    from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation


@dataclass
class RankedGroups:
    """Candidate rows grouped per dataset and ranked: `rows` (table rows), `ds` (their dataset),
    `row_ord` (their group's rank within its dataset, 0 first); per group, `first_row` (its first
    row), `gds` (its dataset) and `ordinal` (its rank); `count`: groups per dataset."""

    rows: np.ndarray
    ds: np.ndarray
    row_ord: np.ndarray
    first_row: np.ndarray
    gds: np.ndarray
    ordinal: np.ndarray
    count: np.ndarray


def keep_action(ev: CorpusEvaluation, action: VAction, table: Table, fr: Frame, active: np.ndarray,
                stopped: np.ndarray) -> None:
    """`engine.evaluate.cascade.keep` for every running dataset: limit first; groups ranked by their first
    entity's keys (known before unknown, lexicographic, ties by first appearance); the first
    kept, the rest dropped, then restored in rank order while the condition holds.
    Datasets whose limit is unknown stop ("unknown" in `stopped`, cleared in `active`)."""
    limit = _limit(ev, action, active, stopped) if action.limit is not None else None
    live = table.live & active[table.ds]
    cand = live if action.where is None else live & truth(action.where(ev, fr), fr.n)
    rows = np.flatnonzero(cand)
    if not len(rows):
        return
    g = _rank_groups(ev, action, table, fr, rows)
    several = g.count[g.ds] > 1
    keep_n = limit[g.ds] if limit is not None else np.ones(len(rows), dtype=np.int64)
    new_live = table.live.copy()
    new_live[rows[several & (g.row_ord >= keep_n)]] = False
    ev.set_live(table, new_live)
    if limit is not None or action.while_ is None:
        return
    _restore_while(ev, action, table, g)


def _limit(ev: CorpusEvaluation, action: VAction, active: np.ndarray, stopped: np.ndarray) -> np.ndarray:
    """Groups to keep per dataset (at least 1); an unknown or NaN limit stops the dataset."""
    n_ds = ev.corpus.n
    c = action.limit(ev, ev.frame("dataset"))
    lv = np.broadcast_to(np.asarray(c.v, dtype=np.float64), (n_ds,))
    bad = (mask_of(c.unk, n_ds) | np.isnan(lv)) & active
    stopped[bad] = "unknown"
    active &= ~bad  # (the caller's running mask: these datasets stop here)
    return np.maximum(1, np.floor(np.clip(np.nan_to_num(lv, nan=1.0), -1e15, 1e15))).astype(np.int64)


def _rank_groups(ev: CorpusEvaluation, action: VAction, table: Table, fr: Frame, rows: np.ndarray
                 ) -> RankedGroups:
    """Group the candidate rows per dataset and rank the groups by the first row's ranking keys."""
    gkey = _group_keys(ev, action, fr, rows)
    ds = table.ds[rows]
    pairs = np.stack([ds, gkey], axis=1)
    _, first_idx, group = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    first_row = rows[first_idx]
    n_groups = len(first_idx)
    sort_keys = _rank_keys(ev, action, fr, first_row)
    gds = table.ds[first_row]
    order = np.lexsort(tuple(reversed([gds] + sort_keys + [first_row])))
    ordinal = np.empty(n_groups, dtype=np.int64)
    sorted_ds = gds[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_ds)) + 1]
    seg = np.repeat(starts, np.diff(np.r_[starts, n_groups]))
    ordinal[order] = np.arange(n_groups) - seg
    count = np.bincount(gds, minlength=ev.corpus.n)
    return RankedGroups(rows, ds, ordinal[group], first_row, gds, ordinal, count)


def _group_keys(ev: CorpusEvaluation, action: VAction, fr: Frame, rows: np.ndarray) -> np.ndarray:
    """Per candidate row, an int64 equal exactly when the group keys are (each row its own
    group without ``by``; unknown keys form one group)."""
    if action.group is None:
        return rows.astype(np.int64)
    n = fr.n
    g = action.group(ev, fr)
    if g.t not in ("ent", "str", "num", "bool", "rel"):
        raise Unsupported(f"grouping by a {g.t}")
    if g.t == "num":
        g = Col("num", np.broadcast_to(np.asarray(g.v, dtype=np.float64), (n,)) + 0.0, g.unk)
    gkey = value_identity(g, n)[rows]  # equal exactly when the key texts are
    return np.where(mask_of(g.unk, n)[rows], np.int64(-(1 << 62)), gkey)  # unknown groups together


def _rank_keys(ev: CorpusEvaluation, action: VAction, fr: Frame, first_row: np.ndarray) -> list[np.ndarray]:
    """Lexsort keys of the groups' first rows: per ranking key, (unknown flag, value)."""
    n = fr.n
    sort_keys: list[np.ndarray] = []
    for fn in action.rank:
        r = fn(ev, fr)
        unk = mask_of(r.unk, n)[first_row]
        v = np.broadcast_to(np.asarray(r.v), (n,))[first_row]
        if r.t == "str":
            v = text_rank()[v]
        elif r.t in ("num", "bool"):
            v = v.astype(np.float64)
        else:
            raise Unsupported(f"ranking by a {r.t}")
        sort_keys += [unk.astype(np.int8), np.where(unk, 0, v)]
    return sort_keys


def _restore_while(ev: CorpusEvaluation, action: VAction, table: Table, g: RankedGroups) -> None:
    """Make the dropped groups live again in rank order, per dataset, while ``while`` holds for
    the group's first entity; a group for which it fails is dropped again and ends the dataset's
    restoring."""
    a: A.KeepAction = action.decl  # type: ignore[assignment]
    n_ds = ev.corpus.n
    most = int(g.count.max())
    first_of_group = np.full((n_ds, most), -1, dtype=np.int64)
    first_of_group[g.gds, g.ordinal] = g.first_row
    adding = g.count > 1
    redrop: list[np.ndarray] = []  # groups whose condition failed: dropped again at the end
    for k in range(1, most):
        trying = adding & (g.count > k)
        if not trying.any():
            break
        sel = g.rows[(g.row_ord == k) & trying[g.ds]]
        new_live = table.live.copy()
        new_live[sel] = True
        ev.set_live(table, new_live)
        dsf = ev.frame("dataset")
        dsf.vars[a.kind] = Col("ent", np.maximum(first_of_group[:, k], 0), ekind=a.kind)
        ok = truth(action.while_(ev, dsf), n_ds)
        failed = trying & ~ok
        if failed.any():
            # datasets are independent, so a failed group can stay live until the end: the
            # datasets still trying see none of it
            redrop.append(sel[failed[table.ds[sel]]])
            adding &= ~failed
    if redrop:
        new_live = table.live.copy()
        new_live[np.concatenate(redrop)] = False
        ev.set_live(table, new_live)


def text_rank() -> np.ndarray:
    """code -> position of its text in sorted order (strings rank by text, not by code)."""
    texts = STRINGS.texts
    rank = np.empty(len(texts), dtype=np.float64)
    rank[np.argsort(np.array(texts, dtype=object))] = np.arange(len(texts))
    return rank
