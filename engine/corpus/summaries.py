"""Datasets of a corpus back as summaries (the mappings `dump_summary` gives): for the per-dataset
interpreter (rule sets the vectorised evaluator does not compile) and to check a corpus round trip."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from almarules.engine.corpus.access import FactTables
from almarules.engine.corpus.layout import DATASET, OWNER, layout


def summaries(facts: FactTables, datasets: Optional[Sequence[int]] = None) -> list[dict[str, Any]]:
    """The summaries of some datasets (default: all), in that order: known facts only, none computed."""
    wanted = list(range(facts.n)) if datasets is None else list(datasets)
    index = {d: i for i, d in enumerate(wanted)}
    specs = layout()
    rows: dict[str, list[tuple[int, int, dict]]] = {}  # kind -> (dataset slot, owner position, values)
    for kind, spec in specs.items():
        names = [c.name for c in spec.columns if not c.computed and not c.structure]
        ds = facts.column(kind, DATASET).to_pylist()
        owner = facts.column(kind, OWNER).to_pylist() if spec.parent not in (None, "dataset") else [0] * len(ds)
        cols = [facts.column(kind, name).to_pylist() for name in names]
        out = rows[kind] = []
        for r, d in enumerate(ds):
            slot = index.get(d)
            if slot is not None:
                out.append((slot, owner[r], {name: col[r] for name, col in zip(names, cols, strict=True)
                                             if col[r] is not None}))
    dataset_rows = {slot: values for slot, _, values in rows["dataset"]}
    docs = [dataset_rows[i] for i in range(len(wanted))]
    _attach(specs["dataset"], [[d] for d in docs], rows, facts, wanted)
    return docs


def _attach(spec, owners: list[list[dict]], rows: dict, facts: FactTables, wanted: list[int]) -> None:
    """Put each nested kind's rows into their owners (owners[slot] = that dataset's owner entities)."""
    for kind in spec.children:
        sub = layout()[kind]
        given = _given(facts, spec.kind, sub.attr, wanted)
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
        _attach(sub, per_ds, rows, facts, wanted)


def _given(facts: FactTables, kind: str, attr: str, wanted: list[int]) -> list[list[Any]]:
    """Per wanted dataset, each of its `kind` entities' count/presence of `attr` (None: absent)."""
    index = {d: i for i, d in enumerate(wanted)}
    out: list[list[Any]] = [[] for _ in wanted]
    for d, v in zip(facts.column(kind, DATASET).to_pylist(), facts.column(kind, attr).to_pylist(), strict=True):
        slot = index.get(d)
        if slot is not None:
            out[slot].append(v)
    return out


__all__ = ["summaries"]
