"""Membership (``a in b``) and ``lookup()`` over the columns of a corpus evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from almarules.engine.columnar.columns import STRINGS, Col, Unsupported, expand, unk_or

if TYPE_CHECKING:
    from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation

_BIG = np.int64(1) << np.int64(32)  # owner * _BIG + key code: one sortable int64 per (owner, key)


def member(ev: CorpusEvaluation, a: Col, b: Col, n: int) -> np.ndarray:
    """``a in b`` for a set of enum members, a per-row collection, or tuples."""
    if b.t == "set" and a.t == "str":
        return _in_enum_set(ev, a, b, n)
    if b.t == "rel" and a.t == "ent":
        return _in_lists(a, b, n, np.int64)
    if b.t == "nums" and a.t == "num":
        return _in_lists(a, b, n, np.float64)
    if b.t == "obj":
        av = np.broadcast_to(a.v, (n,))
        bv = b.full(n)
        texts = STRINGS.texts
        conv = (lambda v: texts[v]) if a.t == "str" else (lambda v: v)
        return np.fromiter((bv[i] is not None and conv(av[i]) in bv[i] for i in range(n)), dtype=bool, count=n)
    raise Unsupported(f"membership of a {a.t} in a {b.t}")


def _in_enum_set(ev: CorpusEvaluation, a: Col, b: Col, n: int) -> np.ndarray:
    """String codes in bitmask sets of the enum `b.ekind`."""
    bits = ev.corpus.bits[b.ekind]
    for name in bits:
        STRINGS.code(name)
    table = np.full(len(STRINGS.texts), -1, dtype=np.int64)
    for name, bit in bits.items():
        table[STRINGS.code(name)] = bit
    codes = np.broadcast_to(np.asarray(a.v, dtype=np.int64), (n,))
    bit = table[np.clip(codes, 0, len(table) - 1)]
    sets = np.broadcast_to(np.asarray(b.v, dtype=np.int64), (n,))
    return (bit >= 0) & (((sets >> np.maximum(bit, 0)) & 1) == 1)


def _in_lists(a: Col, b: Col, n: int, dtype: type) -> np.ndarray:
    """Values in per-row lists (CSR `b.base`), compared as `dtype`."""
    owner = np.broadcast_to(np.asarray(b.v, dtype=np.int64), (n,))
    parent, elem, _ = expand(owner, *b.base)
    av = np.broadcast_to(np.asarray(a.v, dtype=dtype), (n,))
    return np.bincount(parent[elem == av[parent]], minlength=n) > 0


def lookup_entity(ev: CorpusEvaluation, coll: Col, ent: Col, n: int) -> Col:
    """``lookup(coll, x.key)``: key texts are built only for rows whose collection is not empty."""
    if coll.t != "rel" or ent.t != "ent":
        raise Unsupported("lookup() of this kind")
    offsets = coll.base[0]
    owner = np.broadcast_to(np.asarray(coll.v, dtype=np.int64), (n,))
    rows = np.flatnonzero(offsets[owner + 1] > offsets[owner])
    codes = np.full(n, -1, dtype=np.int32)
    if len(rows):
        idx = np.broadcast_to(np.asarray(ent.v, dtype=np.int64), (n,))[rows]
        texts = ev.table_of(ent.ekind).keys_of(idx)
        codes[rows], _ = STRINGS.encode(texts)
    return lookup(ev, coll, Col("str", codes, ent.unk), n)


def lookup(ev: CorpusEvaluation, coll: Col, key: Col, n: int) -> Col:
    """The element of each row's collection whose key is `key` (first match), else unknown."""
    if coll.t != "rel" or key.t != "str":
        raise Unsupported("lookup() of this kind")
    offsets, items = coll.base
    owners = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    keys = ev.key_codes(coll.ekind).v[items].astype(np.int64)
    combined = owners * _BIG + keys
    uniq, first = np.unique(combined, return_index=True)
    owner = np.broadcast_to(np.asarray(coll.v, dtype=np.int64), (n,))
    query = owner * _BIG + np.broadcast_to(np.asarray(key.v, dtype=np.int64), (n,))
    pos = np.searchsorted(uniq, query)
    pos_c = np.minimum(pos, max(len(uniq) - 1, 0))
    found = (pos < len(uniq)) & (uniq[pos_c] == query) if len(uniq) else np.zeros(n, dtype=bool)
    idx = np.where(found, items[first[pos_c]] if len(uniq) else 0, -1)
    return Col("ent", idx, unk_or(coll, key, ~found), ekind=coll.ekind)
