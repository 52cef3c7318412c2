"""What the plan renderers (text, markdown, HTML) share: cells and refs, derivations, anchors, ordering.

Everything here is deterministic: refs are listed in order of first appearance in the
plan, anchors are slugs of refs disambiguated in that order, and nothing reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Union

from almarules.engine.evaluate.decisions import Decisions, Param, Reason, Value
from almarules.engine.plan.model import Cell, Column, Plan, PlanWarning, RunTime, StagePlan

LEVELS: tuple[str, ...] = ("error", "warning", "notice")
COLOUR_MEANING: dict[str, str] = {
    "red": "error", "yellow": "warning", "blue": "below standard", "green": "standard/good"}
KEY_LABEL = "image"  # header of the first (row key) column of the imaging list


# ---------------------------------------------------------------- cells and refs

def plan_cells(plan: Plan) -> Iterator[Cell]:
    """Every cell of the plan, in the order renderers show them."""
    for item in plan.overview:
        yield item.cell
    for stage in plan.recipe:
        for item in stage.decisions:
            yield item.cell
    for row in plan.images:
        for col in plan.columns:
            if col.key in row.cells:
                yield row.cells[col.key]
    for item in plan.totals:
        yield item.cell
    for score in plan.scores:
        yield score.cell
    if plan.runtime is not None:
        yield plan.runtime.total
        for item in plan.runtime.terms:
            yield item.cell


def cell_refs(plan: Plan) -> list[str]:
    """Distinct refs of the plan's cells, warnings and residuals, in order of first appearance."""
    refs = [c.ref for c in plan_cells(plan) if c.ref]
    refs += [w.ref for w in ordered_warnings(plan) if w.ref]
    refs += [r.ref for r in plan.residuals]
    return list(dict.fromkeys(refs))


# ---------------------------------------------------------------- looking up values

class Index:
    """Values and parameters of `Decisions` by path / name (built once: plans hold hundreds)."""

    def __init__(self, decisions: Decisions, params_allowed: Optional[dict[str, str]] = None):
        self.values: dict[str, Value] = {}
        for v in decisions.values:
            self.values.setdefault(v.path, v)
        self.params: dict[str, Param] = {p.name: p for p in decisions.params}
        self.allowed: dict[str, str] = params_allowed or {}  # param -> what it accepts (Plan.params_allowed)

    def value(self, path: str) -> Optional[Value]:
        return self.values.get(path)

    def lookup(self, ref: str) -> Union[Value, Param, None]:
        """The Value of a path, or the Param of a "param:NAME" ref."""
        if ref.startswith("param:"):
            return self.params.get(ref[6:])
        return self.values.get(ref)


# ---------------------------------------------------------------- derivations

@dataclass
class Input:
    """One input of a derivation: a value or param (with its text) or a fact / table or band row."""

    text: str  # as recorded: "image[X].sensitivity", "param:tlimit", "table:dr_correction_12m:2"
    kind: str  # "value", "param", "table row", "band row", "fact"
    shown: Optional[str] = None  # the value's text when known here
    ref: Optional[str] = None  # set for values and params: the ref of its own derivation


@dataclass
class Derivation:
    """Where one referenced value came from, ready to render."""

    ref: str
    kind: str  # "value", "param" or "missing" (ref not in decisions)
    path: str
    text: str
    status: str = "known"
    origin: Optional[str] = None
    rule: Optional[str] = None
    at: Optional[str] = None
    allowed: Optional[str] = None  # a parameter's accepted values and where declared
    formula: Optional[str] = None
    doc: Optional[str] = None
    inputs: list[Input] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    waits_for: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def rule_at(self) -> str:
        """'[rule, at]' as one bracket (empty when neither is known)."""
        parts = [p for p in (self.rule, self.at) if p]
        return f"[{', '.join(parts)}]" if parts else ""


def reason_text(r: Reason) -> str:
    """'- 0.1 no flux calibrator (qa.rules:19:5)'."""
    return f"{r.sign} {r.amount:g} {r.reason} ({r.at})"


def input_of(text: str, index: Index) -> Input:
    if text.startswith("param:"):
        p = index.params.get(text[6:])
        return Input(text, "param", p.text if p else None, text if p else None)
    if text.startswith("table:"):
        return Input(text, "table row")
    if text.startswith("band:"):
        return Input(text, "band row")
    v = index.value(text)
    if v is not None:
        return Input(text, "value", v.text, text)
    return Input(text, "fact")


def derivation(ref: str, index: Index) -> Derivation:
    item = index.lookup(ref)
    if isinstance(item, Param):
        return Derivation(ref=ref, kind="param", path=ref, text=item.text, origin=item.origin,
                          rule=f"param {item.name}", at=item.at, allowed=index.allowed.get(item.name))
    if item is None:
        return Derivation(ref=ref, kind="missing", path=ref, text="(not in these decisions)", status="unknown")
    return Derivation(ref=ref, kind="value", path=item.path, text=item.text, status=item.status,
                      origin=item.origin, rule=item.rule, at=item.at, formula=item.formula, doc=item.doc,
                      inputs=[input_of(t, index) for t in item.inputs],
                      reasons=[reason_text(r) for r in item.reasons],
                      waits_for=list(item.waits_for), errors=list(item.errors))


def derivations(plan: Plan, refs: Optional[Iterable[str]] = None, closure: bool = False,
                index: Optional[Index] = None) -> list[Derivation]:
    """Derivations of `refs` (default: `cell_refs(plan)`); with `closure`, also of every input
    that is itself a value or param, breadth first, so a reader can walk down to the facts."""
    index = index or Index(plan.decisions, plan.params_allowed)
    todo = list(dict.fromkeys(cell_refs(plan) if refs is None else refs))
    seen = set(todo)
    out: list[Derivation] = []
    i = 0
    while i < len(todo):
        d = derivation(todo[i], index)
        out.append(d)
        i += 1
        if closure:
            for inp in d.inputs:
                if inp.ref and inp.ref not in seen:
                    seen.add(inp.ref)
                    todo.append(inp.ref)
    return out


# ---------------------------------------------------------------- anchors

def slug(ref: str) -> str:
    """A deterministic id fragment: ASCII letters, digits, '_' and '-' only, never empty."""
    s = re.sub(r"[^A-Za-z0-9_]+", "-", ref).strip("-")
    return s or "x"


def anchor_ids(refs: Iterable[str], prefix: str = "d-") -> dict[str, str]:
    """ref -> unique anchor id ('d-' + slug), a numeric suffix resolving collisions in order."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for ref in refs:
        if ref in out:
            continue
        base = prefix + slug(ref)
        aid, n = base, 1
        while aid in used:
            n += 1
            aid = f"{base}-{n}"
        used.add(aid)
        out[ref] = aid
    return out


# ---------------------------------------------------------------- ordering and words

def ordered_warnings(plan: Plan) -> list[PlanWarning]:
    """Errors, then warnings, then notices; the plan's order kept within a level."""
    return sorted(plan.warnings, key=lambda w: LEVELS.index(w.level))


def warning_counts(plan: Plan) -> str:
    """'1 error, 2 warnings, 1 notice' (levels that occur only), or 'nothing'."""
    parts = []
    for level in LEVELS:
        n = sum(1 for w in plan.warnings if w.level == level)
        if n:
            parts.append(f"{n} {level}{'s' if n != 1 else ''}")
    return ", ".join(parts) or "nothing"


def stage_state(stage: StagePlan) -> str:
    return "run" if stage.run else ("skipped" if stage.run is False else "waits")


def fits_word(rt: RunTime) -> str:
    return "yes" if rt.fits else ("no" if rt.fits is False else "unknown")


def colour_word(colour: Optional[str]) -> str:
    """'blue (below standard)', or 'no colour'."""
    return f"{colour} ({COLOUR_MEANING[colour]})" if colour else "no colour"


def column_header(col: Column, plan: Plan) -> str:
    """The column label, with its unit unless every cell of the column already shows it."""
    if not col.unit:
        return col.label
    known = [r.cells[col.key] for r in plan.images if col.key in r.cells and r.cells[col.key].status == "known"]
    if known and all(c.text.endswith(" " + col.unit) for c in known):
        return col.label
    return f"{col.label} ({col.unit})"


def image_columns(plan: Plan) -> list[Column]:
    """The plan's columns, preceded by the row key unless a column already holds it."""
    if any(c.key == "key" for c in plan.columns):
        return list(plan.columns)
    return [Column(key="key", label=KEY_LABEL)] + list(plan.columns)


def row_cell(row, col: Column) -> Optional[Cell]:
    """The row's cell for a column; the synthetic 'key' column is the row's key (no ref)."""
    if col.key in row.cells:
        return row.cells[col.key]
    if col.key == "key":
        return Cell(text=row.key)
    return None
