"""A batch of datasets as Arrow tables: summaries flattened, every column converted and checked,
the computed facts added; a dataset that fails any check is left out and reported with the
same lines `almarules plan` gives for it alone (the facts schema's own messages, field paths)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa

from almarules.engine.corpus.computed import computed_columns
from almarules.engine.corpus.convert import convert_column
from almarules.engine.corpus.flatten import Flattener
from almarules.engine.facts.summary import FactsError, parse_summary


@dataclass
class Batch:
    """Valid datasets' tables (``_dataset`` numbers them 0..n-1 in input order) and the rest, skipped."""

    tables: dict[str, pa.Table]
    sources: list[str]
    skipped: list[tuple[str, list[str]]] = field(default_factory=list)  # (source, problems)

    @property
    def n(self) -> int:
        return len(self.sources)


def batch_of_summaries(summaries: Sequence[Any], sources: Sequence[str], trusted: bool = False) -> Batch:
    """Tables of parsed summaries (mappings as a JSON/YAML summary holds them, or `dump_summary`'s).

    `trusted`: the summaries come from validated models (the messages of a failure are then ours)."""
    fl = Flattener()
    for d in summaries:
        fl.add(d)
    return _assemble(fl, None if trusted else summaries, list(sources))


def _assemble(fl: Flattener, originals: Optional[Sequence[Any]], sources: list[str]) -> Batch:
    problems = fl.problems
    arrays: dict[str, dict[str, pa.Array]] = {}
    for kind, raw in fl.tables.items():
        cols: dict[str, pa.Array] = {}
        for c in raw.spec.columns:
            if c.computed:
                continue

            def fail(i: int, text: str, name: str = c.name, kind: str = kind, ds: list = raw.ds) -> None:
                sep = "" if text.startswith("[") else ": "
                problems.setdefault(ds[i], []).append(f"{fl.path(kind, i, name)}{sep}{text}")

            cols[c.name] = convert_column(c, raw.values[c.name], fail)
        arrays[kind] = cols
    for kind, raw in fl.tables.items():
        children = {k: (arrays[k], np.asarray(fl.tables[k].owner_row, dtype=np.int64)) for k in raw.spec.children}
        extra = computed_columns(kind, arrays[kind], children, raw.n)
        if extra:
            arrays[kind].update(extra)
    skipped = [(sources[d], _messages(originals, d, sources[d], problems[d])) for d in sorted(problems)]
    keep = np.ones(fl.n, dtype=bool)
    keep[sorted(problems)] = False
    renumber = np.cumsum(keep) - 1
    tables = {kind: _table(fl, kind, arrays[kind], keep, renumber, sources) for kind in fl.tables}
    return Batch(tables, [s for s, k in zip(sources, keep.tolist(), strict=True) if k], skipped)


def _messages(originals: Optional[Sequence[Any]], d: int, source: str, ours: list[str]) -> list[str]:
    """The facts schema's messages for a refused summary (ours if it, unexpectedly, accepts it)."""
    if originals is not None:
        try:
            parse_summary(originals[d], source)
        except FactsError as exc:
            return exc.problems
    return [f"{source}: {p}" if p else f"{source}: top level" for p in dict.fromkeys(ours)]


def _table(fl: Flattener, kind: str, cols: dict[str, pa.Array], keep: np.ndarray, renumber: np.ndarray,
           sources: list[str]) -> pa.Table:
    raw = fl.tables[kind]
    spec = raw.spec
    ds = np.asarray(raw.ds, dtype=np.int64)
    rows = keep[ds] if len(ds) else np.zeros(0, dtype=bool)
    out: list[pa.Array] = [pa.array(renumber[ds[rows]], type=pa.int64())]
    if spec.parent not in (None, "dataset"):
        parent_pos = np.asarray(fl.tables[spec.parent].pos, dtype=np.int64)
        out.append(pa.array(parent_pos[np.asarray(raw.owner_row, dtype=np.int64)[rows]], type=pa.int64()))
    if kind == "dataset":
        out.append(pa.array([s for s, k in zip(sources, keep.tolist(), strict=True) if k], type=pa.string()))
    mask = pa.array(rows)
    out += [cols[c.name].filter(mask) for c in spec.columns]
    return pa.Table.from_arrays(out, schema=spec.arrow_schema(with_source=kind == "dataset"))


__all__ = ["Batch", "batch_of_summaries"]
