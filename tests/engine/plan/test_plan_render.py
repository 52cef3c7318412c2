"""Rendering a dry-run `Plan` as text, markdown and self-contained HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, Callable

import pytest

from almarules.engine.plan.render import html as plan_html
from almarules.engine.plan.render import markdown as plan_markdown
from almarules.engine.plan.render import text as plan_text
from almarules.engine.plan.render.common import Index, anchor_ids, cell_refs, ordered_warnings, slug
from almarules.engine.plan.model import (
    CascadePlan, Cell, Column, ImageRow, Plan, PlanWarning, RunTime, StagePlan)
from plan_sample import CUBE, MFS, sample_plan

RENDERERS: dict[str, Callable[..., str]] = {
    "text": plan_text.render, "markdown": plan_markdown.render, "html": plan_html.render}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture
def plan() -> Plan:
    return sample_plan()


# ---------------------------------------------------------------- an HTML checker

class Page(HTMLParser):
    """Parses a page strictly: balanced tags (self-closing only inside <svg>, as HTML5 allows in
    foreign content), ids, links, numbers, badges and derivation entries.

    A derivation entry is anything with an id that names a value: a `section.deriv` with
    `data-ref`, a table row `tr[id]` of a table with `data-path` ('image[·].threshold'; the
    row's first cell is the key), or a cell `td[id]` under a column header `th[data-path]`.
    `sections[id]` gives its ref, the hrefs in it (a row's plus those of its group's header) and
    its text (likewise). A number `a.num` under a column header with `data-unit` reads, when it
    is a bare number, with that unit appended, as the table shows it; its `ref` is the ref of the entry it links to."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.attrs_seen: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self.nums: list[dict[str, Any]] = []  # a.num: ref, href, text
        self.badges: list[dict[str, Any]] = []
        self.sections: dict[str, dict[str, Any]] = {}  # entry id -> ref, hrefs, text (and key in a table)
        self.paths: dict[str, str] = {}  # id of a rule group (section or legend entry) -> its 'image[·].x'
        self.text: list[str] = []
        self._num: dict[str, Any] | None = None
        self._open: list[tuple[int, str]] = []  # (stack depth, entry id) collecting hrefs and text
        self._groups: list[tuple[int, dict[str, Any]]] = []  # (depth, section.deriv group header: hrefs, text)
        self._tables: list[dict[str, Any]] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.problems.append(f"unclosed: {self.stack}")
        for a in self.nums:
            entry = self.sections.get((a["href"] or "#")[1:])
            a["ref"] = entry["ref"] if entry else None

    # ------------------------------------------------------------ tables
    def _table_start(self, tag: str, a: dict[str, str]) -> None:
        if tag == "table":
            self._tables.append({"path": a.get("data-path"), "heads": [], "row": None, "depth": len(self.stack)})
            if a.get("data-path") and self._groups and self._groups[-1][1]["id"]:
                self.paths.setdefault(self._groups[-1][1]["id"], a["data-path"])
        elif not self._tables:
            return
        t = self._tables[-1]
        if tag == "tr":
            t["row"] = {"cells": 0, "key": None, "keytext": "", "id": a.get("id"), "ids": [], "nums": [],
                        "head": "thead" in self.stack[t["depth"]:]}
        elif tag in ("th", "td") and t["row"] is not None:
            r = t["row"]
            r["col"] = r["cells"]
            r["cells"] += 1
            if r["head"]:
                t["heads"].append({"path": a.get("data-path"), "unit": a.get("data-unit")})
                r["thpath"] = a.get("data-path")
            elif tag == "th" and r["col"] == 0:
                r["inkey"] = True
            if "id" in a and tag == "td":
                r["ids"].append((a["id"], r["col"]))

    def _table_end(self, tag: str) -> None:
        if not self._tables:
            return
        t = self._tables[-1]
        r = t["row"]
        if tag == "th" and r is not None:
            r["inkey"] = False
            r["thpath"] = None
        if tag == "tr" and r is not None and not r["head"]:
            key = r["keytext"].strip()
            if r["id"] and t["path"]:
                self.sections[r["id"]]["ref"] = _ref(t["path"], key)
            for eid in [r["id"]] + [cid for cid, _ in r["ids"]]:
                if eid in self.sections:
                    self.sections[eid]["key"] = key
            for cid, col in r["ids"]:
                head = t["heads"][col] if col < len(t["heads"]) else {}
                self.sections[cid]["ref"] = _ref(head.get("path") or "", key) if head.get("path") else None
            for num, col in r["nums"]:
                unit = t["heads"][col]["unit"] if col < len(t["heads"]) else None
                if unit and re.fullmatch(r"[-+0-9.eE]+", num["text"]):  # a bare number takes the header's unit
                    num["text"] += " " + unit
            t["row"] = None
        if tag == "table":
            self._tables.pop()

    # ------------------------------------------------------------ parser
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.attrs_seen += [(tag, k, v) for k, v in a.items()]
        if "href" in a:
            self.hrefs.append(a["href"])
            if self._tables and (r := self._tables[-1]["row"]) is not None and r.get("thpath"):
                self.paths[a["href"][1:]] = r["thpath"]  # a matrix column's header links to its rule
            for _, sid in self._open:
                self.sections[sid]["hrefs"].append(a["href"])
            if self._groups and not self._tables:
                self._groups[-1][1]["hrefs"].append(a["href"])
        classes = a.get("class", "").split()
        if tag == "a" and "num" in classes:
            self._num = {"ref": None, "href": a.get("href"), "text": ""}
        if "badge" in classes:
            self.badges.append({"colour": a.get("data-colour"), "classes": classes})
        if tag in VOID:
            return
        self.stack.append(tag)
        self._table_start(tag, a)
        if "id" in a:
            self.ids.append(a["id"])
            entry = None
            if tag == "section" and "deriv" in classes and "data-ref" in a:
                entry = {"ref": a["data-ref"], "hrefs": [], "text": ""}
            elif tag in ("tr", "td") and self._tables:
                group = self._groups[-1][1] if self._groups else {"hrefs": [], "text": ""}
                entry = {"ref": None, "hrefs": list(group["hrefs"]), "text": group["text"]}
            if entry is not None:
                self.sections[a["id"]] = entry
                self._open.append((len(self.stack), a["id"]))
        if tag == "section" and "deriv" in classes and "data-ref" not in a:
            self._groups.append((len(self.stack), {"hrefs": [], "text": "", "id": a.get("id")}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID and "svg" not in self.stack:
            self.problems.append(f"self-closed <{tag}/>")
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"end tag for void <{tag}>")
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        depth = len(self.stack)
        if self._open and self._open[-1][0] == depth:
            self._open.pop()
        if self._groups and self._groups[-1][0] == depth:
            self._groups.pop()
        self._table_end(tag)
        self.stack.pop()
        if tag == "a" and self._num is not None:
            self.nums.append(self._num)
            if self._tables and self._tables[-1]["row"] is not None:
                self._tables[-1]["row"]["nums"].append((self._num, self._tables[-1]["row"]["col"]))
            self._num = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._num is not None:
            self._num["text"] += data
        for _, sid in self._open:
            self.sections[sid]["text"] += data
        if self._groups and not self._tables:
            self._groups[-1][1]["text"] += data
        if self._tables and (r := self._tables[-1]["row"]) is not None and r.get("inkey"):
            r["keytext"] += data


def _ref(path: str, key: str) -> str:
    """'image[·].threshold' with key 'X' -> 'image[X].threshold'; 'param:·' -> 'param:X'."""
    return path.replace("·", key, 1)


def plan_cell_texts(plan: Plan) -> dict[str, set[str]]:
    """ref -> the texts of the plan's cells with that ref, from the JSON dump."""
    out: dict[str, set[str]] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if {"text", "ref", "status", "colour"} <= set(x) and x["ref"]:
                out.setdefault(x["ref"], set()).add(x["text"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    dump = plan.model_dump()
    del dump["decisions"]  # values, not cells
    walk(dump)
    return out


def section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


# ---------------------------------------------------------------- every format

@pytest.mark.parametrize("fmt", RENDERERS)
def test_every_image_and_warning_shown_errors_first(plan: Plan, fmt: str) -> None:
    out = RENDERERS[fmt](plan)
    shown = "".join(Page(out).text) if fmt == "html" else out
    for row in plan.images:
        assert row.key in shown
    messages = [w.message for w in ordered_warnings(plan)]
    if fmt == "markdown":
        messages = [plan_markdown.escape(m) for m in messages]
    positions = [shown.index(m) for m in messages]
    assert positions == sorted(positions)
    assert [w.level for w in ordered_warnings(plan)] == ["error", "warning", "notice"]
    assert shown.index(messages[0]) < shown.index("Imaging list")  # warnings come before the plan


@pytest.mark.parametrize("fmt", RENDERERS)
def test_sections_and_key_facts(plan: Plan, fmt: str) -> None:
    out = RENDERERS[fmt](plan)
    shown = "".join(Page(out).text) if fmt == "html" else out
    assert "skipped: no WVR data" in shown  # a skipped stage says why
    assert "bin channels" in shown and "image to PB 0.5" in shown  # both cascade steps
    cascade = plan.cascades[0]
    assert all(v in shown for v in cascade.before.values())  # sizes before each step and after it
    assert all(v in shown for step in cascade.steps for v in step.after.values())
    assert re.search(r"[Ff]its in 1 day: no", shown)
    assert "constants measured on one 16-core node" in shown
    assert "dirty_dr > 150" in shown and "0.84 mJy/beam to" in shown  # residual: cases and the cell
    assert "no flux calibrator" in shown and "blue" in shown and "red" in shown


@pytest.mark.parametrize("fmt", RENDERERS)
@pytest.mark.parametrize("explain", [False, True])
def test_deterministic(fmt: str, explain: bool) -> None:
    first = RENDERERS[fmt](sample_plan(), explain=explain)
    assert RENDERERS[fmt](sample_plan(), explain=explain) == first
    # the same plan read back from its JSON renders the same
    again = Plan.model_validate_json(sample_plan().to_json())
    assert RENDERERS[fmt](again, explain=explain) == first


@pytest.mark.parametrize("fmt", RENDERERS)
def test_sparse_plan(fmt: str) -> None:
    """No images, warnings, cascades, scores or run time: still a complete, valid report."""
    p = sample_plan()
    p = p.model_copy(update=dict(warnings=[], images=[], cascades=[], scores=[], residuals=[], runtime=None,
                                 totals=[], recipe=[], overview=[]))
    out = RENDERERS[fmt](p, explain=True)
    assert p.title.split(":")[0] in out
    if fmt == "html":
        page = Page(out)
        assert not page.problems
        assert set(h[1:] for h in page.hrefs) <= set(page.ids)


@pytest.mark.parametrize("fmt", RENDERERS)
def test_cascade_not_needed_and_runtime_fits(plan: Plan, fmt: str) -> None:
    plan.cascades = [CascadePlan(name="productsize", at="p.rules:20:1", outcome="not needed",
                                 before={"dataset.largest_cube": "0.09 GB"}, steps=[])]
    plan.runtime = RunTime(total=Cell(text="3 h", ref="dataset.imaging_time"), fits=True, limit="1 day",
                           calibration="measured")
    out = RENDERERS[fmt](plan)
    shown = "".join(Page(out).text) if fmt == "html" else out
    assert "not needed" in shown
    assert re.search(r"[Ff]its in 1 day: yes", shown)


# ---------------------------------------------------------------- text

def test_text_image_table_one_row_per_image(plan: Plan) -> None:
    out = plan_text.render(plan)
    table = section(out, "Imaging list (5 images)", "\nTotals")
    lines = [l for l in table.splitlines() if l.strip()]
    rows = [l for l in lines if any(l.startswith(r.key + " ") for r in plan.images)]
    assert len(rows) == len(plan.images) == 5
    for r in plan.images:
        assert sum(1 for l in rows if l.startswith(r.key + " ")) == 1
    header = lines[1]
    assert [w for w in header.split()][:3] == ["image", "field", "intent"]
    assert header.split()[-2:] == ["threshold", "time"]  # plan.columns order
    cube = next(l for l in rows if l.startswith(CUBE))
    assert "0.84 mJy/beam to >= 2.1 mJy/beam" in cube  # a residual cell shows its text
    assert plan.images[0].cells["frequency"].text in rows[0]


def test_text_order_and_colours(plan: Plan) -> None:
    out = plan_text.render(plan)
    heads = ["Needs attention", "Overview", "Recipe", "Imaging list", "Totals", "Product-size cascade", "QA scores",
             "Waiting for data", "Run time"]
    assert [out.index(h) for h in heads] == sorted(out.index(h) for h in heads)
    assert re.search(r"importdata\s+0\.9\s+blue \(below standard\)", out)
    assert re.search(rf"makeimages {re.escape(MFS)}\s+0\.2\s+red \(error\)", out)
    assert "- 0.1 no flux calibrator" in out
    assert "Derivations" not in out


def test_text_explain_derives_every_ref(plan: Plan) -> None:
    out = plan_text.render(plan, explain=True)
    derivs = out.split("\nDerivations\n", 1)[1]
    index = Index(plan.decisions)
    for ref in cell_refs(plan):
        item = index.lookup(ref)
        assert item is not None, ref
        if ref.startswith("param:"):
            assert f"{ref} = {item.text}" in derivs
        else:
            assert f"{item.path} = {item.text}" in derivs
            assert f"[{item.rule}, {item.at}]" in derivs
            if item.formula:
                assert f"formula: {item.formula}" in derivs
    assert "param:tlimit = 4" in derivs  # an input that is a parameter, with its value
    assert "- 0.1 no flux calibrator (rules/alma/cycle4/qa.rules:19:5)" in derivs  # score reasons
    assert f"measurement[{MFS}].sensitivity (fact)" in derivs


# ---------------------------------------------------------------- markdown

def _md_cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_markdown_image_table(plan: Plan) -> None:
    out = plan_markdown.render(plan)
    table = section(out, "## Imaging list (5 images)", "## Totals")
    lines = [l for l in table.splitlines() if l.startswith("|")]
    header, rule, rows = lines[0], lines[1], lines[2:]
    assert len(rows) == len(plan.images)
    ncols = len(plan.columns) + 1
    assert len(_md_cells(header)) == len(_md_cells(rule)) == ncols
    for row, line in zip(plan.images, rows, strict=True):
        cells = _md_cells(line)
        assert len(cells) == ncols
        assert cells[0].strip() == f"`{row.key}`"
    assert "**blue**" in out and "**red**" in out
    assert "Derivations" not in out and "](#" not in out


def test_markdown_explain_links_resolve(plan: Plan) -> None:
    out = plan_markdown.render(plan, explain=True)
    assert "## Derivations" in out
    ids = re.findall(r'<a id="([^"]+)"></a>', out)
    assert len(ids) == len(set(ids)) == len(cell_refs(plan))
    links = re.findall(r"\]\(#([^)]+)\)", out)
    assert links and set(links) <= set(ids)
    anchors = anchor_ids(cell_refs(plan))
    for ref, text in ((f"image[{MFS}].threshold", "0.8 mJy/beam"), ("dataset.importdata_score", "0.9")):
        assert f"[{text}](#{anchors[ref]})" in out
    assert "- formula: `tlimit * image.sensitivity * image.dr_correction`" in out


# ---------------------------------------------------------------- HTML

def test_html_is_valid_self_contained_and_links_resolve(plan: Plan) -> None:
    out = plan_html.render(plan)
    assert out.startswith("<!DOCTYPE html>")
    page = Page(out)
    assert not page.problems
    assert len(page.ids) == len(set(page.ids))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i) for i in page.ids)
    assert page.hrefs and all(h.startswith("#") for h in page.hrefs)
    assert {h[1:] for h in page.hrefs} <= set(page.ids)
    # nothing external: no sources, stylesheets, scripts, fonts or URLs
    assert not [a for a in page.attrs_seen if a[1] == "src"]
    assert "link" not in page.tags and "script" not in page.tags and "iframe" not in page.tags
    assert not [a for a in page.attrs_seen if re.match(r"\s*(https?:|//|file:)", a[2])]
    assert "url(" not in out and "@import" not in out and "http://" not in out and "https://" not in out
    assert page.stack == [] and page.tags.count("html") == 1 and "style" in page.tags


def test_html_numbers_link_to_their_derivation(plan: Plan) -> None:
    page = Page(plan_html.render(plan))
    texts = plan_cell_texts(plan)
    assert len(page.nums) == sum(1 for cell in _cells(plan) if cell.ref)  # every number with a ref is a link
    for a in page.nums:  # the ref is read from the entry the link lands on, the texts from the JSON
        assert a["ref"] is not None, a
        assert a["text"] in texts[a["ref"]], a
    # the residual cell shows its own text, its derivation the value's (unknown, and what it waits for)
    cube = next(a for a in page.nums if a["ref"] == f"image[{CUBE}].threshold")
    assert cube["text"] == "0.84 mJy/beam to >= 2.1 mJy/beam"
    entry = page.sections[cube["href"][1:]]["text"]
    assert "unknown" in entry and f"waits for: measurements[{CUBE}]" in entry


def _cells(plan: Plan) -> list[Cell]:
    from almarules.engine.plan.render.common import plan_cells

    return list(plan_cells(plan))


def walk(page: Page, start: str) -> set[str]:
    """The refs a reader reaches from one entry by following links: to another entry, or to a
    rule group ('same image: image[·].x'), then to that group's entry with the same key."""
    by_ref = {s["ref"]: sid for sid, s in page.sections.items()}
    seen, todo = {start}, [start]
    while todo:
        entry = page.sections[todo.pop()]
        for h in entry["hrefs"]:
            nxt = h[1:] if h[1:] in page.sections else None
            if nxt is None and h[1:] in page.paths and entry.get("key"):
                nxt = by_ref.get(_ref(page.paths[h[1:]], entry["key"]))
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return {page.sections[s]["ref"] for s in seen}


def test_html_derivations_walk_down_to_facts(plan: Plan) -> None:
    page = Page(plan_html.render(plan))
    by_ref = {s["ref"]: sid for sid, s in page.sections.items()}
    reached = walk(page, by_ref[f"image[{CUBE}].threshold"])
    assert {"param:tlimit", f"image[{CUBE}].sensitivity", f"image[{CUBE}].dr_correction",
            f"image[{CUBE}].dirty_dr"} <= reached
    dirty = page.sections[by_ref[f"image[{CUBE}].dirty_dr"]]["text"]
    assert "image[·].measured" in dirty and "fact" in dirty  # facts read, by pattern and count
    score = page.sections[by_ref["dataset.importdata_score"]]["text"]
    assert "- 0.1 no flux calibrator" in score and "rules/alma/cycle4/qa.rules:16:1" in score
    tlimit = page.sections[by_ref["param:tlimit"]]["text"]
    assert "4" in tlimit and "rules/alma/cycle4/threshold.rules:5:1" in tlimit


def test_html_score_badges_and_order(plan: Plan) -> None:
    out = plan_html.render(plan)
    page = Page(out)
    assert [b["colour"] for b in page.badges] == [s.cell.colour for s in plan.scores] == ["blue", "red", "blue"]
    for b in page.badges:
        assert b["colour"] in b["classes"]
    order = ['id="attention"', 'id="scores"', 'id="cascade"', 'id="images"', 'id="totals"', 'id="residuals"',
             'id="runtime"', 'id="recipe"', 'id="derivations"']
    assert [out.index(o) for o in order] == sorted(out.index(o) for o in order)
    assert out.index('class="error"') < out.index('class="warning"') < out.index('class="notice"')
    assert '<tr class="skipped">' in out


def test_html_escapes_everything(plan: Plan) -> None:
    plan.title = 'Plan "A" <b>& co</b>'
    plan.warnings.append(PlanWarning(level="error", message="<script>alert(1)</script> & <img src=x>",
                                     ref='odd"ref <x>'))
    plan.columns.append(Column(key="note", label="<i>note</i>"))
    plan.images.append(ImageRow(key="a<b>&c", ref="image[a<b>&c]",
                                cells={"note": Cell(text="<u>1</u>", ref="image[a<b>&c].note")}))
    plan.recipe.append(StagePlan(name="x<y", run=False, why='skipped: "a" < b', at="r:1"))
    out = plan_html.render(plan)
    page = Page(out)
    assert not page.problems
    assert "<script" not in out and "<img" not in out and "<u>" not in out and "<i>note" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    text = "".join(page.text)
    assert 'Plan "A" <b>& co</b>' in text and "a<b>&c" in text and "<u>1</u>" in text
    assert {h[1:] for h in page.hrefs} <= set(page.ids)  # refs absent from the decisions still resolve


# ---------------------------------------------------------------- shared logic

def test_anchor_ids_unique_valid_and_stable() -> None:
    refs = ["a.b", "a-b", "a b", "image[X.1].size", "param:ppb", "", "ü"]
    ids = anchor_ids(refs)
    assert ids["a.b"] == "d-a-b" and ids["a-b"] == "d-a-b-2" and ids["a b"] == "d-a-b-3"
    assert len(set(ids.values())) == len(refs)
    assert all(re.fullmatch(r"d-[A-Za-z0-9_-]+", i) for i in ids.values())
    assert anchor_ids(refs) == ids
    assert slug("image[Elias_29.TARGET.17.mfs].threshold") == "image-Elias_29-TARGET-17-mfs-threshold"


def test_cell_refs_in_order_of_appearance(plan: Plan) -> None:
    refs = cell_refs(plan)
    assert len(refs) == len(set(refs))
    assert refs[0] == "dataset.array"  # the overview comes first
    assert "param:max_cube_size" in refs and f"image[{CUBE}].threshold" in refs
    assert refs.index("dataset.largest_cube") < refs.index(f"image[{MFS}].beam")  # recipe before images
