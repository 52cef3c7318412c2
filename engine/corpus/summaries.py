"""Datasets of a corpus back as summaries (the mappings `dump_summary` gives): for the per-dataset
interpreter (rule sets the vectorised evaluator does not compile) and to check a corpus round trip."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa

from almarules.engine.corpus.access import FactTables, contiguous
from almarules.engine.corpus.layout import DATASET, OWNER, layout


def summaries(facts: FactTables, datasets: Optional[Sequence[int]] = None) -> list[dict[str, Any]]:
    """The summaries of some datasets (default: all), in that order: known facts only, none computed.
    Only the rows of those datasets are turned into Python values."""
    wanted = list(range(facts.n)) if datasets is None else list(datasets)
    index = {d: i for i, d in enumerate(wanted)}
    specs = layout()
    picked = {kind: _picked(facts, kind, None if datasets is None else wanted) for kind in specs}
    rows: dict[str, list[tuple[int, int, dict]]] = {}  # kind -> (dataset slot, owner position, values)
    for kind, spec in specs.items():
        take, ds = picked[kind]
        names = [c.name for c in spec.columns if not c.computed and not c.structure]
        owner = _values(facts, kind, OWNER, take) if spec.parent not in (None, "dataset") else [0] * len(ds)
        cols = [_values(facts, kind, name, take) for name in names]
        rows[kind] = [(index[d], owner[r], {name: col[r] for name, col in zip(names, cols, strict=True)
                                            if col[r] is not None}) for r, d in enumerate(ds)]
    dataset_rows = {slot: values for slot, _, values in rows["dataset"]}
    docs = [dataset_rows[i] for i in range(len(wanted))]
    _attach(specs["dataset"], [[d] for d in docs], rows, facts, index, picked)
    return docs


def _picked(facts: FactTables, kind: str, wanted: Optional[list[int]]) -> tuple[Optional[np.ndarray], list[int]]:
    """The rows of `kind` of the wanted datasets (None: every row), and their datasets."""
    ds = contiguous(facts.column(kind, DATASET)).to_numpy(zero_copy_only=False)
    if wanted is None:
        return None, ds.tolist()
    take = np.flatnonzero(np.isin(ds, np.asarray(wanted, dtype=ds.dtype)))
    return take, ds[take].tolist()


def _values(facts: FactTables, kind: str, name: str, take: Optional[np.ndarray]) -> list[Any]:
    col = facts.column(kind, name)
    return (col if take is None else col.take(pa.array(take))).to_pylist()


def _attach(spec, owners: list[list[dict]], rows: dict, facts: FactTables, index: dict[int, int],
            picked: dict) -> None:
    """Put each nested kind's rows into their owners (owners[slot] = that dataset's owner entities)."""
    for kind in spec.children:
        sub = layout()[kind]
        take, ds = picked[spec.kind]
        given: list[list[Any]] = [[] for _ in owners]  # per dataset, its owners' count/presence of the attribute
        for d, v in zip(ds, _values(facts, spec.kind, sub.attr, take), strict=True):
            given[index[d]].append(v)
        per_ds: list[list[dict]] = [[] for _ in owners]
        for slot, pos, values in rows[kind]:
            owner = owners[slot][pos if sub.parent != "dataset" else 0]
            if sub.many:
                owner.setdefault(sub.attr, []).append(values)
            else:
                owner[sub.attr] = values
            per_ds[slot].append(values)
        for slot, flags in enumerate(given):
            for pos, present in enumerate(flags):
                if present is not None and sub.many:
                    owners[slot][pos].setdefault(sub.attr, [])
        _attach(sub, per_ds, rows, facts, index, picked)


__all__ = ["summaries"]
