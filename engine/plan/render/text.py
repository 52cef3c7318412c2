"""A `Plan` as terminal text: what needs a human first, then the plan section by section."""

from __future__ import annotations

from tabulate import tabulate

from almarules.engine.plan.render.common import (
    Derivation, colour_word, column_header, derivations, fits_word, image_columns, ordered_warnings,
    row_cell, stage_state, warning_counts)
from almarules.engine.plan.model import CascadePlan, Plan


def _table(rows: list[list[str]], headers: list[str] | None = None) -> str:
    # disable_numparse: cells are shown exactly as the plan wrote them ("0.90" stays "0.90")
    if headers is None:
        return tabulate(rows, tablefmt="plain", disable_numparse=True)
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _heading(text: str, char: str = "-") -> list[str]:
    return ["", text, char * len(text)]


def _indent(block: str, pad: str = "  ") -> list[str]:
    return [pad + line if line else line for line in block.splitlines()]


def _header(plan: Plan) -> list[str]:
    out = [plan.title, "=" * len(plan.title)]
    rows = [["source:", plan.source],
            ["rules:", f"{', '.join(plan.rules)} (sha256 {plan.rules_sha256[:12]})"]]
    if plan.settings:
        rows.append(["settings:", ", ".join(plan.settings)])
    out += _table(rows).splitlines()
    return out


def _warnings(plan: Plan) -> list[str]:
    out = _heading(f"Needs attention: {warning_counts(plan)}")
    for w in ordered_warnings(plan):
        out.append(f"{w.level.upper():<8} {w.message}")
        about = "; ".join(x for x in (w.ref, w.at) if x)
        if about:
            out.append(f"{'':<8} ({about})")
    return out


def _overview(plan: Plan) -> list[str]:
    if not plan.overview:
        return []
    return _heading("Overview") + _indent(_table([[f"{i.label}:", i.cell.text] for i in plan.overview]))


def _recipe(plan: Plan) -> list[str]:
    out = _heading("Recipe")
    if not plan.recipe:
        return out + ["  (no stages)"]
    rows = []
    for n, s in enumerate(plan.recipe, 1):
        steers = "; ".join(f"{d.label} = {d.cell.text}" for d in s.decisions)
        rows.append([str(n), s.name, stage_state(s), s.why, steers, s.at])
    return out + _indent(_table(rows, ["#", "stage", "", "why", "steered by", "at"]))


def _images(plan: Plan) -> list[str]:
    n = len(plan.images)
    out = _heading(f"Imaging list ({n} image{'s' if n != 1 else ''})")
    if not plan.images:
        return out + ["  (no images)"]
    cols = image_columns(plan)
    rows = []
    for row in plan.images:
        cells = [row_cell(row, c) for c in cols]
        rows.append([c.text if c is not None else "-" for c in cells])
    return out + _table(rows, [column_header(c, plan) for c in cols]).splitlines()


def _totals(plan: Plan) -> list[str]:
    if not plan.totals:
        return []
    return _heading("Totals") + _indent(_table([[f"{i.label}:", i.cell.text] for i in plan.totals]))


def _sizes(sizes: dict[str, str]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sizes.items()) or "-"


def _cascade(c: CascadePlan) -> list[str]:
    out = [f"{c.name}: {c.outcome}   [{c.at}]", f"  before: {_sizes(c.before)}"]
    if c.message:
        out.append(f"  {c.message}")
    for n, step in enumerate(c.steps, 1):
        out.append(f"  {n}. {step.name}: {step.status}   [{step.at}]")
        out += [f"       {change}" for change in step.changes]
        out.append(f"     after: {_sizes(step.after)}")
    if not c.steps and c.outcome == "not needed":
        out.append("  no step needed: the products fit the limits")
    return out


def _cascades(plan: Plan) -> list[str]:
    out = _heading("Product-size cascade")
    if not plan.cascades:
        return out + ["  not needed (no cascade in these rules)"]
    for c in plan.cascades:
        out += _indent("\n".join(_cascade(c)))
    return out


def _scores(plan: Plan) -> list[str]:
    if not plan.scores:
        return []
    out = _heading("QA scores")
    width = max(len(s.label) for s in plan.scores)
    twidth = max(len(s.cell.text) for s in plan.scores)
    for s in plan.scores:
        out.append(f"  {s.label:<{width}}  {s.cell.text:<{twidth}}  {colour_word(s.cell.colour)}")
        out += [f"      {r}" for r in s.reasons]
    return out


def _residuals(plan: Plan) -> list[str]:
    if not plan.residuals:
        return []
    out = _heading("Waiting for data (residuals)")
    for r in plan.residuals:
        out += [f"  {r.ref}", f"    formula:   {r.formula}", f"    waits for: {', '.join(r.unknowns)}",
                f"    in short:  {r.summary}"]
        if r.cases:
            out += _indent(_table([[c.condition, c.text] for c in r.cases], ["when", "value"]), "      ")
    return out


def _runtime(plan: Plan) -> list[str]:
    rt = plan.runtime
    if rt is None:
        return []
    out = _heading("Run time")
    out.append(f"  total: {rt.total.text}   fits in {rt.limit}: {fits_word(rt)}")
    if rt.terms:
        out += _indent(_table([[f"{t.label}:", t.cell.text] for t in rt.terms]))
    out.append(f"  calibration: {rt.calibration}")
    return out


def derivation_lines(d: Derivation) -> list[str]:
    """One derivation: 'path = text [rule, at]', then formula, inputs, reasons, what it waits for."""
    out = [f"{d.path} = {d.text}" + (f"   {d.rule_at()}" if d.rule_at() else "")]
    if d.kind == "param":
        out.append(f"    parameter ({d.origin})")
        if d.allowed:
            out.append(f"    accepts {d.allowed}")
    if d.doc:
        out.append(f"    {d.doc}")
    if d.formula:
        out.append(f"    formula: {d.formula}")
    if d.inputs:
        out.append("    inputs:")
        for i in d.inputs:
            out.append(f"      {i.text} = {i.shown}" if i.shown is not None else f"      {i.text} ({i.kind})")
    if d.reasons:
        out.append("    reasons:")
        out += [f"      {r}" for r in d.reasons]
    if d.waits_for:
        out.append(f"    waits for: {', '.join(d.waits_for)}")
    if d.errors:
        out.append(f"    errors: {'; '.join(d.errors)}")
    return out


def _derivations(plan: Plan) -> list[str]:
    out = _heading("Derivations")
    for d in derivations(plan):
        out += _indent("\n".join(derivation_lines(d)))
    return out


def render(plan: Plan, explain: bool = False) -> str:
    """The plan as terminal text; `explain` appends the derivation of every number shown."""
    out = _header(plan)
    for section in (_warnings, _overview, _recipe, _images, _totals, _cascades, _scores, _residuals, _runtime):
        out += section(plan)
    if explain:
        out += _derivations(plan)
    return "\n".join(out) + "\n"
