"""A `Plan` as GitHub-flavoured markdown: the text report's content with pipe tables and headings.

With `explain`, every number links to its entry in a "Derivations" section (HTML anchors
`<a id="d-..."></a>`, which GitHub keeps).
"""

from __future__ import annotations

import re
from typing import Optional

from almarules.engine.plan.render.common import (
    COLOUR_MEANING, Derivation, anchor_ids, column_header, derivations, fits_word, image_columns,
    ordered_warnings, row_cell, stage_state, warning_counts)
from almarules.engine.plan.model import Cell, Plan

_SPECIAL = re.compile(r"([\\`*\[\]<>~])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_LEADING = re.compile(r"^(\s*)([-+#]|\d+(?=[.)]))(?=[.)]?\s)")


def escape(text: str) -> str:
    """Backslash-escape markdown syntax in plain text (an intraword '_' stays as it is); a
    leading "- ", "+ ", "# " or "1. " cannot start a list or a heading."""
    text = _SPECIAL.sub(lambda m: "\\" + m.group(0), text).replace("\n", " ")
    m = _LEADING.match(text)
    if not m:
        return text
    if m.group(2)[0].isdigit():  # "1. x" -> "1\. x"
        return text[:m.end()] + "\\" + text[m.end():]
    return m.group(1) + "\\" + text[m.end(1):]


def code(text: str) -> str:
    """`text` as a code span, with a fence longer than any backtick run inside it."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    return [line(headers), "|" + "|".join("---" for _ in headers) + "|"] + [line(r) for r in rows]


class _Renderer:
    def __init__(self, plan: Plan, explain: bool):
        self.plan = plan
        self.explain = explain
        self.derivs: list[Derivation] = derivations(plan) if explain else []
        self.anchors = anchor_ids(d.ref for d in self.derivs)

    def link(self, ref: Optional[str], text: str) -> str:
        """`text` (already markdown) linked to the derivation of `ref` when there is one."""
        if ref and ref in self.anchors:
            return f"[{text}](#{self.anchors[ref]})"
        return text

    def cell(self, c: Optional[Cell]) -> str:
        if c is None:
            return "-"
        text = escape(c.text)
        if c.status in ("residual", "unknown"):
            text = f"*{text}*"
        elif c.status == "error":
            text = f"**{text}**"
        return self.link(c.ref, text)

    def labelled_table(self, items: list, head: str = "") -> list[str]:
        return _table([head, "value"], [[escape(i.label), self.cell(i.cell)] for i in items])

    # ------------------------------------------------------------ sections

    def header(self) -> list[str]:
        p = self.plan
        out = [f"# {escape(p.title)}", "",
               f"**source:** {code(p.source)}  ",
               f"**rules:** {', '.join(code(r) for r in p.rules)} (sha256 {code(p.rules_sha256[:12])})"]
        if p.settings:
            out[-1] += "  "
            out.append(f"**settings:** {', '.join(code(s) for s in p.settings)}")
        return out

    def warnings(self) -> list[str]:
        out = ["", f"## Needs attention: {warning_counts(self.plan)}", ""]
        for w in ordered_warnings(self.plan):
            about = [self.link(w.ref, code(w.ref))] if w.ref else []
            about += [code(w.at)] if w.at else []
            out.append(f"- **{w.level}:** {escape(w.message)}" + (f" ({', '.join(about)})" if about else ""))
        if not self.plan.warnings:
            out.append("Nothing needs attention.")
        return out

    def overview(self) -> list[str]:
        if not self.plan.overview:
            return []
        return ["", "## Overview", ""] + self.labelled_table(self.plan.overview, "dataset")

    def recipe(self) -> list[str]:
        out = ["", "## Recipe", ""]
        if not self.plan.recipe:
            return out + ["(no stages)"]
        rows = []
        for n, s in enumerate(self.plan.recipe, 1):
            state = stage_state(s)
            name = code(s.name) if state == "run" else f"~~{code(s.name)}~~" if state == "skipped" else code(s.name)
            steers = "; ".join(f"{escape(d.label)} = {self.cell(d.cell)}" for d in s.decisions)
            rows.append([str(n), name, state, escape(s.why), steers, code(s.at)])
        return out + _table(["#", "stage", "state", "why", "steered by", "at"], rows)

    def images(self) -> list[str]:
        p = self.plan
        n = len(p.images)
        out = ["", f"## Imaging list ({n} image{'s' if n != 1 else ''})", ""]
        if not p.images:
            return out + ["(no images)"]
        cols = image_columns(p)
        rows = []
        for row in p.images:
            rows.append([code(row.key) if c.key == "key" else self.cell(row_cell(row, c)) for c in cols])
        return out + _table([escape(column_header(c, p)) for c in cols], rows)

    def totals(self) -> list[str]:
        if not self.plan.totals:
            return []
        return ["", "## Totals", ""] + self.labelled_table(self.plan.totals, "total")

    def cascades(self) -> list[str]:
        out = ["", "## Product-size cascade", ""]
        if not self.plan.cascades:
            return out + ["Not needed (no cascade in these rules)."]
        for c in self.plan.cascades:
            out += [f"**{code(c.name)}: {escape(c.outcome)}** ({code(c.at)})", "",
                    f"- before: {self.sizes(c.before)}"]
            if c.message:
                out.append(f"- {escape(c.message)}")
            if not c.steps and c.outcome == "not needed":
                out.append("- no step needed: the products fit the limits")
            out.append("")
            for n, step in enumerate(c.steps, 1):
                out.append(f"{n}. **{escape(step.name)}**: {escape(step.status)} ({code(step.at)})")
                out += [f"   - {code(change)}" for change in step.changes]
                out.append(f"   - after: {self.sizes(step.after)}")
            out.append("")
        return out[:-1]

    def sizes(self, sizes: dict[str, str]) -> str:
        return ", ".join(f"{code(k)} = {escape(v)}" for k, v in sizes.items()) or "-"

    def scores(self) -> list[str]:
        if not self.plan.scores:
            return []
        rows = []
        for s in self.plan.scores:
            colour = s.cell.colour
            word = f"**{colour}** ({COLOUR_MEANING[colour]})" if colour else "no colour"
            rows.append([escape(s.label), self.cell(s.cell), word, "<br>".join(escape(r) for r in s.reasons)])
        return ["", "## QA scores", ""] + _table(["score", "value", "colour", "reasons"], rows)

    def residuals(self) -> list[str]:
        if not self.plan.residuals:
            return []
        out = ["", "## Waiting for data (residuals)"]
        for r in self.plan.residuals:
            out += ["", f"### {self.link(r.ref, code(r.ref))}", "",
                    f"- formula: {code(r.formula)}",
                    f"- waits for: {', '.join(code(u) for u in r.unknowns)}",
                    f"- in short: {escape(r.summary)}"]
            if r.cases:
                out += [""] + _table(["when", "value"], [[code(c.condition), escape(c.text)] for c in r.cases])
        return out

    def runtime(self) -> list[str]:
        rt = self.plan.runtime
        if rt is None:
            return []
        out = ["", "## Run time", "",
               f"**total: {self.cell(rt.total)}; fits in {escape(rt.limit)}: {fits_word(rt)}**", ""]
        if rt.terms:
            out += self.labelled_table(rt.terms, "term") + [""]
        return out + [f"calibration: {escape(rt.calibration)}"]

    def derivations(self) -> list[str]:
        out = ["", "## Derivations"]
        for d in self.derivs:
            out += ["", f'<a id="{self.anchors[d.ref]}"></a>', "",
                    f"#### {code(d.path)} = {escape(d.text)}", ""]
            if d.kind == "param":
                out.append(f"- parameter ({escape(d.origin or '')}), declared at {code(d.at or '')}")
                if d.allowed:
                    out.append(f"- accepts {code(d.allowed)}")
            elif d.rule or d.at:
                out.append(f"- rule: {code(d.rule or '')}" + (f" at {code(d.at)}" if d.at else ""))
            if d.doc:
                out.append(f"- {escape(d.doc)}")
            if d.formula:
                out.append(f"- formula: {code(d.formula)}")
            if d.inputs:
                out.append("- inputs:")
                for i in d.inputs:
                    shown = f" = {escape(i.shown)}" if i.shown is not None else f" ({i.kind})"
                    out.append(f"  - {self.link(i.ref, code(i.text))}{shown}")
            if d.reasons:
                out.append("- reasons:")
                out += [f"  - {escape(r)}" for r in d.reasons]
            if d.waits_for:
                out.append(f"- waits for: {', '.join(code(w) for w in d.waits_for)}")
            if d.errors:
                out.append(f"- errors: {escape('; '.join(d.errors))}")
        return out


def render(plan: Plan, explain: bool = False) -> str:
    """The plan as GitHub-flavoured markdown; `explain` links numbers to a Derivations section."""
    r = _Renderer(plan, explain)
    out = r.header()
    for section in (r.warnings, r.overview, r.recipe, r.images, r.totals, r.cascades, r.scores, r.residuals,
                    r.runtime):
        out += section()
    if explain:
        out += r.derivations()
    return "\n".join(out) + "\n"
