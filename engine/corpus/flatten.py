"""Summaries (parsed JSON/YAML mappings) into the raw columns of the corpus's tables.

One walk over each summary appends every entity's values to its table's lists, in dataset
order then list order, and notes what the schema forbids structurally (unknown or computed
keys, a mapping or a list where the other is expected, a list over its limit). Values are
not converted here (engine.corpus.convert does it column by column).
"""

from __future__ import annotations

from typing import Any, Optional

from almarules.engine.corpus.layout import TableSpec, layout
from almarules.engine.facts.summary import kind_text

MISSING = object()  # a required fact that is absent


class RawTable:
    """The rows of one table in a batch: where each sits, and each column's raw values."""

    def __init__(self, spec: TableSpec):
        self.spec = spec
        self.ds: list[int] = []  # the dataset (position in the batch)
        self.pos: list[int] = []  # position in the owner's list (0 for a nested entity)
        self.owner_row: list[int] = []  # row of the owner in its table (-1 for the dataset's own)
        self.values: dict[str, list] = {c.name: [] for c in spec.columns if not c.computed}
        self.required = [(c.name, self.values[c.name]) for c in spec.columns
                         if c.required and not c.structure and not c.computed]
        self.optional = [(c.name, self.values[c.name]) for c in spec.columns
                         if not c.required and not c.structure and not c.computed]
        self.n = 0


class Flattener:
    """Appends summaries to raw tables; `problems[d]` lists what is structurally wrong with dataset d."""

    def __init__(self) -> None:
        self.specs = layout()
        self.tables = {kind: RawTable(spec) for kind, spec in self.specs.items()}
        self.nested = {kind: [(self.specs[k], self.tables[kind].values[self.specs[k].attr]) for k in spec.children]
                       for kind, spec in self.specs.items()}
        self.problems: dict[int, list[str]] = {}
        self.n = 0

    def fail(self, ds: int, text: str) -> None:
        self.problems.setdefault(ds, []).append(text)

    def add(self, data: Any) -> None:
        """Append one summary."""
        ds = self.n
        self.n += 1
        if data is None:
            self.fail(ds, "the summary is empty (expected a mapping of dataset facts)")
        elif not isinstance(data, dict):
            self.fail(ds, f"top level must be a mapping of dataset facts, not {kind_text(data)}")
        self._entity(self.specs["dataset"], data if isinstance(data, dict) else {}, ds, -1, 0)

    def _entity(self, spec: TableSpec, obj: dict, ds: int, owner_row: int, pos: int) -> None:
        t = self.tables[spec.kind]
        row = t.n
        t.n += 1
        t.ds.append(ds)
        t.pos.append(pos)
        t.owner_row.append(owner_row)
        get = obj.get
        for name, values in t.required:
            values.append(get(name, MISSING))
        for name, values in t.optional:
            values.append(get(name))
        if obj.keys() - spec.inputs:
            self._unknown(spec, obj, ds, row)
        for sub, counts in self.nested[spec.kind]:
            value = get(sub.attr)
            if value is None:
                counts.append(None)
            elif not sub.many:
                counts.append(True)
                if isinstance(value, dict):
                    self._entity(sub, value, ds, row, 0)
                else:
                    self.fail(ds, f"{self.path(spec.kind, row, sub.attr)}: expected a mapping, not {kind_text(value)}")
            elif not isinstance(value, list):
                counts.append(None)
                self.fail(ds, f"{self.path(spec.kind, row, sub.attr)}: expected a list, not {kind_text(value)}")
            else:
                limit = spec.by_name[sub.attr].max_len
                counts.append(len(value))
                if limit is not None and len(value) > limit:
                    self.fail(ds, f"{self.path(spec.kind, row, sub.attr)}: {len(value)} items, more than the limit "
                                  f"of {limit} (far above real data: see 'almarules schema')")
                    continue
                for j, item in enumerate(value):
                    if isinstance(item, dict):
                        self._entity(sub, item, ds, row, j)
                    else:
                        self.fail(ds, f"{self.path(spec.kind, row, sub.attr)}[{j}]: expected a mapping, not "
                                      f"{kind_text(item)}")

    def _unknown(self, spec: TableSpec, obj: dict, ds: int, row: int) -> None:
        where = self.path(spec.kind, row)
        prefix = f"{where}: " if where else ""
        top = "" if where else " at top level"
        for key in sorted(obj.keys() - spec.inputs, key=str):
            if not isinstance(key, str):
                self.fail(ds, f"{prefix}key {key!r} is not a string{top}")
            elif key in spec.computed_names:
                self.fail(ds, f"{prefix}'{key}' is computed from other facts and cannot be given{top}")
            else:
                self.fail(ds, f"{prefix}unknown field '{key}'{top}")

    def path(self, kind: str, row: int, attr: Optional[str] = None) -> str:
        """The summary path of a row (``fields[2].pointings[5]``), and of one of its attributes."""
        parts: list[str] = [attr] if attr else []
        while True:
            spec = self.specs[kind]
            t = self.tables[kind]
            if spec.parent is None:
                break
            parts.append(f"{spec.attr}[{t.pos[row]}]" if spec.many else spec.attr)
            kind, row = spec.parent, t.owner_row[row]
        return ".".join(reversed(parts))


__all__ = ["Flattener", "RawTable", "MISSING"]
