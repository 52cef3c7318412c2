"""Plain values out of a corpus evaluation (and out of the interpreter, to compare).

`dataset_values` gives, for one dataset, ``{(kind, entity key, attribute): value}``
for every derived value of every live entity: floats in canonical units, bools,
strings, entity keys, tuples of keys, or `UNKNOWN`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from almarules.dsl.checker import plural
from almarules.engine.columnar.columns import STRINGS, Col
from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation
from almarules.engine.evaluate.program import Evaluation
from almarules.engine.evaluate.values import Entity, Unknown

UNKNOWN = "<unknown>"


def derived_names(ev: Any) -> dict[str, list[str]]:
    """Kind -> derived and scored attributes (sorted), dataset first (as the interpreter reports)."""
    kinds = ev.p.schema.kinds
    out: dict[str, list[str]] = {}
    for kind in ["dataset"] + sorted(k for k in kinds if k != "dataset"):
        names = sorted(a for a, info in kinds[kind].items() if info.origin in ("derived", "score", "outcome"))
        if names:
            out[kind] = names
    return out


def plain_value(ev: CorpusEvaluation, c: Col, i: int) -> Any:
    if c.unk is not None and c.unk[i]:
        return UNKNOWN
    v = c.v[i] if isinstance(c.v, np.ndarray) and c.v.ndim == 1 else c.v
    if c.t == "num":
        return float(v)
    if c.t == "bool":
        return bool(v)
    if c.t == "str":
        return STRINGS.texts[int(v)]
    if c.t == "ent":
        return ev.table_of(c.ekind).keys[int(v)]
    if c.t == "rel":
        offsets, items = c.base
        keys = ev.table_of(c.ekind).keys
        return tuple(keys[j] for j in items[offsets[int(v)]:offsets[int(v) + 1]].tolist())
    if c.t == "nums":
        offsets, items = c.base
        return tuple(items[offsets[int(v)]:offsets[int(v) + 1]].tolist())
    return v


def live_rows(ev: CorpusEvaluation, kind: str, d: int) -> list[int]:
    """Rows of `kind` in dataset d, in entity order (none when the collection is unknown)."""
    if kind == "dataset":
        return [d]
    coll = plural(kind)
    if coll not in ev.schema.collections:
        return []
    rel = ev.column("dataset", coll)
    if rel.unk is not None and rel.unk[d]:
        return []
    offsets, items = rel.base
    return items[offsets[d]:offsets[d + 1]].tolist()


def live_mask(ev: CorpusEvaluation, kind: str) -> np.ndarray:
    """Which rows of `kind` are live entities of their dataset (not dropped, their collection known)."""
    t = ev.table_of(kind)
    if kind == "dataset":
        return np.ones(t.n, dtype=bool)
    live = t.live.copy()
    unknown = ev.coll_unknown.get(kind)
    if unknown is not None:
        live &= ~unknown[t.ds]
    coll = plural(kind)
    if coll in ev.schema.collections:
        rel = ev.column("dataset", coll)
        if rel.unk is not None:
            live &= ~rel.unk[t.ds]
    return live


def dataset_values(ev: CorpusEvaluation, d: int) -> dict[tuple[str, str, str], Any]:
    out: dict[tuple[str, str, str], Any] = {}
    for kind, names in derived_names(ev).items():
        rows = live_rows(ev, kind, d)
        if not rows:
            continue
        keys = ev.table_of(kind).keys
        for name in names:
            col = ev.column(kind, name)
            for r in rows:
                out[(kind, keys[r], name)] = plain_value(ev, col, r)
    return out


def interpreter_values(ev: Evaluation) -> dict[tuple[str, str, str], Any]:
    """The same mapping from a per-dataset `Evaluation`."""
    out: dict[tuple[str, str, str], Any] = {}
    for ent, name, value in ev.compute_all():
        out[(ent.kind, ent.key, name)] = interpreter_plain(value)
    return out


def interpreter_plain(value: Any) -> Any:
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Entity):
        return value.key
    if isinstance(value, tuple):
        return tuple(interpreter_plain(v) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def same_value(a: Any, b: Any, rtol: float = 1e-12) -> bool:
    """Equal, with real numbers equal to `rtol` (numpy's vectorised transcendental functions
    may differ from libm's in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
    return a == b
