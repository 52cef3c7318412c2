"""A `Plan` as one self-contained HTML5 page: inline CSS, no scripts, no external assets.

The page puts what needs a human first (errors, warnings, notices; then the QA scores as
coloured badges), then the cascade, the imaging list, totals, residuals, run time and the
recipe. Every number with a ref links to its derivation (`<a class="num" href="#d-...">`); the
derivations section, always present, lists each referenced value and, transitively, the values
its inputs name, so a reader can walk down to parameters and facts.
"""

from __future__ import annotations

from html import escape
from typing import Optional

from almarules.engine.plan.render.common import (
    COLOUR_MEANING, Derivation, Index, anchor_ids, cell_refs, column_header, derivations, fits_word,
    image_columns, ordered_warnings, row_cell, stage_state, warning_counts)
from almarules.engine.plan.model import Cell, Labelled, Plan

CSS = """
:root { color-scheme: light; --ink: #1b1b1b; --muted: #5f6368; --line: #dcdfe3; --link: #0b4f9c;
  --red: #c62828; --red-bg: #fdecea; --amber: #8a5300; --amber-bg: #fff4e0; --grey-bg: #f1f3f4;
  --blue: #1565c0; --green: #2e7d32; --yellow: #f4c20d; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 78rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1rem; border-bottom: 1px solid var(--line); padding-bottom: .6rem; }
h1 { font-size: 1.45rem; margin: .2rem 0 .3rem; line-height: 1.25; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.1rem 0 .4rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: .88em;
  overflow-wrap: anywhere; }
.meta { color: var(--muted); margin: .15rem 0; font-size: .92rem; }
.meta code { color: var(--ink); }
dl.overview { display: flex; flex-wrap: wrap; gap: .3rem 1.4rem; margin: .6rem 0 0; }
dl.overview div { display: flex; gap: .4rem; }
dl.overview dt { color: var(--muted); }
dl.overview dd { margin: 0; font-weight: 600; }
nav.toc { font-size: .9rem; margin: .6rem 0 0; color: var(--muted); }
nav.toc a { color: var(--link); margin-right: .8rem; }
.attention { margin-top: 1rem; border: 1px solid var(--line); border-radius: 8px; padding: .2rem 1rem .6rem; }
.attention h2 { border: 0; margin: .5rem 0; }
.attention ul { list-style: none; margin: 0; padding: 0; }
.attention li { margin: .35rem 0; padding: .35rem .6rem; border-left: 5px solid; border-radius: 4px; }
.attention li.error { background: var(--red-bg); border-color: var(--red); }
.attention li.warning { background: var(--amber-bg); border-color: #e69500; }
.attention li.notice { background: var(--grey-bg); border-color: #9aa0a6; }
.level { font-weight: 700; text-transform: uppercase; font-size: .78rem; letter-spacing: .04em; margin-right: .5rem; }
li.error .level { color: var(--red); }
li.warning .level { color: var(--amber); }
li.notice .level { color: var(--muted); }
.where { color: var(--muted); font-size: .88rem; }
.ok { color: var(--green); font-weight: 600; }
ul.badges { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: .7rem; }
.badge { border-radius: 8px; padding: .5rem .8rem; min-width: 13rem; max-width: 100%;
  border: 1px solid rgba(0,0,0,.15); }
.badge .label { display: block; font-size: .85rem; opacity: .92; }
.badge .score { font-size: 1.45rem; font-weight: 700; margin-right: .4rem; }
.badge .colour { font-size: .85rem; }
.badge ul.reasons { margin: .3rem 0 0; padding-left: 1.1rem; font-size: .85rem; }
.badge.red { background: var(--red); color: #fff; }
.badge.yellow { background: var(--yellow); color: #1b1b1b; }
.badge.blue { background: var(--blue); color: #fff; }
.badge.green { background: var(--green); color: #fff; }
.badge.none { background: var(--grey-bg); color: var(--ink); }
.badge a.num { color: inherit; border-bottom-color: currentColor; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .3rem 0; }
th, td { text-align: left; vertical-align: top; padding: .28rem .6rem; border-bottom: 1px solid var(--line); }
thead th { border-bottom: 2px solid #b0b4b9; font-size: .88rem; color: var(--muted); white-space: nowrap; }
table.images td, table.images th { white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
a.num { color: var(--link); text-decoration: none; border-bottom: 1px dotted var(--link); }
a.num:hover, a.ref:hover { background: #e8f0fe; }
a.ref { color: var(--link); text-decoration: none; }
[data-status="residual"] { font-style: italic; }
[data-status="unknown"] { color: var(--muted); }
[data-status="error"] { color: var(--red); font-weight: 600; }
.fits { font-size: 1.1rem; padding: .5rem .8rem; border-radius: 6px; display: inline-block; margin: .2rem 0 .5rem; }
.fits.no { background: var(--red-bg); } .fits.yes { background: #e6f4ea; } .fits.unknown { background: var(--grey-bg); }
.fits strong { font-size: 1.2rem; }
.fits.no strong { color: var(--red); } .fits.yes strong { color: var(--green); }
ol.steps { padding-left: 1.4rem; } ol.steps li { margin: .4rem 0; }
ol.steps ul { margin: .2rem 0; padding-left: 1.1rem; }
.status { font-weight: 600; }
table.recipe tr.skipped, table.recipe tr.skipped code { color: #8a8f95; }
table.recipe tr.skipped .stage { text-decoration: line-through; }
table.recipe tr.waits .state { color: var(--amber); }
.residual { border-left: 3px solid var(--line); padding-left: .8rem; margin: .8rem 0; }
.residual p { margin: .2rem 0; }
section.deriv { border-top: 1px solid var(--line); padding: .3rem 0 .5rem; scroll-margin-top: 1rem; }
section.deriv h3 { margin: .3rem 0; font-weight: 600; }
section.deriv:target { background: #fff8d6; }
.deriv dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .9rem; margin: .2rem 0; }
.deriv dt { color: var(--muted); } .deriv dd { margin: 0; }
.deriv ul { margin: 0; padding-left: 1.1rem; }
.kind { color: var(--muted); font-size: .85rem; }
.doc { color: var(--muted); margin: .1rem 0; }
footer { color: var(--muted); font-size: .85rem; margin-top: 2rem; padding-bottom: 1.5rem; }
@media print {
  body { font-size: 10.5pt; }
  nav.toc { display: none; }
  .tablewrap { overflow: visible; }
  table.images td, table.images th { white-space: normal; }
  a.num, a.ref { color: inherit; border: 0; }
  .badge, .attention li, .fits { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section.deriv, .badge, .attention li { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""


def _attrs(attrs: dict[str, Optional[str]]) -> str:
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items() if v is not None)


def el(name: str, inner: str = "", **attrs: Optional[str]) -> str:
    """`<name attrs>inner</name>`; `inner` is HTML already, attribute values are escaped here
    (class_="x" gives class="x", data_ref="y" gives data-ref="y")."""
    return f"<{name}{_attrs(attrs)}>{inner}</{name}>"


def code(text: str) -> str:
    return el("code", escape(text))


class _Page:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.index = Index(plan.decisions, plan.params_allowed)
        refs = cell_refs(plan)
        for c in plan.cascades:  # cascade sizes name values: link them too
            keys = list(c.before) + [k for s in c.steps for k in s.after]
            refs += [k for k in keys if self.index.lookup(k) is not None]
        for r in plan.residuals:
            refs += [u for u in r.unknowns if self.index.lookup(u) is not None]
        self.derivs: list[Derivation] = derivations(plan, dict.fromkeys(refs), closure=True, index=self.index)
        self.anchors = anchor_ids(d.ref for d in self.derivs)
        self.pending = {r.ref: r for r in plan.residuals}

    # ------------------------------------------------------------ small pieces

    def num(self, c: Optional[Cell]) -> str:
        """A cell: a link to its derivation when it has a ref, else plain text."""
        if c is None:
            return el("span", "&#8212;", class_="none")
        status = c.status if c.status != "known" else None
        if c.ref and c.ref in self.anchors:
            return el("a", escape(c.text), class_="num", href="#" + self.anchors[c.ref], data_ref=c.ref,
                      data_status=status)
        return el("span", escape(c.text), data_status=status)

    def ref(self, path: str) -> str:
        """A path in code, linked to its derivation when there is one."""
        if path in self.anchors:
            return el("a", code(path), class_="ref", href="#" + self.anchors[path])
        return code(path)

    def labelled(self, items: list[Labelled], head: str) -> str:
        rows = "".join(el("tr", el("th", escape(i.label), scope="row") + el("td", self.num(i.cell))) for i in items)
        return el("table", el("thead", el("tr", el("th", escape(head)) + el("th", "value"))) + el("tbody", rows))

    def section(self, sid: str, title: str, inner: str, cls: Optional[str] = None) -> str:
        return el("section", el("h2", escape(title)) + inner, id=sid, class_=cls) + "\n"

    # ------------------------------------------------------------ sections

    def header(self) -> str:
        p = self.plan
        meta = [f"source {code(p.source)}",
                "rules " + ", ".join(code(r) for r in p.rules),
                f"rules sha256 {code(p.rules_sha256)}"]
        if p.settings:
            meta.append("settings " + ", ".join(code(s) for s in p.settings))
        inner = el("h1", escape(p.title)) + el("p", " &#183; ".join(meta), class_="meta")
        if p.overview:
            inner += el("dl", "".join(el("div", el("dt", escape(i.label)) + el("dd", self.num(i.cell)))
                                    for i in p.overview), class_="overview")
        toc = [("attention", "attention"), ("scores", "scores"), ("cascade", "cascade"), ("images", "images"),
               ("totals", "totals"), ("residuals", "residuals"), ("runtime", "run time"), ("recipe", "recipe"),
               ("derivations", "derivations")]
        inner += el("nav", "".join(el("a", t, href=f"#{s}") for s, t in toc), class_="toc")
        return el("header", inner) + "\n"

    def attention(self) -> str:
        items = []
        for w in ordered_warnings(self.plan):
            where = [self.ref(w.ref)] if w.ref else []
            where += [code(w.at)] if w.at else []
            tail = " " + el("span", "(" + ", ".join(where) + ")", class_="where") if where else ""
            items.append(el("li", el("span", escape(w.level), class_="level") + escape(w.message) + tail,
                            class_=w.level))
        body = el("ul", "".join(items)) if items else el("p", "Nothing needs attention.", class_="ok")
        return self.section("attention", f"Needs attention: {warning_counts(self.plan)}", body, "attention")

    def scores(self) -> str:
        if not self.plan.scores:
            return self.section("scores", "QA scores", el("p", "No scores."))
        badges = []
        for s in self.plan.scores:
            colour = s.cell.colour
            word = f"{colour} &#183; {escape(COLOUR_MEANING[colour])}" if colour else "no colour"
            inner = (el("span", escape(s.label), class_="label") + el("span", self.num(s.cell), class_="score")
                     + el("span", word, class_="colour"))
            if s.reasons:
                inner += el("ul", "".join(el("li", escape(r)) for r in s.reasons), class_="reasons")
            badges.append(el("li", inner, class_=f"badge {colour or 'none'}", data_colour=colour or "none"))
        return self.section("scores", "QA scores", el("ul", "".join(badges), class_="badges"))

    def sizes(self, sizes: dict[str, str]) -> str:
        return ", ".join(f"{self.ref(k)} = {escape(v)}" for k, v in sizes.items()) or "&#8212;"

    def cascade(self) -> str:
        if not self.plan.cascades:
            return self.section("cascade", "Product-size cascade", el("p", "Not needed (no cascade in these rules)."))
        parts = []
        for c in self.plan.cascades:
            parts.append(el("h3", code(c.name) + ": " + el("span", escape(c.outcome), class_="status")
                            + " " + el("span", code(c.at), class_="where")))
            parts.append(el("p", "before: " + self.sizes(c.before)))
            if c.message:
                parts.append(el("p", escape(c.message)))
            if c.steps:
                steps = []
                for s in c.steps:
                    changes = el("ul", "".join(el("li", code(ch)) for ch in s.changes)) if s.changes else ""
                    steps.append(el("li", el("strong", escape(s.name)) + ": " + el("span", escape(s.status),
                                                                                   class_="status")
                                    + " " + el("span", code(s.at), class_="where") + changes
                                    + el("div", "after: " + self.sizes(s.after))))
                parts.append(el("ol", "".join(steps), class_="steps"))
            elif c.outcome == "not needed":
                parts.append(el("p", "No step needed: the products fit the limits.", class_="ok"))
        return self.section("cascade", "Product-size cascade", "".join(parts))

    def images(self) -> str:
        p = self.plan
        n = len(p.images)
        title = f"Imaging list ({n} image{'s' if n != 1 else ''})"
        if not p.images:
            return self.section("images", title, el("p", "No images."))
        cols = image_columns(p)
        head = el("tr", "".join(el("th", escape(column_header(c, p)), scope="col") for c in cols))
        rows = []
        for row in p.images:
            cells = [el("th", code(row.key), scope="row") if c.key == "key" else el("td", self.num(row_cell(row, c)))
                     for c in cols]
            rows.append(el("tr", "".join(cells), data_key=row.key))
        table = el("table", el("thead", head) + el("tbody", "".join(rows)), class_="images")
        return self.section("images", title, el("div", table, class_="tablewrap"))

    def totals(self) -> str:
        if not self.plan.totals:
            return self.section("totals", "Totals", el("p", "No totals."))
        return self.section("totals", "Totals", self.labelled(self.plan.totals, "total"))

    def residuals(self) -> str:
        if not self.plan.residuals:
            return self.section("residuals", "Waiting for data", el("p", "Nothing waits for data."))
        parts = []
        for r in self.plan.residuals:
            inner = el("h3", self.ref(r.ref))
            inner += el("p", escape(r.summary))
            inner += el("p", "formula: " + code(r.formula))
            inner += el("p", "waits for: " + ", ".join(self.ref(u) for u in r.unknowns))
            if r.cases:
                rows = "".join(el("tr", el("td", code(c.condition)) + el("td", escape(c.text))) for c in r.cases)
                inner += el("table", el("thead", el("tr", el("th", "when") + el("th", "value")))
                            + el("tbody", rows))
            parts.append(el("div", inner, class_="residual"))
        return self.section("residuals", "Waiting for data", "".join(parts))

    def runtime(self) -> str:
        rt = self.plan.runtime
        if rt is None:
            return self.section("runtime", "Run time", el("p", "No run-time estimate."))
        word = fits_word(rt)
        inner = el("p", f"Fits in {escape(rt.limit)}: " + el("strong", word) + " &#8212; total "
                   + self.num(rt.total), class_=f"fits {word}")
        if rt.terms:
            inner += self.labelled(rt.terms, "term")
        inner += el("p", "calibration: " + escape(rt.calibration), class_="meta")
        return self.section("runtime", "Run time", inner)

    def recipe(self) -> str:
        if not self.plan.recipe:
            return self.section("recipe", "Recipe", el("p", "No stages."))
        rows = []
        for n, s in enumerate(self.plan.recipe, 1):
            state = stage_state(s)
            steers = "; ".join(f"{escape(d.label)} = {self.num(d.cell)}" for d in s.decisions)
            rows.append(el("tr", el("td", str(n)) + el("td", code(s.name), class_="stage")
                           + el("td", state, class_="state") + el("td", escape(s.why)) + el("td", steers)
                           + el("td", code(s.at)), class_=state))
        head = el("tr", "".join(el("th", h) for h in ("#", "stage", "state", "why", "steered by", "at")))
        table = el("table", el("thead", head) + el("tbody", "".join(rows)), class_="recipe")
        return self.section("recipe", "Recipe", el("div", table, class_="tablewrap"))

    def derivation(self, d: Derivation) -> str:
        value = el("span", escape(d.text), data_status=d.status if d.status != "known" else None)
        inner = el("h3", code(d.path) + " = " + value)
        if d.doc:
            inner += el("p", escape(d.doc), class_="doc")
        rows: list[tuple[str, str]] = []
        if d.kind == "param":
            rows.append(("parameter", escape(d.origin or "")))
            if d.allowed:
                rows.append(("accepts", code(d.allowed)))
        elif d.kind == "missing":
            rows.append(("note", "this ref names no value in the decisions"))
        elif d.origin:
            rows.append(("origin", escape(d.origin)))
        if d.rule:
            rows.append(("rule", code(d.rule)))
        if d.at:
            rows.append(("at", code(d.at)))
        if d.formula:
            rows.append(("formula", code(d.formula)))
        if d.inputs:
            items = []
            for i in d.inputs:
                shown = f" = {escape(i.shown)}" if i.shown is not None else " " + el("span", escape(i.kind),
                                                                                    class_="kind")
                items.append(el("li", self.ref(i.text) + shown))
            rows.append(("inputs", el("ul", "".join(items))))
        if d.reasons:
            rows.append(("reasons", el("ul", "".join(el("li", escape(r)) for r in d.reasons))))
        if d.waits_for:
            rows.append(("waits for", ", ".join(self.ref(w) for w in d.waits_for)))
        if d.ref in self.pending:
            rows.append(("until then", escape(self.pending[d.ref].summary) + " "
                         + el("a", "(cases)", class_="ref", href="#residuals")))
        if d.errors:
            rows.append(("errors", el("ul", "".join(el("li", escape(e)) for e in d.errors))))
        inner += el("dl", "".join(el("dt", k) + el("dd", v) for k, v in rows))
        return el("section", inner, id=self.anchors[d.ref], class_="deriv", data_ref=d.ref) + "\n"

    def derivations(self) -> str:
        intro = el("p", "Each value shown above, with the rule and formula that made it and its inputs; "
                        "inputs that are values link further down to parameters and facts.", class_="meta")
        return self.section("derivations", "Derivations", intro + "\n" + "".join(map(self.derivation, self.derivs)))

    def page(self) -> str:
        p = self.plan
        body = (self.header() + "<main>\n" + self.attention() + self.scores() + self.cascade() + self.images()
                + self.totals() + self.residuals() + self.runtime() + self.recipe() + self.derivations()
                + "</main>\n"
                + el("footer", f"almarules {escape(p.decisions.almarules)} &#183; dry-run plan of "
                     + code(p.source)) + "\n")
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{escape(p.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                + body + "</body>\n</html>\n")


def render(plan: Plan, explain: bool = False) -> str:
    """The plan as one self-contained HTML page. Derivations are always included (every number
    links to one); `explain` is accepted for a uniform signature and changes nothing."""
    return _Page(plan).page()
