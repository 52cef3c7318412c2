"""What a rule edit changes across a corpus: `almarules diff`.

Both versions are evaluated over the same corpus (vectorised); entities are matched
by dataset and key; every derived value that differs is a change. Each changed
attribute is attributed to the rule or parameter edits it depends on (through the
rules of the attributes it reads, by name), found by comparing the two rule sets
declaration by declaration (source locations ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from pydantic import BaseModel, Field

from almarules.dsl import ast as A
from almarules.dsl.checker import plural
from almarules.dsl.loader import RuleSet
from almarules.dsl.units import format_number, from_canonical
from almarules.engine.columnar.columns import STRINGS, Col
from almarules.dsl.dependencies import Dependencies
from almarules.engine.columnar.results import derived_names, live_mask
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vevaluate import CorpusEvaluation, VProgram
from almarules.engine.evaluate.program import Program


class Edit(BaseModel):
    """One declaration that differs between the versions."""

    what: str  # "param tlimit", "derive image.threshold", "cascade productsize step 'bin channels'"
    change: str  # "4 -> 2", "changed", "added", "removed"
    at: Optional[str] = None  # where, in the new version (or the base, if removed)
    names: list[str] = Field(default_factory=list)  # the names whose values it can change


class ValueChange(BaseModel):
    dataset: str
    entity: str
    old: str
    new: str


class AttributeChange(BaseModel):
    attribute: str  # "image.threshold"
    datasets: int
    values: int
    causes: list[str]  # Edit.what
    examples: list[ValueChange]


class DatasetChange(BaseModel):
    dataset: str
    values: int
    attributes: list[str]
    entities_added: list[str] = Field(default_factory=list)
    entities_removed: list[str] = Field(default_factory=list)
    cascade: Optional[str] = None  # "bin channels, image to PB 0.5 -> bin channels"


class DiffReport(BaseModel):
    base: list[str]
    new: list[str]
    datasets: int
    changed_datasets: int
    changed_values: int
    edits: list[Edit]
    attributes: list[AttributeChange]
    by_dataset: list[DatasetChange]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


# ---------------------------------------------------------------- rule edits
def _decls(rs: RuleSet) -> dict[str, tuple[Any, set[str], str]]:
    """key -> (declaration contents for comparison, names it can change, location)."""
    out: dict[str, tuple[Any, set[str], str]] = {}
    for name, p in rs.params.items():
        out[f"param {name}"] = (p.value, {name}, str(p.loc))
    for target, rules in rs.derives.items():
        attr = target.split(".", 1)[1]
        out[f"derive {target}"] = (tuple((r.expr, r.when, r.priority) for r in rules), {attr}, str(rules[0].loc))
    for s in rs.scores.values():
        out[f"score {s.target}"] = ((s.start, s.terms, s.clamp, s.when), {s.attr}, str(s.loc))
    for t in list(rs.tables.values()) + list(rs.bands.values()):
        out[f"{'table' if isinstance(t, A.Table) else 'bands'} {t.name}"] = (t.rows, {t.name}, str(t.loc))
    for c in rs.collections.values():
        out[f"collection {c.kind}"] = (c.body, {plural(c.kind)}, str(c.loc))
    for c in rs.cascades.values():
        out[f"cascade {c.name} until"] = (c.until, _step_names(c, c.steps), str(c.loc))
        for st in c.steps:
            out[f"cascade {c.name} step {st.name!r}"] = ((st.actions, st.when), _step_names(c, [st]), str(st.loc))
    return out


def _step_names(c: A.Cascade, steps) -> set[str]:
    """What cascade steps can change: the attributes and parameters they set, the collections they
    trim (through the steps they repeat too), and the cascade's outcome."""
    names: set[str] = {f"{c.name}_outcome"}
    by_name = {st.name: st for st in c.steps}
    todo = list(steps)
    seen: set[str] = set()
    while todo:
        st = todo.pop()
        if st.name in seen:
            continue
        seen.add(st.name)
        for a in st.actions:
            if isinstance(a, A.SetAction):
                names.add(a.name)
            elif isinstance(a, A.RepeatAction):
                todo.extend(by_name[n] for n in a.steps if n in by_name)
            elif getattr(a, "kind", None):
                names.add(plural(a.kind))
    return names


def rule_edits(base: RuleSet, new: RuleSet, base_params: dict[str, float], new_params: dict[str, float]) -> list[Edit]:
    b, n = _decls(base), _decls(new)
    edits = []
    for key in sorted(set(b) | set(n)):
        if key in b and key in n:
            if b[key][0] == n[key][0]:
                continue
            change = "changed"
            if key.startswith("param "):
                name = key[6:]
                change = f"{format_number(base_params[name], 6)} -> {format_number(new_params[name], 6)} (canonical units)"
                change = _param_change(base.params[name], new.params[name]) or change
            edits.append(Edit(what=key, change=change, at=n[key][2], names=sorted(b[key][1] | n[key][1])))
        elif key in n:
            edits.append(Edit(what=key, change="added", at=n[key][2], names=sorted(n[key][1])))
        else:
            edits.append(Edit(what=key, change="removed", at=b[key][2], names=sorted(b[key][1])))
    return edits


def _param_change(old: A.Param, new: A.Param) -> Optional[str]:
    def text(p: A.Param) -> Optional[str]:
        e = p.value
        sign = ""
        if isinstance(e, A.Unary) and e.op == "-":
            e, sign = e.operand, "-"
        if isinstance(e, A.Num):
            return f"{sign}{e.text or format_number(e.value, 6)}{' ' + e.unit if e.unit else ''}"
        return None
    a, b = text(old), text(new)
    return f"{a} -> {b}" if a and b else None


# ---------------------------------------------------------------- value changes
@dataclass
class _Side:
    ev: CorpusEvaluation
    program: Program


def diff(base: Program, new: Program, corpus: Corpus, examples: int = 5) -> DiffReport:
    """Evaluate both versions over `corpus` and report what changes and why."""
    sides = [_Side(VProgram(p).run(corpus), p) for p in (base, new)]
    edits = rule_edits(base.rs, new.rs, base.params, new.params)
    deps_new = Dependencies(new.rs, new.schema.collections)
    deps_base = Dependencies(base.rs, base.schema.collections)
    names = corpus.names
    per_dataset: dict[int, DatasetChange] = {}
    attributes: list[AttributeChange] = []

    def ds_change(d: int) -> DatasetChange:
        if d not in per_dataset:
            per_dataset[d] = DatasetChange(dataset=names[d], values=0, attributes=[])
        return per_dataset[d]

    ran = _steps_ran(sides)
    kinds_b, kinds_n = derived_names(sides[0].ev), derived_names(sides[1].ev)
    for kind in list(dict.fromkeys(list(kinds_b) + list(kinds_n))):
        match = _match_entities(kind, sides[0].ev, sides[1].ev)
        if match is None:
            continue
        rows_b, rows_n, ds, keys, added, removed = match
        for d, k in added:
            ds_change(d).entities_added.append(f"{kind}[{k}]")
        for d, k in removed:
            ds_change(d).entities_removed.append(f"{kind}[{k}]")
        for attr in sorted(set(kinds_b.get(kind, [])) | set(kinds_n.get(kind, []))):
            in_b, in_n = attr in kinds_b.get(kind, []), attr in kinds_n.get(kind, [])
            if not (in_b and in_n) or not len(rows_b):
                continue
            cb, cn = sides[0].ev.column(kind, attr), sides[1].ev.column(kind, attr)
            changed = _differs(cb, cn, rows_b, rows_n, sides[0].ev, sides[1].ev)
            idx = np.flatnonzero(changed)
            if not len(idx):
                continue
            unit = new.schema.kinds[kind][attr].unit or base.schema.kinds[kind][attr].unit
            path = f"{kind}.{attr}"
            changed_ds = set(np.unique(ds[idx]).tolist())
            causes = [e.what for e in edits if any(
                d.touches(attr, e.names, kind if (kind, attr) in d.direct else None) for d in (deps_new, deps_base))
                and _step_ran(e, changed_ds, ran)]
            ex = []
            for j in idx[:examples].tolist():
                ex.append(ValueChange(dataset=names[ds[j]], entity=f"{kind}[{keys[j]}]" if kind != "dataset" else "dataset",
                                      old=_text(cb, rows_b[j], sides[0].ev, unit),
                                      new=_text(cn, rows_n[j], sides[1].ev, unit)))
            for d in np.unique(ds[idx]).tolist():
                c = ds_change(d)
                c.attributes.append(path)
            counts = np.bincount(ds[idx], minlength=corpus.n)
            for d in np.flatnonzero(counts).tolist():
                ds_change(d).values += int(counts[d])
            attributes.append(AttributeChange(attribute=path, datasets=int((counts > 0).sum()), values=len(idx),
                                              causes=causes, examples=ex))
    for cb, cn in zip(sides[0].ev.cascades, sides[1].ev.cascades):
        for d in range(corpus.n):
            if list(cb.steps[d]) != list(cn.steps[d]) or cb.status[d] != cn.status[d]:
                ds_change(d).cascade = (f"{cb.status[d]} [{', '.join(cb.steps[d]) or 'no steps'}] -> "
                                        f"{cn.status[d]} [{', '.join(cn.steps[d]) or 'no steps'}]")
    by_dataset = [per_dataset[d] for d in sorted(per_dataset)]
    attributes.sort(key=lambda a: (-a.datasets, -a.values, a.attribute))
    return DiffReport(base=base.rs.roots, new=new.rs.roots, datasets=corpus.n, changed_datasets=len(by_dataset),
                      changed_values=sum(a.values for a in attributes), edits=edits, attributes=attributes,
                      by_dataset=by_dataset)


def merge_reports(reports: Sequence[DiffReport], datasets: int, examples: int = 5) -> DiffReport:
    """One report from the reports of disjoint parts of a corpus (in corpus order): counts added,
    causes joined, the first `examples` examples and the datasets that change in order."""
    merged: dict[str, AttributeChange] = {}
    for r in reports:
        for a in r.attributes:
            m = merged.get(a.attribute)
            if m is None:
                merged[a.attribute] = a.model_copy(deep=True)
                continue
            m.datasets += a.datasets
            m.values += a.values
            m.causes = list(dict.fromkeys(m.causes + a.causes))
            m.examples = (m.examples + a.examples)[:examples]
    first = reports[0]
    order = {e.what: i for i, e in enumerate(first.edits)}
    for m in merged.values():
        m.causes.sort(key=lambda what: order.get(what, len(order)))
    attributes = sorted(merged.values(), key=lambda a: (-a.datasets, -a.values, a.attribute))
    return DiffReport(base=first.base, new=first.new, datasets=datasets,
                      changed_datasets=sum(r.changed_datasets for r in reports),
                      changed_values=sum(a.values for a in attributes), edits=first.edits, attributes=attributes,
                      by_dataset=[c for r in reports for c in r.by_dataset])


def _steps_ran(sides: list[_Side]) -> dict[str, set[int]]:
    """``cascade NAME step 'S'`` -> datasets where the step applied in either version."""
    ran: dict[str, set[int]] = {}
    for side in sides:
        for c in side.ev.cascades:
            for d, steps in enumerate(c.steps):
                for st in steps:
                    ran.setdefault(f"cascade {c.name} step {st!r}", set()).add(d)
    return ran


def _step_ran(e: Edit, datasets: set[int], ran: dict[str, set[int]]) -> bool:
    """A cascade step's edit can only explain changes in datasets where the step applied."""
    if not e.what.startswith("cascade ") or " step " not in e.what:
        return True
    return bool(ran.get(e.what, set()) & datasets)


def _match_entities(kind: str, eb: CorpusEvaluation, en: CorpusEvaluation):
    """Rows of `kind` live in both evaluations, matched by (dataset, key); and those in only one."""
    try:
        tb, tn = eb.table_of(kind), en.table_of(kind)
    except Exception:  # noqa: BLE001 - a kind only one version creates
        return None
    live_b = live_mask(eb, kind)
    live_n = live_mask(en, kind)
    if kind == "dataset" or tb.backing is not None and tb.backing is tn.backing:
        both = live_b & live_n
        rows = np.flatnonzero(both)
        ds = tb.ds[rows]
        keys = _KeyList(tb, rows)
        added = [(int(tb.ds[r]), tb.keys[r]) for r in np.flatnonzero(live_n & ~live_b).tolist()]
        removed = [(int(tb.ds[r]), tb.keys[r]) for r in np.flatnonzero(live_b & ~live_n).tolist()]
        return rows, rows, ds, keys, added, removed
    kb = {(int(d), k): r for r, d, k in zip(np.flatnonzero(live_b).tolist(), tb.ds[live_b].tolist(),
                                             tb.keys_of(np.flatnonzero(live_b)))}
    kn = {(int(d), k): r for r, d, k in zip(np.flatnonzero(live_n).tolist(), tn.ds[live_n].tolist(),
                                             tn.keys_of(np.flatnonzero(live_n)))}
    common = [key for key in kn if key in kb]
    rows_b = np.array([kb[key] for key in common], dtype=np.int64)
    rows_n = np.array([kn[key] for key in common], dtype=np.int64)
    ds = np.array([key[0] for key in common], dtype=np.int64)
    keys = [key[1] for key in common]
    added = [key for key in kn if key not in kb]
    removed = [key for key in kb if key not in kn]
    return rows_b, rows_n, ds, keys, added, removed


class _KeyList:
    """Keys of some rows of a table, built only when asked for."""

    def __init__(self, table, rows: np.ndarray):
        self.table, self.rows = table, rows

    def __getitem__(self, j: int) -> str:
        return self.table.keys_of(self.rows[j:j + 1])[0]


def _values(c: Col, rows: np.ndarray, ev: CorpusEvaluation) -> tuple[np.ndarray, np.ndarray]:
    """(comparable values, unknown) of some rows: numbers, codes, entity keys, or key tuples."""
    n = len(rows)
    unk = c.unk[rows] if c.unk is not None else np.zeros(n, dtype=bool)
    v = c.v[rows] if isinstance(c.v, np.ndarray) and c.v.ndim == 1 else np.broadcast_to(c.v, (n,))
    if c.t == "ent":
        table = ev.table_of(c.ekind)
        if not table.n:  # no entity of that kind at all: every value is unknown (no row to name)
            return np.full(n, None, dtype=object), unk
        return _objects(table.keys_of(np.where(unk, 0, v)) if n else []), unk
    if c.t in ("rel", "nums"):
        offsets, items = c.base
        if c.t == "rel":
            table = ev.table_of(c.ekind)
            out = [tuple(table.keys_of(items[offsets[o]:offsets[o + 1]])) for o in v.tolist()]
        else:
            out = [tuple(items[offsets[o]:offsets[o + 1]].tolist()) for o in v.tolist()]
        return _objects(out), unk
    return np.asarray(v), unk


def _objects(items: list) -> np.ndarray:
    """`items` as a 1-d object array (tuples stay elements)."""
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def _differs(cb: Col, cn: Col, rows_b: np.ndarray, rows_n: np.ndarray, eb: CorpusEvaluation,
             en: CorpusEvaluation, rtol: float = 1e-12) -> np.ndarray:
    vb, ub = _values(cb, rows_b, eb)
    vn, un = _values(cn, rows_n, en)
    known = ~ub & ~un
    if cb.t == "num" and cn.t == "num":
        with np.errstate(all="ignore"):
            same = (vb == vn) | (np.abs(vb - vn) <= rtol * np.maximum(np.abs(vb), np.abs(vn)))
    elif cb.t != cn.t:
        same = np.zeros(len(rows_b), dtype=bool)
    else:
        same = vb == vn
    return (ub != un) | (known & ~np.asarray(same, dtype=bool))


def _text(c: Col, row: int, ev: CorpusEvaluation, unit: Optional[str]) -> str:
    if c.unk is not None and c.unk[row]:
        return "unknown"
    v = c.v[row] if isinstance(c.v, np.ndarray) and c.v.ndim == 1 else c.v
    if c.t == "num":
        x = float(from_canonical(float(v), unit)) if unit else float(v)
        return f"{format_number(x, 4)}{' ' + unit if unit else ''}"
    if c.t == "bool":
        return "true" if v else "false"
    if c.t == "str":
        return STRINGS.texts[int(v)]
    if c.t == "ent":
        return ev.table_of(c.ekind).keys_of(np.array([int(v)]))[0]
    vals, _ = _values(c, np.array([row]), ev)
    return str(list(vals[0]))


def report_text(r: DiffReport, limit: int = 20) -> str:
    """Summary counts first, then the edits, the attributes that change with their causes, the datasets."""
    lines = [f"diff {', '.join(r.base)} -> {', '.join(r.new)} over {r.datasets} datasets",
             f"  {r.changed_datasets} datasets change, {r.changed_values} values in {len(r.attributes)} attributes",
             "", f"rule edits ({len(r.edits)}):"]
    for e in r.edits:
        lines.append(f"  {e.what}: {e.change}" + (f"   [{e.at}]" if e.at else ""))
    lines += ["", "what changes (attribute: datasets, values; caused by):"]
    for a in r.attributes:
        lines.append(f"  {a.attribute}: {a.datasets} datasets, {a.values} values; "
                     f"caused by {', '.join(a.causes) if a.causes else 'no edit found (indirect)'}")
        for x in a.examples[:3]:
            lines.append(f"      {x.dataset}: {x.entity} {x.old} -> {x.new}")
    lines += ["", f"datasets that change ({r.changed_datasets}):"]
    for d in r.by_dataset[:limit]:
        extra = []
        if d.entities_added:
            extra.append(f"+{len(d.entities_added)} entities")
        if d.entities_removed:
            extra.append(f"-{len(d.entities_removed)} entities")
        if d.cascade:
            extra.append(f"cascade {d.cascade}")
        lines.append(f"  {d.dataset}: {d.values} values in {len(d.attributes)} attributes"
                     + (f"; {'; '.join(extra)}" if extra else ""))
    if r.changed_datasets > limit:
        lines.append(f"  ... and {r.changed_datasets - limit} more (see --json{', and the results' if len(r.by_dataset) < r.changed_datasets else ''})")
    return "\n".join(lines) + "\n"


__all__ = ["diff", "merge_reports", "rule_edits", "DiffReport", "report_text"]
