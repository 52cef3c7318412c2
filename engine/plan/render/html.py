"""A `Plan` as one self-contained HTML5 page: Jinja2 templates (`templates/plan.html.j2`), the
shared stylesheet (`assets/almarules.css`) inlined, inline SVG charts, no scripts, no external
assets; the same plan gives the same bytes.

This module builds the view model the templates draw. The page puts what needs a human first
(errors, warnings, notices), then the charts (cascade sizes per step against their limits, run
time per image against the requirement), the QA scores, the cascade with identical actions
grouped, the imaging list with its deciding columns first, totals, residuals grouped by
formula and cases, run time and the recipe. Every number with a ref links to its derivation
(`<a class="num" href="#vN">`). Derivations are listed once each, grouped by the rule that made
them (formula, doc, file:line once; inputs shared by every value once; facts by pattern and
count), in three shapes:
- a matrix per entity kind for the rules whose inputs are the row's own entity's values or
  shared ones: a row per key, a column per rule, the anchor `vN` on the cell (the column's
  `th[data-path]`, e.g. `image[·].size`, with the row's key gives the ref);
- a table per other rule: a row per value (anchor `vN` on the `tr`; the table's `data-path`
  with the row's key gives the ref), a column per varying input, linked;
- a `section.deriv` with `data-ref` for a value made alone, and one table of the parameters.
Ids are short (`vN` values, `rN` rule groups, `mN` matrices, `wN` residual groups) to keep
long plans small: the long-baseline example is 0.8 MB as one section per value, ~145 KB so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Optional

import jinja2
from markupsafe import Markup

from almarules.engine.plan.render import charts
from almarules.engine.plan.render.common import (
    COLOUR_MEANING, Derivation, Index, cell_refs, column_header, derivations, fits_word, image_columns,
    ordered_warnings, row_cell, stage_state, warning_counts)
from almarules.engine.plan.model import CascadePlan, Cell, Column, Plan

_HERE = resources.files("almarules.engine.plan.render")
_KEYED = re.compile(r"\[[^\]]*\]")
# the columns that decide, first (present ones only, in this order); the rest keep the plan's order
DECIDING = ("threshold", "imsize", "size", "product_size", "run_time", "time", "sensitivity", "cell", "beam",
            "nchan", "nbin", "pblimit")
WRAP = ("threshold",)  # columns whose long texts (residual ranges) may wrap


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    return env


_SECTION = re.compile(r"^/\*\s*-*\s*(\w+)\s*-*\s*\*/\s*$", re.M)  # '/* ---- plan */', '/* weblog */'
PAGES = ("plan", "weblog")


@lru_cache(maxsize=4)
def stylesheet(page: str = "plan") -> str:
    """The shared stylesheet (`assets/almarules.css`) as inlined into one kind of page: the base
    classes and that page's own section (sections start with a comment line naming a page in
    PAGES: '/* ---- plan */', '/* weblog */'), comments dropped and whitespace collapsed."""
    css = (_HERE / "assets" / "almarules.css").read_text(encoding="utf-8")
    return minify_css(keep_sections(css, page))


def keep_sections(css: str, page: str) -> str:
    """The CSS before the first page section, then only `page`'s section."""
    marks = [m for m in _SECTION.finditer(css) if m.group(1) in PAGES]
    out = css[: marks[0].start()] if marks else css
    for m, nxt in zip(marks, marks[1:] + [None], strict=True):
        if m.group(1) == page:
            out += css[m.start(): nxt.start() if nxt else len(css)]
    return out


def minify_css(css: str) -> str:
    """Comments out, runs of whitespace to one space, none around { } ; , > nor after a colon
    (this stylesheet has no strings or selectors where that would matter)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"\s+", " ", css)
    css = re.sub(r"\s*([{};,>])\s*", r"\1", css).replace(";}", "}")
    return re.sub(r":\s+", ":", css).strip() + "\n"


def pattern(path: str) -> str:
    """'image[X.25.cube].threshold' -> 'image[·].threshold'."""
    return _KEYED.sub("[·]", path)


def _breakable(key: str) -> Markup:
    """An image key that may wrap after its dots ('X.TARGET.25.cube' -> 'X.<wbr>TARGET.<wbr>...')."""
    return Markup(".<wbr>").join(key.split("."))


def _bare(text: str) -> str:
    """Letters and digits only: '25,27' and '25_27' compare equal."""
    return re.sub(r"[^A-Za-z0-9]", "", text)


def short(text: str) -> str:
    """A derivation's value as shown in a row: 'unknown (waits for X)' -> 'unknown' (the row's
    notes say what it waits for); anything else unchanged."""
    return "unknown" if text.startswith("unknown (waits for ") else text


def entity_key(path: str) -> Optional[str]:
    """The key in the first brackets of a path ('image[X.25.cube].size' -> 'X.25.cube'), or None."""
    m = _KEYED.search(path)
    return m.group(0)[1:-1] if m else None


# ---------------------------------------------------------------- view model

@dataclass
class Num:
    """A number (or word) as shown; `href` is the anchor of its derivation, when it has one."""

    text: str
    href: Optional[str] = None
    status: Optional[str] = None  # None when known


@dataclass
class Link:
    """A path in code, linked to its derivation when there is one; `shown` is its value text."""

    text: str
    href: Optional[str] = None
    shown: Optional[str] = None


@dataclass
class Group:
    """Identical items with a count and which: 'image[·].pblimit = 0.5' for 27 images: keys."""

    text: str
    count: int
    which: list[Link] = field(default_factory=list)


@dataclass
class Row:
    """A derivation row of a rule group (or the whole of a single derivation)."""

    anchor: str
    ref: str
    key: str  # the entity key shown in the row (or the full path)
    value: Num
    inputs: dict[str, list[Link]]  # varying input pattern -> links
    notes: list[tuple[str, Any]]  # (label, text or list of links)


@dataclass
class RuleGroup:
    """The values one rule made (or the parameters), shown together."""

    anchor: str
    title: str  # the rule ('derive image.threshold') or 'parameters'
    path: Optional[str]  # 'image[·].threshold' when the rows are keyed by entity
    doc: Optional[str]
    at: Optional[str]
    formula: Optional[str]
    shared: list[Link]  # inputs the same for every row
    facts: list[Group]  # fact patterns read, with counts
    columns: list[str]  # varying input patterns
    rows: list[Row]
    single: bool = False
    units: dict[str, str] = field(default_factory=dict)  # column ('=' for the value) -> unit stripped from its cells
    notes: list[tuple[str, str]] = field(default_factory=list)  # notes the same for every row (key as '·')
    own: list[Link] = field(default_factory=list)  # inputs of the row's own entity (patterns -> their groups)
    label: str = ""  # a matrix column's header: the attribute, '(2)' for its second rule in the same matrix

    @property
    def kind(self) -> str:
        """The entity kind of a keyed group ('image' for 'image[·].size'), else ''."""
        return self.path.split("[", 1)[0] if self.path else ""

    @property
    def attr(self) -> str:
        return self.path.split("].", 1)[-1] if self.path else self.title

    @property
    def flat(self) -> bool:
        """Keyed, every input shared or of the row's own entity, no per-row notes: one column of a
        matrix (rows = keys) is enough to show it."""
        return bool(self.path) and not self.columns and not any(r.notes for r in self.rows)


@dataclass
class Matrix:
    """Flat rule groups of one entity kind side by side: one row per key, one column per group."""

    anchor: str
    kind: str
    groups: list[RuleGroup]
    keys: list[str]
    chunks: list[list[RuleGroup]]  # columns split into tables of at most MATRIX_COLUMNS
    cells: dict[tuple[str, str], Row]  # (group anchor, key) -> row


MATRIX_COLUMNS = 7


class _View:
    """Everything the template needs, computed once from the plan."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.index = Index(plan.decisions, plan.params_allowed)
        refs = cell_refs(plan)
        for c in plan.cascades:
            keys = list(c.before) + [k for s in c.steps for k in s.after]
            refs += [k for k in keys if self.index.lookup(k) is not None]
        for r in plan.residuals:
            refs += [u for u in r.unknowns if self.index.lookup(u) is not None]
        self.derivs: list[Derivation] = derivations(plan, dict.fromkeys(refs), closure=True, index=self.index)
        self.anchors: dict[str, str] = {d.ref: f"v{i}" for i, d in enumerate(self.derivs, 1)}
        self.residual_groups = self._residual_groups()
        self.pending: dict[str, str] = {ref: g["anchor"] for g in self.residual_groups for ref in g["refs"]}

    # ------------------------------------------------------------ small pieces
    def num(self, c: Optional[Cell]) -> Num:
        if c is None:
            return Num("\u2014")
        status = c.status if c.status != "known" else None
        return Num(c.text, self.anchors.get(c.ref) if c.ref else None, status)

    def link(self, path: str, shown: Optional[str] = None) -> Link:
        return Link(path, self.anchors.get(path), shown)

    # ------------------------------------------------------------ sections
    def attention(self) -> list[dict[str, Any]]:
        return [{"level": w.level, "message": w.message, "ref": self.link(w.ref) if w.ref else None, "at": w.at}
                for w in ordered_warnings(self.plan)]

    def scores(self) -> list[dict[str, Any]]:
        return [{"label": s.label, "num": self.num(s.cell), "colour": s.cell.colour,
                 "meaning": COLOUR_MEANING.get(s.cell.colour or "", ""), "reasons": s.reasons}
                for s in self.plan.scores]

    def columns(self) -> list[Column]:
        """Image columns: key first, then the deciding ones, then the rest; columns that only
        repeat a part of every row's key (field, intent, spws, mode) are left out."""
        cols = [c for c in image_columns(self.plan) if not self._in_key(c)]
        head = [c for c in cols if c.key == "key"]
        rest = [c for c in cols if c.key != "key"]
        ranked = sorted(rest, key=lambda c: (DECIDING.index(c.key) if c.key in DECIDING else len(DECIDING)))
        return head + ranked

    def _in_key(self, col: Column) -> bool:
        if col.key == "key" or not self.plan.images:
            return False
        for row in self.plan.images:
            c = row.cells.get(col.key)
            if c is None or c.ref or _bare(c.text) not in {_bare(part) for part in row.key.split(".")}:
                return False
        return True

    def images(self) -> dict[str, Any]:
        """The imaging table: a column's unit goes to its header and out of the cells that are
        'number unit' (others, e.g. a residual's range, keep theirs)."""
        cols = self.columns()
        heads, columns = [], []
        for c in cols:
            if c.key == "key":
                heads.append({"label": "image", "key": "key", "wrap": False, "unit": None})
                continue
            cells = [self.num(row_cell(r, c)) for r in self.plan.images]
            unit = c.unit or _unit([n.text for n in cells if n.status is None])
            if unit:
                for n in cells:
                    if _UNIT.match(n.text) and n.text.endswith(" " + unit):
                        n.text = n.text.removesuffix(" " + unit)
            label = column_header(c, self.plan).removesuffix(f" ({c.unit})") if c.unit else c.label
            heads.append({"label": f"{label} ({unit})" if unit else label, "key": c.key, "wrap": c.key in WRAP,
                          "unit": unit})
            columns.append(cells)
        rows = [{"key": _breakable(r.key), "cells": [col[i] for col in columns]} for i, r in enumerate(self.plan.images)]
        return {"heads": heads, "rows": rows, "keyed": any(c.key == "key" for c in cols)}

    def cascades(self) -> list[dict[str, Any]]:
        return [self._cascade(c) for c in self.plan.cascades]

    def _cascade(self, c: CascadePlan) -> dict[str, Any]:
        keys = list(dict.fromkeys(list(c.before) + [k for s in c.steps for k in s.after]))
        steps = [{"n": i, "name": s.name, "status": s.status, "at": s.at, "changes": group_changes(s.changes),
                  "after": [s.after.get(k, "") for k in keys]} for i, s in enumerate(c.steps, 1)]
        return {"name": c.name, "at": c.at, "outcome": c.outcome, "message": c.message,
                "sizes": [self.link(k) for k in keys], "before": [c.before.get(k, "") for k in keys],
                "steps": steps}

    def _residual_groups(self) -> list[dict[str, Any]]:
        groups: dict[tuple, dict[str, Any]] = {}
        for r in self.plan.residuals:
            key = entity_key(r.ref) or ""
            formula = r.formula.replace(f"[{key}]", "[·]") if key else r.formula
            sig = (pattern(r.ref), formula, tuple(pattern(u) for u in r.unknowns),
                   tuple((c.condition, c.text) for c in r.cases), r.summary)
            g = groups.setdefault(sig, {"anchor": f"w{len(groups) + 1}", "path": pattern(r.ref), "formula": formula,
                                        "unknowns": sorted({pattern(u) for u in r.unknowns}), "cases": r.cases,
                                        "summary": r.summary, "refs": [], "which": []})
            g["refs"].append(r.ref)
            g["which"].append(Link(key or r.ref, self.anchors.get(r.ref)))
        return list(groups.values())

    def runtime(self) -> Optional[dict[str, Any]]:
        rt = self.plan.runtime
        if rt is None:
            return None
        return {"word": fits_word(rt), "limit": rt.limit, "total": self.num(rt.total),
                "terms": [{"label": t.label, "num": self.num(t.cell)} for t in rt.terms],
                "calibration": rt.calibration}

    def recipe(self) -> list[dict[str, Any]]:
        return [{"n": n, "name": s.name, "state": stage_state(s), "why": s.why, "at": s.at,
                 "steers": [{"label": d.label, "num": self.num(d.cell)} for d in s.decisions]}
                for n, s in enumerate(self.plan.recipe, 1)]

    # ------------------------------------------------------------ charts
    def charts(self) -> list[dict[str, Any]]:
        out = []
        for c in self.plan.cascades:
            if not c.before:
                continue
            keys = list(dict.fromkeys(list(c.before) + [k for s in c.steps for k in s.after]))
            for k in keys:
                texts = [c.before.get(k, "")] + [s.after.get(k, "") for s in c.steps]
                labels = ["before"] + [f"{i}. {s.name}" for i, s in enumerate(c.steps, 1)]
                bars = [charts.Bar(lab, charts.parse_quantity(t, "GB"), t) for lab, t in zip(labels, texts, strict=True)]
                limit = self._limit_for(k)
                name = k.removeprefix("dataset.").replace("_", " ")
                svg = charts.size_panel(f"{c.name}: {name}", "GB", bars,
                                        charts.parse_quantity(limit.text, "GB") if limit else None,
                                        limit.text if limit else "")
                cap = (f"{name} after each step of cascade {c.name}" if c.steps else
                       f"{name} of cascade {c.name}, no step needed") + (
                    f" against {limit.ref.removeprefix('param:')} = {limit.text}" if limit else " (no limit found)")
                out.append({"svg": Markup(svg), "caption": cap, "href": "#cascade", "width": 420})
        rt = self.plan.runtime
        if rt is not None and self.plan.images:
            col = next((c.key for c in self.plan.columns if c.key in ("run_time", "time")), None)
            if col is not None:
                bars = [charts.Bar(r.key, charts.parse_quantity(r.cells[col].text, "h"), r.cells[col].text)
                        for r in self.plan.images if col in r.cells]
                total = charts.Bar("all images", charts.parse_quantity(rt.total.text, "h"), rt.total.text)
                svg = charts.runtime_bars(bars, total, charts.parse_quantity(rt.limit, "h"), rt.limit, width=560)
                out.append({"svg": Markup(svg), "caption": f"estimated imaging time: {rt.total.text} "
                            f"against the {rt.limit} requirement", "href": "#runtime", "width": 560})
        return out

    def _limit_for(self, key: str) -> Optional[Cell]:
        """The `max_*` parameter that limits a cascade size (dataset.largest_cube -> max_cube_size):
        the one sharing most name words with it, ignoring size/max/largest/total; None if none."""
        generic = {"max", "size", "largest", "total", "dataset"}
        words = set(re.split(r"[._]", key)) - generic
        best: tuple[int, str] = (0, "")
        for p in sorted(self.index.params):
            if p.startswith("max_"):
                common = len(words & (set(p.split("_")) - generic))
                if common > best[0]:
                    best = (common, p)
        if not best[1]:
            return None
        param = self.index.params[best[1]]
        return Cell(text=param.text, ref=f"param:{best[1]}")

    # ------------------------------------------------------------ derivations
    def rule_groups(self) -> list[RuleGroup]:
        by: dict[tuple, list[Derivation]] = {}
        for d in self.derivs:
            sig = ("param",) if d.kind == "param" else (d.kind, d.rule, d.at, d.formula, d.doc, pattern(d.path))
            by.setdefault(sig, []).append(d)
        groups = [self._group(i, ds) for i, ds in enumerate(by.values(), 1)]
        where = {}
        for g in groups:
            where.setdefault(g.path, g.anchor)
        for g in groups:
            for link in g.own:
                link.href = where.get(link.text)
        return groups

    def derivation_blocks(self) -> tuple[list[Matrix], list[RuleGroup]]:
        """Matrices of the flat groups (one per entity kind, kinds in order of first appearance),
        and the other groups in order."""
        groups = self.rule_groups()
        kinds: dict[str, list[RuleGroup]] = {}
        for g in groups:
            if g.flat:
                kinds.setdefault(g.kind, []).append(g)
        matrices = []
        for n, (kind, gs) in enumerate(kinds.items(), 1):
            first = {g.attr: i for i, g in reversed(list(enumerate(gs)))}
            gs = sorted(gs, key=lambda g: first[g.attr])  # rules of one attribute side by side
            seen: dict[str, int] = {}
            for g in gs:
                seen[g.attr] = seen.get(g.attr, 0) + 1
                g.label = g.attr if seen[g.attr] == 1 else f"{g.attr} ({seen[g.attr]})"
            keys = list(dict.fromkeys(r.key for g in gs for r in g.rows))
            chunks = [gs[i:i + MATRIX_COLUMNS] for i in range(0, len(gs), MATRIX_COLUMNS)]
            cells = {(g.anchor, r.key): r for g in gs for r in g.rows}
            matrices.append(Matrix(f"m{n}", kind, gs, keys, chunks, cells))
        return matrices, [g for g in groups if not g.flat]

    def _group(self, n: int, ds: list[Derivation]) -> RuleGroup:
        first = ds[0]
        if first.kind == "param":
            rows = [Row(self.anchors[d.ref], d.ref, d.ref.removeprefix("param:"), Num(d.text), {},
                        [("accepts", d.allowed or ""), ("at", d.at or "")]) for d in ds]
            return RuleGroup(f"r{n}", "parameters", None, None, None, None, [], [], [], rows)
        keyed = len(ds) > 1 and all(entity_key(d.path) for d in ds)
        inputs = [[i for i in d.inputs if i.ref] for d in ds]
        shared_refs = set.intersection(*({i.ref for i in ins} for ins in inputs)) if len(ds) > 1 else set()
        columns = list(dict.fromkeys(pattern(i.text) for ins in inputs for i in ins if i.ref not in shared_refs))
        shared = [Link(i.text, self.anchors.get(i.ref or ""), i.shown) for i in inputs[0] if i.ref in shared_refs]
        facts: dict[str, int] = {}
        for d in ds:
            for i in d.inputs:
                if not i.ref:
                    facts[pattern(i.text)] = facts.get(pattern(i.text), 0) + 1
        own = set()
        if keyed:  # inputs of the row's own entity: shown in the same row of their own group
            for d, ins in zip(ds, inputs, strict=True):
                kind, key = d.path.split("[", 1)[0], entity_key(d.path)
                own |= {i.ref for i in ins if i.text.startswith(f"{kind}[{key}].")}
            columns = [c for c in columns if any(i.ref not in own and i.ref not in shared_refs and pattern(i.text) == c
                                                 for ins in inputs for i in ins)]
        own_patterns = list(dict.fromkeys(pattern(i.text) for ins in inputs for i in ins if i.ref in own))
        rows = []
        for d, ins in zip(ds, inputs, strict=True):
            cells: dict[str, list[Link]] = {}
            for i in ins:
                if i.ref not in shared_refs and i.ref not in own:
                    shown = short(i.shown) if i.shown is not None else None
                    cells.setdefault(pattern(i.text), []).append(Link(i.text, self.anchors.get(i.ref or ""), shown))
            rows.append(Row(self.anchors[d.ref], d.ref, (entity_key(d.path) or d.path) if keyed else d.path,
                            Num(short(d.text) if keyed else d.text, None, d.status if d.status != "known" else None), cells,
                            self._notes(d)))
        single = len(ds) == 1
        if single:  # one value: every input is listed with its path
            shared = [Link(i.text, self.anchors.get(i.ref or ""), i.shown) for i in inputs[0]]
            columns = []
            rows[0].inputs = {}
        group = RuleGroup(f"r{n}", first.rule or first.kind, pattern(first.path) if keyed else None, first.doc,
                          first.at, first.formula, shared, [Group(p, k) for p, k in facts.items()], columns, rows,
                          single)
        if keyed:
            group.notes = _hoist_notes(rows)
            group.units = _strip_units(rows, columns)
            group.own = [Link(p) for p in own_patterns]
        return group

    def _notes(self, d: Derivation) -> list[tuple[str, Any]]:
        notes: list[tuple[str, Any]] = []
        if d.kind == "missing":
            notes.append(("note", "this ref names no value in the decisions"))
        elif d.origin and d.origin != "rule":
            notes.append(("origin", d.origin))
        if d.reasons:
            notes.append(("reasons", "; ".join(d.reasons)))
        if d.waits_for:
            notes.append(("waits for", [self.link(w) for w in d.waits_for]))
        if d.ref in self.pending:
            notes.append(("until then", Link("cases", self.pending[d.ref])))
        if d.errors:
            notes.append(("errors", "; ".join(d.errors)))
        return notes

    def context(self) -> dict[str, Any]:
        p = self.plan
        return {"plan": p, "css": Markup(stylesheet()), "counts": warning_counts(p), "attention": self.attention(),
                "overview": [{"label": i.label, "num": self.num(i.cell)} for i in p.overview],
                "charts": (charts_ := self.charts()), "chart_columns": _grid_columns(charts_), "scores": self.scores(), "cascades": self.cascades(),
                "images": self.images(), "totals": [{"label": i.label, "num": self.num(i.cell)} for i in p.totals],
                "residuals": self.residual_groups, "runtime": self.runtime(), "recipe": self.recipe(), "recipe_file": _one_file(s.at for s in p.recipe),
                "blocks": self.derivation_blocks(), "nderivs": len(self.derivs)}


def _keyless(row: Row, value: Any) -> Optional[str]:
    """A note's value with the row's key as '·' (None when it holds a link: those stay per row)."""
    if isinstance(value, str):
        return value.replace(row.key, "·")
    if isinstance(value, list) and all(isinstance(v, Link) and not v.href for v in value):
        return ", ".join(v.text.replace(f"[{row.key}]", "[·]") for v in value)
    return None


def _hoist_notes(rows: list[Row]) -> list[tuple[str, str]]:
    """Notes that read the same in every row once the row's key is '·': removed from the rows,
    returned once for the group."""
    first = rows[0]
    out = []
    for label, value in list(first.notes):
        text = _keyless(first, value)
        if text is None:
            continue
        if all(any(lab == label and _keyless(r, v) == text for lab, v in r.notes) for r in rows):
            out.append((label, text))
            for r in rows:
                r.notes = [(lab, v) for lab, v in r.notes if not (lab == label and _keyless(r, v) == text)]
    return out


_UNIT = re.compile(r"^[-+0-9.eE]+ (\S+)$")


def _unit(texts: list[str]) -> Optional[str]:
    """The unit every text shares ('0.2 GB', '13 GB' -> 'GB'), or None."""
    units = {m.group(1) if (m := _UNIT.match(t)) else None for t in texts}
    return units.pop() if len(units) == 1 and None not in units else None


def _strip_units(rows: list[Row], columns: list[str]) -> dict[str, str]:
    """Moves a unit shared by a whole column (and by the value column, '=') into its header."""
    out: dict[str, str] = {}
    unit = _unit([r.value.text for r in rows])
    if unit:
        out["="] = unit
        for r in rows:
            r.value.text = r.value.text.removesuffix(" " + unit)
    for c in columns:
        links = [link for r in rows for link in r.inputs.get(c, [])]
        unit = _unit([link.shown or "" for link in links])
        if unit:
            out[c] = unit
            for link in links:
                link.shown = (link.shown or "").removesuffix(" " + unit)
    return out


def _one_file(ats: Any) -> Optional[str]:
    """The file of 'file:line:col' locations when they all share one (shown once in a header)."""
    files = {at.rsplit(":", 2)[0] for at in ats if at.count(":") >= 2}
    return files.pop() if len(files) == 1 else None


def _grid_columns(figures: list[dict[str, Any]]) -> Optional[str]:
    """CSS grid columns for the charts: in proportion to their natural widths when 2 or 3 share
    a row, the natural width for one alone; None (the stylesheet's auto-fit grid) otherwise."""
    if len(figures) == 1:
        return f"grid-template-columns: minmax(0, {figures[0]['width'] + 30}px)"
    if not 2 <= len(figures) <= 3:
        return None
    return "grid-template-columns: " + " ".join(f"minmax(0, {f['width']}fr)" for f in figures)


def group_changes(changes: list[str]) -> list[Group]:
    """A cascade step's changes with identical actions on different entities grouped:
    'image[A].pblimit = 0.5', 'image[B].pblimit = 0.5' -> 'image[·].pblimit = 0.5' x2 (A, B);
    a change alone in its pattern is kept as written. Order of first appearance."""
    by: dict[str, list[str]] = {}
    for ch in changes:
        by.setdefault(pattern(ch), []).append(ch)
    out = []
    for pat, items in by.items():
        if len(items) == 1:
            out.append(Group(items[0], 1))
        else:
            out.append(Group(pat, len(items), [Link(entity_key(ch) or ch) for ch in items]))
    return out


def render(plan: Plan, explain: bool = False) -> str:
    """The plan as one self-contained HTML page. Derivations are always included (every number
    links to one); `explain` is accepted for a uniform signature and changes nothing."""
    return _env().get_template("plan.html.j2").render(_View(plan).context())
