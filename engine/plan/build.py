"""Build the dry-run `Plan` of one dataset from an evaluation of the rules.

Every number shown is a `Cell` naming the value it shows, so renderers can link it
to its derivation. Values that wait for data not yet produced (the dirty dynamic
range decides the DR correction) become `Residual`s: the formula with the knowns
substituted, and the values it takes over the ranges of the tables it passes through,
found by re-evaluating with the unknown pinned at the ends of each range.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

from almarules.dsl import ast as A
from almarules.dsl.format import format_allowed
from almarules.dsl.intervals import Span, span_of
from almarules.dsl.types import NumT
from almarules.dsl.units import format_number, parse_unit
from almarules.engine.evaluate import api
from almarules.engine.evaluate.decisions import Decisions, Value, decisions, source_text
from almarules.engine.evaluate.program import Evaluation, Program
from almarules.engine.evaluate.program import dataset_attrs  # the same walk as the cascades'
from almarules.engine.evaluate.records import Provenance
from almarules.engine.facts.model import CALIBRATION_MEASURED, Dataset
from almarules.engine.plan.model import (
    Case, CascadePlan, CascadeStepPlan, Cell, Column, ImageRow, Labelled, Plan, PlanWarning, Residual, RunTime,
    ScorePlan, StagePlan,
)
from almarules.engine.evaluate.present import show_value
from almarules.engine.evaluate.values import Entity, Unknown

# image columns of the imaging list, in order: (attribute, label); those the rules define are shown
IMAGE_COLUMNS = [
    ("field", "Field"), ("intent", "Intent"), ("spws", "Spws"), ("specmode", "Mode"),
    ("frequency", "Centre frequency"), ("beam", "Beam (planning)"), ("cell", "Cell"), ("imsize", "Image size"),
    ("pblimit", "PB limit"), ("robust", "Robust"), ("deconvolver", "Deconvolver"), ("nchan", "Channels"),
    ("nbin", "Binning"), ("sensitivity", "Sensitivity"), ("threshold", "Threshold"), ("size", "Size"),
    ("product_size", "Product"), ("run_time", "Time"),
]
# dataset.product_size is the product-size cascade's (checkproductsize) estimate; disk_size what the
# imaging writes, the sum of the images' product_size
TOTALS = [("product_size", "Product size"), ("largest_cube", "Largest cube"), ("disk_size", "Products on disk"),
          ("imaging_time", "Imaging time")]
COLOURS = ("red", "yellow", "blue", "green")
LATER_DATA = ("measurements[", "dataset.measurements")  # facts later stages produce (the dirty image's numbers)


def _measured_by_calibration(fact: str) -> bool:
    """`fact` (a path such as ``antenna[DA41].unflagged``, ``dataset.calibration.flagged_after``
    or ``fluxscale[P.0].flux``) is, or lies in, something a calibration stage measures."""
    parts = [p.split("[")[0] for p in fact.split(".")]
    return any(p in CALIBRATION_MEASURED or p == "fluxscale" for p in parts)


def _waits_for_calibration(v: Value) -> bool:
    """`v` is unknown only because the calibration stages have not measured what it needs yet."""
    return v.status == "unknown" and bool(v.waits_for) and all(_measured_by_calibration(w) for w in v.waits_for)


def build_plan(program: Program, facts: Dataset, source: str, sets: Sequence[str] = (),
               title: Optional[str] = None) -> Plan:
    """The plan of one dataset under `program` with ``--set`` assignments `sets`."""
    ev = api.run(program, facts, sets, source)
    dec = decisions(ev)
    b = _Builder(program, facts, source, sets, ev, dec)
    return b.plan(title)


def params_allowed(program: Program) -> dict[str, str]:
    """Each parameter with an ``in`` clause -> what it accepts and where: '(0, 1]   [file:line:col]'."""
    return {name: f"{format_allowed(p.allowed)}   [{p.allowed.loc}]"
            for name, p in sorted(program.rs.params.items()) if p.allowed is not None}


class _Builder:
    def __init__(self, program: Program, facts: Dataset, source: str, sets: Sequence[str], ev: Evaluation,
                 dec: Decisions):
        self.p = program
        self.facts = facts
        self.source = source
        self.sets = list(sets)
        self.ev = ev
        self.dec = dec
        self.values: dict[str, Value] = {v.path: v for v in dec.values}
        self.image_attrs = program.schema.kinds.get("image", {})

    # ------------------------------------------------------------ cells
    def cell(self, path: str, colour: Optional[str] = None) -> Cell:
        v = self.values.get(path)
        if v is None:
            return Cell(text="-", ref=None, status="unknown")
        text = v.text
        if v.status == "unknown":
            text = "unknown"
        elif v.status == "error":
            text = "error"
        return Cell(text=text, ref=path, status=v.status, colour=colour)

    def param_cell(self, name: str) -> Cell:
        for p in self.dec.params:
            if p.name == name:
                return Cell(text=p.text, ref=f"param:{name}")
        return Cell(text="-", status="unknown")

    # ------------------------------------------------------------ the plan
    def plan(self, title: Optional[str]) -> Plan:
        images, columns = self.images()
        residuals = self.residuals([r.ref for r in images])
        for row in images:
            for key, c in row.cells.items():
                res = residuals.get(c.ref or "")
                if res is not None:
                    row.cells[key] = Cell(text=res.summary_short, ref=c.ref, status="residual")
        scores = self.scores()
        cascades = self.cascades()
        runtime = self.runtime()
        plan = Plan(
            title=title or f"Plan for {self.facts.project or self.facts.mous_id or self.source}",
            source=self.source, rules=self.dec.rules, rules_sha256=self.dec.rules_sha256, settings=self.sets,
            overview=self.overview(), warnings=[], recipe=self.recipe(), columns=columns, images=images,
            totals=self.totals(len(images)), cascades=cascades, scores=scores,
            residuals=[r.model for r in residuals.values()], runtime=runtime, decisions=self.dec,
            params_allowed=params_allowed(self.p))
        plan.warnings = self.warnings(plan, residuals)
        return plan

    def overview(self) -> list[Labelled]:
        f = self.facts
        rows: list[tuple[str, Any]] = [
            ("Project", f.project), ("MOUS", f.mous_id), ("Telescope", f.telescope), ("Array", f.array),
            ("Execution blocks", len(f.ebs) if f.ebs is not None else None),
            ("Antennas", len(f.antennas) if f.antennas is not None else None),
            ("Spectral windows", len(f.spws) if f.spws is not None else None),
            ("Fields", len(f.fields) if f.fields is not None else None),
            ("Targets", ", ".join(x.name for x in f.fields or () if "TARGET" in (x.intents or ())) or None),
            ("Representative spw", f.representative_spw),
        ]
        if f.representative_frequency is not None:
            rows.append(("Representative frequency", f"{format_number(f.representative_frequency / 1e9, 6)} GHz"))
        return [Labelled(label=k, cell=Cell(text=str(v) if v is not None else "unknown",
                                            status="known" if v is not None else "unknown"))
                for k, v in rows]

    def recipe(self) -> list[StagePlan]:
        out: list[StagePlan] = []
        for name, stages in self.dec.recipes.items():
            decl = self.p.rs.recipes[name]
            for st, sd in zip(stages, decl.stages):
                label = st.name + (f"({', '.join(str(a) for a in st.args)})" if st.args else "")
                steering = []
                why = "runs"
                if sd.when is not None:
                    cond = source_text(self.ev, sd.when.loc) or "its condition"
                    for attr in dict.fromkeys(dataset_attrs(sd.when)):
                        steering.append(Labelled(label=attr, cell=self.cell(f"dataset.{attr}")))
                    if st.run is False:
                        why = f"skipped: {cond} is false"
                    elif st.run is None:
                        why = f"not known yet: {cond} waits for {', '.join(st.waits_for) or 'facts'}"
                    else:
                        why = f"runs: {cond}"
                out.append(StagePlan(name=label, run=st.run, why=why, at=st.at, decisions=steering))
        return out

    def images(self) -> tuple[list[ImageRow], list[Column]]:
        keys = self.dec.entities.get("image", [])
        present = [(a, lab) for a, lab in IMAGE_COLUMNS if a in self.image_attrs]
        columns = []
        for attr, label in present:
            unit = self.image_attrs[attr].unit
            columns.append(Column(key=attr, label=label, unit=unit))
        rows = []
        ents = self.ev.entities("image") if keys else []  # none: a rule set may have no imaging list
        by_key = {e.key: e for e in ents} if not isinstance(ents, Unknown) else {}
        for key in keys:
            ref = f"image[{key}]"
            cells: dict[str, Cell] = {}
            ent = by_key.get(key)
            for attr, _ in present:
                if self.image_attrs[attr].origin == "created":
                    cells[attr] = Cell(text=_created_text(ent.created.get(attr)) if ent else "-")
                else:
                    cells[attr] = self.cell(f"{ref}.{attr}")
            rows.append(ImageRow(key=key, ref=ref, cells=cells))
        return rows, columns

    def totals(self, n_images: int) -> list[Labelled]:
        out = [Labelled(label="Images", cell=Cell(text=str(n_images)))]
        for attr, label in TOTALS:
            if f"dataset.{attr}" in self.values:
                out.append(Labelled(label=label, cell=self.cell(f"dataset.{attr}")))
        return out

    def cascades(self) -> list[CascadePlan]:
        out = []
        for c in self.dec.cascades:
            outcome = c.status  # one of OUTCOMES, the words of dataset.NAME_outcome
            steps = [CascadeStepPlan(name=s.name, at=s.at, status=getattr(s, "status", "applied"),
                                     changes=s.changes, after=s.after) for s in c.steps]
            message = getattr(c, "message", None) or (", ".join(c.waits_for) if c.waits_for else None)
            out.append(CascadePlan(name=c.name, at=c.at, outcome=outcome, before=c.before, steps=steps,
                                   message=message))
        return out

    def scores(self) -> list[ScorePlan]:
        out = []
        dataset_attrs = self.p.schema.kinds["dataset"]
        for attr, info in sorted(dataset_attrs.items()):
            if info.origin != "score" and not attr.endswith("_score"):
                continue
            path = f"dataset.{attr}"
            v = self.values.get(path)
            if v is None or _waits_for_calibration(v):
                continue  # a calibration stage's score: its notice says what it waits for
            colour = self.colour_of(attr, v)
            reasons = [f"{r.sign} {format_number(r.amount, 4)} {r.reason} ({r.at})" for r in v.reasons]
            label = attr.removesuffix("_score").replace("_", " ")
            out.append(ScorePlan(label=label, cell=self.cell(path, colour), reasons=reasons))
        return out

    def colour_of(self, attr: str, v: Value) -> Optional[str]:
        sibling = self.values.get(f"dataset.{attr.removesuffix('_score')}_colour")
        if sibling is not None and sibling.status == "known" and sibling.value in COLOURS:
            return sibling.value
        if v.status != "known" or not isinstance(v.value, (int, float)):
            return None
        for b in self.p.rs.bands.values():
            labels = [r.label for r in b.rows]
            if set(labels) <= set(COLOURS):
                for r in b.rows:
                    if span_of(r.interval, _scale).contains(float(v.value)):
                        return r.label
        return None

    def runtime(self) -> Optional[RunTime]:
        if "dataset.imaging_time" not in self.values:
            return None
        fits = self.values.get("dataset.fits_in_time")
        limit = self.param_cell("max_run_time").text if "max_run_time" in self.p.rs.params else "1 day"
        terms = [Labelled(label=name.replace("_", " "), cell=self.param_cell(name))
                 for name in ("grid_cost_per_vis", "fft_cost_per_pixel", "minor_cost_per_pixel", "major_cycles",
                              "minor_iterations", "fft_padding") if name in self.p.rs.params]
        doc = self.p.rs.params["grid_cost_per_vis"].doc if "grid_cost_per_vis" in self.p.rs.params else None
        calibration = " ".join((doc or "constants not calibrated").split())
        return RunTime(total=self.cell("dataset.imaging_time"),
                       fits=fits.value if fits is not None and fits.status == "known" else None,
                       limit=limit, terms=terms, calibration=calibration)

    # ------------------------------------------------------------ warnings
    def warnings(self, plan: Plan, residuals: dict[str, "_Res"]) -> list[PlanWarning]:
        out: list[PlanWarning] = []
        for c in plan.cascades:
            if c.outcome in ("still exceeded", "error"):
                sizes = ", ".join(f"{k.removeprefix('dataset.')} {v}" for k, v in
                                  (c.steps[-1].after if c.steps else c.before).items())
                out.append(PlanWarning(level="error", at=c.at, message=(
                    f"cascade {c.name}: {c.message or 'limits still exceeded after every step'} ({sizes})")))
            elif c.outcome == "mitigated":
                out.append(PlanWarning(level="warning", at=c.at, message=(
                    f"cascade {c.name} changed the plan to fit the limits: {', '.join(s.name for s in c.steps)}")))
        rt = plan.runtime
        if rt is not None and rt.fits is False:
            out.append(PlanWarning(level="error", ref="dataset.imaging_time", message=(
                f"imaging is estimated at {rt.total.text}, more than the {rt.limit} requirement")))
        for s in plan.scores:
            if s.cell.colour in ("red", "yellow"):
                level = "error" if s.cell.colour == "red" else "warning"
                why = "; ".join(r.split(" (")[0] for r in s.reasons)
                out.append(PlanWarning(level=level, ref=s.cell.ref, message=(
                    f"{s.label} score {s.cell.text} ({s.cell.colour})" + (f": {why}" if why else ""))))
        for w in getattr(self.dec, "warnings", []) or []:
            message = getattr(w, "message", str(w))
            fired = getattr(w, "status", "fired")
            out.append(PlanWarning(level="warning" if fired != "unknown" else "notice", message=message,
                                   at=getattr(w, "at", None)))
        errors: dict[str, list[str]] = {}
        for v in self.dec.values:
            if v.status == "error":
                for e in v.errors:
                    errors.setdefault(re.sub(r"\[[^\]]*\]", "[...]", e), []).append(v.path)
        for e, paths in sorted(errors.items(), key=lambda kv: -len(kv[1])):
            out.append(PlanWarning(level="notice", ref=paths[0], message=(
                f"{len(paths)} value{'s' if len(paths) != 1 else ''} cannot be computed: {e} (e.g. {paths[0]})")))
        missing: dict[str, list[str]] = {}
        calibration: set[str] = set()
        for v in self.dec.values:
            if v.status == "unknown" and v.waits_for and v.path not in residuals:
                for w in v.waits_for:
                    if _measured_by_calibration(w):
                        calibration.add(v.path)
                    elif not w.startswith(LATER_DATA):
                        missing.setdefault(re.sub(r"\[[^\]]*\]", "[...]", w), []).append(v.path)
        for fact, paths in sorted(missing.items(), key=lambda kv: -len(kv[1]))[:5]:
            hint = " (declare them with --intents FILE)" if fact.endswith("intents") else ""
            out.append(PlanWarning(level="warning", ref=paths[0], message=(
                f"{len(paths)} value{'s' if len(paths) != 1 else ''} unknown: the facts lack {fact}{hint}")))
        if calibration:
            out.append(PlanWarning(level="notice", ref=sorted(calibration)[0], message=(
                f"{len(calibration)} values wait for the calibration and continuum stages' measurements (reference "
                f"antenna, signal-to-noise, derived fluxes, flagged fractions, continuum ranges)")))
        if residuals:
            names = sorted({r.variable_name for r in residuals.values() if r.variable_name})
            out.append(PlanWarning(level="notice", message=(
                f"{len(residuals)} values wait for data not yet produced"
                + (f" ({', '.join(names)}); their ranges are shown" if names else ""))))
        order = {"error": 0, "warning": 1, "notice": 2}
        return sorted(out, key=lambda w: order[w.level])

    # ------------------------------------------------------------ residuals
    def residuals(self, image_refs: list[str]) -> dict[str, "_Res"]:
        """Unknown numbers of the imaging list and totals, partially evaluated."""
        wanted = [f"{ref}.{attr}" for ref in image_refs for attr, _ in IMAGE_COLUMNS]
        wanted += [f"dataset.{attr}" for attr, _ in TOTALS]
        found: dict[str, _Res] = {}
        for path in wanted:
            v = self.values.get(path)
            if v is None or v.status != "unknown" or not v.waits_for:
                continue
            if not all(w.startswith(LATER_DATA) for w in v.waits_for):
                continue  # it waits for facts, not for data a later stage produces
            res = self._residual(path, v)
            if res is not None:
                found[path] = res
        self._cases(found)
        return found

    def _residual(self, path: str, v: Value) -> Optional["_Res"]:
        ent, attr = self.ev.resolve(path)
        t = self.ev.value_type(ent.kind, attr)
        if not isinstance(t, NumT):
            return None
        leaves: set[tuple[Entity, str]] = set()
        tables: set[str] = set()
        self._leaves(ent, attr, leaves, tables, 0)
        formula = self._formula(ent, attr, v)
        unknowns = sorted(v.waits_for)
        res = _Res(path, formula, unknowns)
        if len(leaves) == 1:
            (leaf,) = leaves
            res.variable = leaf
            res.variable_name = leaf[1]
            res.tables = sorted(tables)
        return res

    def _leaves(self, ent: Entity, attr: str, leaves: set, tables: set, depth: int) -> None:
        """The deepest unknown numeric derived values on the chains that make (ent, attr) unknown."""
        prov = ent.prov.get(attr)
        if prov is None or depth > 12:
            return
        if isinstance(prov.decl, A.Derive):
            tables.update(_called_tables(prov.decl.expr, self.p.rs))
        below = []
        for item in prov.inputs:
            if not isinstance(item, tuple):
                continue
            e, a = item
            info = self.p.schema.kinds[e.kind].get(a)
            if info is None or info.origin not in ("derived", "score") or not isinstance(info.type, NumT):
                continue
            if isinstance(self.ev.attr(e, a), Unknown):
                below.append((e, a))
        if not below:
            leaves.add((ent, attr))
            return
        for e, a in dict.fromkeys(below):
            self._leaves(e, a, leaves, tables, depth + 1)

    def _formula(self, ent: Entity, attr: str, v: Value) -> str:
        """``attr = formula = the formula with known inputs replaced by their values``."""
        text = v.formula or attr
        known: dict[str, str] = {}
        for inp in v.inputs:
            if inp.startswith("param:"):
                name = inp[6:]
                known[name] = self.param_cell(name).text
                continue
            iv = self.values.get(inp)
            if iv is not None and iv.status == "known":
                known[inp.rsplit(".", 1)[1]] = iv.text
        kind = ent.kind

        def sub(m: re.Match) -> str:
            whole, name = m.group(0), m.group(2) or m.group(3)
            if m.group(1) and m.group(1) not in (kind, "dataset"):
                return whole
            return known.get(name, whole)
        substituted = re.sub(r"\b(?:(\w+)\.(\w+)|(\w+))\b(?!\()", sub, text)
        return f"{attr} = {text}" + (f" = {substituted}" if substituted != text else "")

    def _cases(self, found: dict[str, "_Res"]) -> None:
        """Re-evaluate with each residual's unknown pinned at the ends of its tables' ranges."""
        groups: dict[tuple, list[_Res]] = {}
        for res in found.values():
            if res.variable is None:
                continue
            spans = _spans_of(self.p, res.tables) if res.tables else DECADES
            if spans:
                res.spans = spans
                groups.setdefault(tuple(spans), []).append(res)
        trace = _cascade_trace(self.ev)
        for spans, members in groups.items():
            points = sorted({x for sp in spans for x in _probe_points(sp)})
            known = self._known_inputs(members) if PIN_KNOWN and not any(c[1] == "unknown" for c in trace) else {}
            values: dict[float, Evaluation] = {}
            for x in points:
                assume = {f"{r.variable[0].path}.{r.variable[1]}": repr(x) for r in members}
                ev = values[x] = api.run(self.p, self.facts, self.sets, self.source, assume=assume)
                if known and _cascade_trace(ev) == trace:
                    for k, v in known.items():
                        ev.overlay.setdefault(k, (v, _PINNED))
            for r in members:
                r.fill(self, spans, values)

    def _known_inputs(self, members: list["_Res"]) -> dict[tuple[str, str, str], Any]:
        """The derived values that the residuals' chains read and that are known here (plain
        numbers, strings, booleans), keyed as the evaluator's overlay. Unknowns are Kleene's, so a
        value known while the probed data are unknown is the same whatever they turn out to be:
        each probe takes it as it is instead of deriving it again (with the cascades run as here,
        which `_cases` checks), e.g. a mosaic's primary-beam overlap over thousands of pointings."""
        out: dict[tuple[str, str, str], Any] = {}
        seen: set[tuple[str, str, str]] = set()
        stack = [self.ev.resolve(r.path) for r in members]
        while stack:
            ent, attr = stack.pop()
            prov = ent.prov.get(attr)
            if prov is None:
                continue
            for item in prov.inputs:
                if not isinstance(item, tuple):
                    continue
                e, a = item
                key = (e.kind, e.key, a)
                if key in seen:
                    continue
                seen.add(key)
                info = self.p.schema.kinds[e.kind].get(a)
                if info is None or info.origin != "derived":
                    continue
                v = self.ev.attr(e, a)
                if isinstance(v, Unknown):
                    stack.append((e, a))
                elif type(v) in (float, int, bool, str):
                    out[key] = v
        return out


#: residual probes take the values they need that are already known as they are (`_known_inputs`)
PIN_KNOWN = True
_PINNED = Provenance("assumed", note="known before the probe")


def _cascade_trace(ev: Evaluation) -> list[tuple]:
    """What the cascades of `ev` did: equal traces leave the same state."""
    return [(c.name, c.status, [(st.name, tuple(st.changes), repr(st.after)) for st in c.steps],
             [sk.name for sk in c.skipped], c.error) for c in ev.cascades]


class _Res:
    """A residual being built: which value, its variable, and the cases."""

    def __init__(self, path: str, formula: str, unknowns: list[str]):
        self.path = path
        self.formula = formula
        self.unknowns = unknowns
        self.variable: Optional[tuple[Entity, str]] = None
        self.variable_name: Optional[str] = None
        self.tables: list[str] = []
        self.spans: list[Span] = []
        self.cases: list[Case] = []
        self.summary = "unknown"
        self.summary_short = "unknown"

    def fill(self, b: _Builder, spans: Sequence[Span], runs: dict[float, Evaluation]) -> None:
        name = self.variable_name or "x"
        ev0 = b.ev
        ent, attr = ev0.resolve(self.path)
        t = ev0.value_type(ent.kind, attr)
        unit = ev0.display_unit(ent.kind, attr)
        digits = b.p.schema.kinds[ent.kind][attr].digits or 3

        def at(x: float) -> Any:
            ev = runs[x]
            e, a = ev.resolve(self.path)
            return ev.attr(e, a)

        same = lambda a, b: abs(b - a) <= 1e-12 * max(abs(a), 1e-300)  # noqa: E731
        shown: list[tuple[Span, str]] = []
        for sp in spans:
            lo_v, hi_v = (at(x) for x in _probe_points(sp))
            if isinstance(lo_v, Unknown) or isinstance(hi_v, Unknown):
                continue
            if same(lo_v, hi_v):
                text = show_value(lo_v, t, unit, digits)
            elif math.isinf(sp.hi):
                trend = "rising" if hi_v > lo_v else "falling"
                text = f"{'>=' if hi_v > lo_v else '<='} {show_value(lo_v, t, unit, digits)}, {trend} with {name}"
            else:
                text = f"{show_value(lo_v, t, unit, digits)} - {show_value(hi_v, t, unit, digits)}"
            if shown and shown[-1][1] == text and shown[-1][0].hi == sp.lo:  # one value over both: one case
                prev = shown[-1][0]
                sp = Span(prev.lo, sp.hi, prev.lo_closed, sp.hi_closed)
                shown.pop()
            shown.append((sp, text))
        self.cases = [Case(condition=_condition(sp, name), text=tx) for sp, tx in shown]
        if self.cases:
            self.summary = "; ".join(f"{c.text} if {c.condition}" for c in self.cases)
            self.summary_short = f"{self.cases[0].text} if {self.cases[0].condition}, more above"
        else:
            self.summary = self.formula

    @property
    def model(self) -> Residual:
        return Residual(ref=self.path, formula=self.formula, unknowns=self.unknowns, cases=self.cases,
                        summary=self.summary)


# ---------------------------------------------------------------- helpers
# ranges probed when the unknown passes through formulas only (no table): decades
DECADES = [Span(0.0, 10.0, True, True), Span(10.0, 100.0, False, True), Span(100.0, 1000.0, False, True),
           Span(1000.0, math.inf, False, False)]


def _scale(unit: Optional[str]) -> float:
    return 1.0 if unit is None else parse_unit(unit)[0]


def _created_text(value: Any) -> str:
    if isinstance(value, Entity):
        return value.key
    if isinstance(value, tuple):
        return ",".join(_created_text(v) for v in value)
    return "-" if value is None else str(value)


def _called_tables(e: Any, rs: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(e, A.Call) and e.func in rs.tables:
        out.add(e.func)
    if isinstance(e, tuple):
        for item in e:
            out |= _called_tables(item, rs)
    elif hasattr(e, "__dataclass_fields__"):
        for name in e.__dataclass_fields__:
            if name != "loc":
                out |= _called_tables(getattr(e, name), rs)
    return out


def _spans_of(p: Program, tables: list[str]) -> list[Span]:
    """The rows of the tables (one table: its rows; several: the common refinement)."""
    rows: list[Span] = []
    for name in tables:
        rows.extend(p.tables[name].spans)
    if len(tables) == 1:
        return rows
    cuts = sorted({r.lo for r in rows} | {r.hi for r in rows})
    return [Span(a, b, a == cuts[0], True) for a, b in zip(cuts, cuts[1:])]


def _probe_points(sp: Span) -> tuple[float, float]:
    """Two points inside a span: its ends (just inside an open end); an unbounded span: lo and 10 lo."""
    lo = sp.lo if sp.lo_closed else (sp.lo + max(abs(sp.lo), 1.0) * 1e-9)
    if math.isinf(sp.hi):
        return lo, max(lo * 10, lo + 100)
    hi = sp.hi if sp.hi_closed else (sp.hi - max(abs(sp.hi), 1.0) * 1e-9)
    return lo, hi


def _condition(sp: Span, name: str) -> str:
    lo, hi = format_number(sp.lo, 6), format_number(sp.hi, 6)
    if math.isinf(sp.hi):
        return f"{name} {'>=' if sp.lo_closed else '>'} {lo}"
    if sp.lo == 0 and sp.lo_closed:
        return f"{name} {'<=' if sp.hi_closed else '<'} {hi}"
    return f"{lo} {'<=' if sp.lo_closed else '<'} {name} {'<=' if sp.hi_closed else '<'} {hi}"


__all__ = ["build_plan", "IMAGE_COLUMNS"]
