"""Collections created by ``emit`` rules, for every dataset at once: walking the rule bodies,
assembling the created table in the interpreter's order (duplicates dropped), and entity keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from almarules.engine.columnar.columns import STRINGS, Col, Unsupported, expand, mask_of
from almarules.engine.columnar.tables import Table
from almarules.engine.columnar.vcompile import Frame, expand_binders
from almarules.engine.columnar.vnodes import VEmit
from almarules.engine.evaluate.values import key_text

if TYPE_CHECKING:
    from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation

# a block of emitted rows: (values by name, path of body positions and binder rows, dataset per row)
Block = tuple[dict[str, Col], list[np.ndarray], np.ndarray]


def emit_collection(ev: CorpusEvaluation, kind: str) -> None:
    """Create the entities of a collection rule for every dataset, in the interpreter's order;
    sets ``ev.tables[kind]`` and ``ev.coll_unknown[kind]`` (datasets whose collection is unknown)."""
    n = ev.corpus.n
    fr = Frame(n, np.arange(n, dtype=np.int64), {"dataset": Col("ent", np.arange(n, dtype=np.int64),
                                                                 ekind="dataset")})
    blocks: list[Block] = []
    bad = np.zeros(n, dtype=bool)
    _walk(ev, ev.vp.collections[kind], fr, [np.arange(n, dtype=np.int64)], np.arange(n), blocks, bad)
    table = _assemble(ev, kind, blocks, bad)
    ev.tables[kind] = table
    ev.coll_unknown[kind] = bad


def reemit_collection(ev: CorpusEvaluation, kind: str) -> None:
    """Create a collection anew (what it depends on changed); dropped entities stay dropped."""
    if any(k == kind for k, _ in ev.overlay):
        raise Unsupported(f"a cascade both sets {kind} values and changes what creates them")
    old = ev.tables.pop(kind)
    gone = np.flatnonzero(~old.live)
    dropped = set(zip(old.ds[gone].tolist(), old.keys_of(gone), strict=True))
    emit_collection(ev, kind)
    t = ev.tables[kind]
    if dropped:
        t.live = np.array([(d, k) not in dropped for d, k in zip(t.ds.tolist(), t.keys, strict=True)], dtype=bool)
    ev.memo.clear()


def _walk(ev: CorpusEvaluation, body: list, fr: Frame, path: list[np.ndarray], root: np.ndarray,
          blocks: list[Block], bad: np.ndarray) -> None:
    """Append a block per ``emit`` reached through the ``for`` binders; mark in `bad` the datasets
    where an emitted value or a binder's source is unknown."""
    for i, item in enumerate(body):
        here = path + [np.full(fr.n, i, dtype=np.int64)]
        if isinstance(item, VEmit):
            values = {name: fn(ev, fr) for name, fn in item.assigns}
            for c in values.values():
                if c.unk is not None:
                    bad[fr.ds[c.unk]] = True
            blocks.append((values, here, fr.ds))
            continue
        inner, parent, pending = expand_binders(ev, fr, item.binders)
        if pending is not None:
            bad[fr.ds[pending]] = True
        inner_path = [p[parent] for p in here] + [np.arange(inner.n, dtype=np.int64)]
        _walk(ev, item.body, inner, inner_path, root[parent], blocks, bad)


def _assemble(ev: CorpusEvaluation, kind: str, blocks: list[Block], bad: np.ndarray) -> Table:
    """The created table: rows ordered by (dataset, path), the first of equal values kept."""
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
    keep_idx = _first_of_each(ds_sorted, [value_identity(cols[name], len(order)) for name in names], bad)
    table = Table(kind, ds_sorted[keep_idx], None)
    table.created = {name: c.take(keep_idx) for name, c in cols.items()}
    table.key_fn = lambda rows: _keys(ev, table, names, rows)
    return table


def value_identity(c: Col, n: int) -> np.ndarray:
    """An int64 per row that is equal exactly when the values (hence the key texts) are."""
    v = np.broadcast_to(np.asarray(c.v), (n,))
    if c.t in ("ent", "str", "bool"):
        return v.astype(np.int64)
    if c.t == "num":  # -0.0 and 0.0 (key text "0"), and every NaN ("nan"), are one value each
        x = v.astype(np.float64) + 0.0
        return np.where(np.isnan(x), np.nan, x).view(np.int64)
    if c.t == "rel":
        return _list_identity(v, *c.base)
    raise Unsupported(f"entity keys from {c.t} values")


def _list_identity(v: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Lists (CSR rows v): the element of a one-element list, -1 for empty, -2 - i for the i-th
    distinct list of several elements."""
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


def _concat(cols: list[Col], sizes: list[int]) -> Col:
    """Columns of consecutive blocks of rows as one column (lists re-based into one CSR)."""
    t = cols[0].t
    if t == "rel":
        offsets = [np.zeros(1, dtype=np.int64)]
        items = []
        total = 0
        for c, size in zip(cols, sizes, strict=True):
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
    return Col(t, np.concatenate([c.full(s) for c, s in zip(cols, sizes, strict=True)]), _cat_unk(cols, sizes),
               cols[0].ekind)


def _cat_unk(cols: list[Col], sizes: list[int]) -> Optional[np.ndarray]:
    if all(c.unk is None for c in cols):
        return None
    return np.concatenate([mask_of(c.unk, s) for c, s in zip(cols, sizes, strict=True)])


# ---------------------------------------------------------------- entity keys
def _keys(ev: CorpusEvaluation, table: Table, names: list[str], rows: np.ndarray) -> list[str]:
    """Keys of created rows: their emitted values' key texts joined by '.'."""
    parts = [_key_texts(ev, table.created[name], rows) for name in names]
    if len(parts) == 1:
        return parts[0]
    return [".".join(t) for t in zip(*parts, strict=True)]


def _key_texts(ev: CorpusEvaluation, c: Col, rows: np.ndarray) -> list[str]:
    """How each row's value appears in an entity key (`almarules.engine.evaluate.values.key_text`)."""
    v = c.v[rows] if isinstance(c.v, np.ndarray) and c.v.ndim == 1 else np.broadcast_to(c.v, (len(rows),))
    if c.t == "ent":
        return _keys_of(ev, c.ekind, v)
    if c.t == "str":
        return _texts_array()[v].tolist()
    if c.t == "rel":
        offsets, items = c.base
        parent, elem, _ = expand(np.asarray(v, dtype=np.int64), offsets, items)
        texts = _keys_of(ev, c.ekind, elem)
        counts = np.bincount(parent, minlength=len(v))
        if (counts == 1).all():
            return texts
        ends = np.cumsum(counts).tolist()
        starts = [e - k for e, k in zip(ends, counts.tolist(), strict=True)]
        return ["_".join(texts[a:b]) for a, b in zip(starts, ends, strict=True)]
    if c.t in ("num", "bool"):
        return [key_text(x) for x in v.tolist()]
    raise Unsupported(f"entity keys from {c.t} values")


def _keys_of(ev: CorpusEvaluation, kind: str, rows: np.ndarray) -> list[str]:
    """Key texts of rows of a kind, each distinct row keyed once."""
    if not len(rows):
        return []
    uniq, inverse = np.unique(rows, return_inverse=True)
    texts = np.empty(len(uniq), dtype=object)
    texts[:] = ev.table_of(kind).keys_of(uniq)
    return texts[inverse.reshape(-1)].tolist()


def _texts_array() -> np.ndarray:
    """Every interned string as an object array (rebuilt when strings were added)."""
    global _TEXTS
    if len(_TEXTS) != len(STRINGS.texts):
        _TEXTS = np.empty(len(STRINGS.texts), dtype=object)
        _TEXTS[:] = STRINGS.texts
    return _TEXTS


_TEXTS = np.empty(0, dtype=object)
