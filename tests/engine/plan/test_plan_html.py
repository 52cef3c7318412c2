"""The plan's HTML page (issue 13): small, grouped, deciding columns first, charts, every number
linked to its derivation and equal to the JSON's, and a page that loads cleanly in a browser.

The pages are written by the CLI (`almarules plan EXAMPLE --format html|json -o FILE`), so the
numbers are compared with the JSON the same command writes, never with the renderer's own view.
"""

from __future__ import annotations

import json
import math
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from almarules.engine.cli.app import main
from almarules.engine.plan.render import charts
from almarules.engine.plan.render.html import group_changes, keep_sections, minify_css, render
from almarules.engine.plan.model import Plan
from browser import console_errors, dump_dom, is_blank, requires_chromium, screenshot
from conftest import EXAMPLES, REPO
from test_plan_render import Page, plan_cell_texts, walk

LONG = REPO / "examples" / "12m_long_baseline_cascade.yaml"
KB = 1024


def _plan_files(example: Path, tmp: Path) -> tuple[str, dict[str, Any]]:
    html, js = tmp / f"{example.stem}.html", tmp / f"{example.stem}.json"
    assert main(["plan", str(example), "--format", "html", "-o", str(html)]) == 0
    assert main(["plan", str(example), "--format", "json", "-o", str(js)]) == 0
    return html.read_text(encoding="utf-8"), json.loads(js.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[str, dict[str, Any], Path]]:
    """example stem -> (page, plan JSON, page path), written once by the CLI."""
    tmp = tmp_path_factory.mktemp("plans")
    out = {}
    for example in EXAMPLES:
        text, data = _plan_files(example, tmp)
        out[example.stem] = (text, data, tmp / f"{example.stem}.html")
    return out


def _section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}"')
    return page[start: page.index("\n</section>", start)]


# ---------------------------------------------------------------- size and structure

def test_long_baseline_page_is_small(pages) -> None:
    """The issue's example: 0.8 MB before (about 140 printed pages); at most 150 KB now."""
    page = pages[LONG.stem][0]
    assert len(page.encode("utf-8")) <= 150 * KB


@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_links_resolve_and_nothing_is_external(pages, stem: str) -> None:
    page = Page(pages[stem][0])
    assert not page.problems
    assert len(page.ids) == len(set(page.ids))
    assert page.hrefs and all(h.startswith("#") for h in page.hrefs)
    assert {h[1:] for h in page.hrefs} <= set(page.ids)
    assert not [a for a in page.attrs_seen if a[1] in ("src", "href") and re.match(r"\s*(https?:|//|file:)", a[2])]
    assert "script" not in page.tags and "link" not in page.tags and "url(" not in pages[stem][0]


@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_every_number_links_to_its_derivation_and_equals_the_json(pages, stem: str) -> None:
    text, data, _ = pages[stem]
    page = Page(text)
    plan = Plan.model_validate(data)
    texts = plan_cell_texts(plan)
    assert len(page.nums) == sum(len(v) for v in _cell_refs(data).values())  # each cell with a ref, once
    for a in page.nums:
        assert a["ref"] in texts, a  # lands on the derivation of the value it shows
        assert a["text"] in texts[a["ref"]], a
    # each derivation entry is one value or parameter of the decisions, shown once
    known = {v["path"] for v in data["decisions"]["values"]} | {f"param:{p['name']}" for p in data["decisions"]["params"]}
    refs = [s["ref"] for s in page.sections.values()]
    assert None not in refs and len(refs) == len(set(refs))
    assert set(refs) <= known
    # the page is closed under inputs: every value or parameter a shown derivation uses has its own
    values = {v["path"]: v for v in data["decisions"]["values"]}
    for ref in refs:
        for i in values.get(ref, {}).get("inputs", []):
            if i in values or i.startswith("param:"):
                assert i in refs, (ref, i)


def _cell_refs(data: dict[str, Any]) -> dict[str, list[str]]:
    """ref -> texts of the JSON's cells with that ref (one entry per cell)."""
    out: dict[str, list[str]] = {}

    def visit(x: Any) -> None:
        if isinstance(x, dict):
            if {"text", "ref", "status", "colour"} <= set(x) and x["ref"]:
                out.setdefault(x["ref"], []).append(x["text"])
            for v in x.values():
                visit(v)
        elif isinstance(x, list):
            for v in x:
                visit(v)

    visit({k: v for k, v in data.items() if k != "decisions"})  # the plan's cells, not the values
    return out


def test_derivations_walk_from_a_threshold_to_its_inputs(pages) -> None:
    text, data, _ = pages[LONG.stem]
    page = Page(text)
    by_ref = {s["ref"]: sid for sid, s in page.sections.items()}
    key = "Elias_2-27.TARGET.25.cube"
    reached = walk(page, by_ref[f"image[{key}].threshold"])
    assert {"param:tlimit", f"image[{key}].sensitivity", f"image[{key}].dr_correction", f"image[{key}].dirty_dr",
            f"image[{key}].imsize", "param:ppb"} <= reached


def test_residuals_grouped_saying_how_many_and_which(pages) -> None:
    text, data, _ = pages[LONG.stem]
    page = Page(text)
    residuals = data["residuals"]
    assert len(residuals) == 19
    # independent grouping: same formula once the image's own key is a dot, same cases
    expected: dict[tuple, set[str]] = {}
    for r in residuals:
        key = r["ref"].split("[", 1)[1].split("]", 1)[0]
        sig = (r["formula"].replace(key, "·"), json.dumps(r["cases"]))
        expected.setdefault(sig, set()).add(r["ref"])
    section = _section(text, "residuals")
    blocks = re.findall(r'<div class="residual" id="(w\d+)">(.*?)</div>', section, re.S)
    assert len(blocks) == len(expected) < len(residuals)
    shown = []
    for _, body in blocks:
        count = int(re.search(r'for <span class="count">(\d+)</span>', body).group(1))
        targets = re.findall(r'<a href="#(v\d+)">', body.split("</p>", 1)[0])
        refs = {page.sections[t]["ref"] for t in targets}
        assert count == len(targets) == len(refs)
        assert refs in expected.values()
        shown.append(refs)
    assert set().union(*shown) == {r["ref"] for r in residuals}


def test_cascade_identical_actions_grouped_with_count_and_which(pages) -> None:
    text, data, _ = pages[LONG.stem]
    step2 = next(s for s in data["cascades"][0]["steps"] if s["name"] == "image to PB 0.5")
    assert len(step2["changes"]) == 27
    section = _section(text, "cascade")
    row = next(r for r in section.split("<tr>") if "image to PB 0.5" in r)
    items = re.findall(r"<li>(.*?)</li>", row, re.S)
    assert len(items) == 1  # 27 identical actions: one line
    assert "<code>image[·].pblimit = 0.5</code>" in items[0] and "&times;27" in items[0]
    which = re.findall(r"<code>([^<]*)</code>", items[0].split("</summary>", 1)[1])
    assert [f"image[{k}].pblimit = 0.5" for k in which] == step2["changes"]
    # step 4: two fields dropped the same way, one kept
    row4 = next(r for r in section.split("<tr>") if "fewer sources" in r)
    assert "dropped field[·] (9 images)</code> <span class=\"count\">&times;2</span>" in row4
    assert "DoAr_25" in row4 and "WSB_52" in row4 and "kept field[Elias_2-27]" in row4


def test_group_changes() -> None:
    got = group_changes(["spw[25].nbin = 4", "ppb = 3", "spw[27].nbin = 4", "spw[29].nbin = 2"])
    assert [(g.text, g.count, [w.text for w in g.which]) for g in got] == [
        ("spw[·].nbin = 4", 2, ["25", "27"]), ("ppb = 3", 1, []), ("spw[29].nbin = 2", 1, [])]


def test_imaging_table_puts_the_deciding_columns_first(pages) -> None:
    text, data, _ = pages[LONG.stem]
    heads = [unescape(re.sub(r"<[^>]+>", "", h)) for h in
             re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", _section(text, "images"))]
    assert heads[:6] == ["image", "Threshold (mJy/beam)", "Image size", "Size (GB)", "Product (GB)", "Time (h)"]
    # the field/intent/spws/mode columns only repeat each row's key: left out
    assert not {"Field", "Intent", "Spws", "Mode"} & set(heads)
    assert len(heads) == len(data["columns"]) + 1 - 4


@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_deterministic(pages, stem: str) -> None:
    text, data, _ = pages[stem]
    plan = Plan.model_validate(data)
    assert render(plan) == render(Plan.model_validate_json(plan.to_json())) == text


# ---------------------------------------------------------------- the stylesheet

def test_stylesheet_keeps_the_base_and_the_page_own_section() -> None:
    css = ("/* base */\nbody { margin: 0; }\n/* ---- plan */\n.fits { color: red; }\n"
           "/* weblog */\n.stage  >  h3 { font: 1em/1.2 a, b; }\n")
    plan = minify_css(keep_sections(css, "plan"))
    weblog = minify_css(keep_sections(css, "weblog"))
    assert plan == "body{margin:0}.fits{color:red}\n"
    assert weblog == "body{margin:0}.stage>h3{font:1em/1.2 a,b}\n"


# ---------------------------------------------------------------- charts

def test_size_panel_is_a_log_scale_with_its_limit() -> None:
    bars = [charts.Bar("before", 1233.0, "1233 GB"), charts.Bar("1. bin channels", 308.3, "308.3 GB"),
            charts.Bar("2. fewer", 20.0, "20 GB")]
    svg = charts.size_panel("largest cube", "GB", bars, 30.0, "30 GB")
    assert svg.startswith('<svg role="img"') and "<title>largest cube</title>" in svg and "<desc>" in svg
    assert "log scale" in svg and "limit" in svg and "url(" not in svg
    rects = re.findall(r'<rect x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)" fill="([^"]+)"', svg)
    assert [r[2] for r in rects] == [charts.RED, charts.RED, charts.GREEN]  # above / below the 30 GB limit
    # axis 10 .. 10^4 GB over 230 - 26 - 58 = 146 px: a bar's height is 146 * (log10(v) - 1) / 3
    for (_, h, _), v in zip(rects, (1233.0, 308.3, 20.0), strict=True):
        assert math.isclose(float(h), 146 * (math.log10(v) - 1) / 3, abs_tol=0.11)


def test_runtime_bars_are_linear_against_the_requirement() -> None:
    bars = [charts.Bar("a.cube", 8.0, "8 h"), charts.Bar("b.mfs", 2.0, "2 h")]
    svg = charts.runtime_bars(bars, charts.Bar("all images", 30.0, "30 h"), 24.0, "24 h")
    widths = [float(w) for w in re.findall(r'<rect x="[^"]+" y="[^"]+" width="([^"]+)"', svg)]
    fills = re.findall(r'<rect [^>]*fill="([^"]+)"', svg)
    assert math.isclose(widths[0] / widths[1], 4.0, rel_tol=0.02)
    assert math.isclose(widths[2] / widths[0], 30 / 8, rel_tol=0.02)
    assert fills[2] == charts.RED  # the total exceeds 24 h
    assert "requirement 24 h" in svg and "hours" in svg and "<title>" in svg


def test_parse_quantity() -> None:
    assert charts.parse_quantity("308.3 GB", "GB") == 308.3
    assert charts.parse_quantity("2 TB", "GB") == 2000.0
    assert charts.parse_quantity("90 min", "h") == 1.5
    assert charts.parse_quantity("1 day", "h") == 24.0
    assert charts.parse_quantity("unknown", "GB") is None
    assert charts.parse_quantity("0.84 mJy/beam to >= 2.1 mJy/beam", "GB") is None


# ---------------------------------------------------------------- in a browser

_MEASURE = """<script>
const box = e => { const r = e.getBoundingClientRect(); return [Math.round(r.top), Math.round(r.width), Math.round(r.height)]; };
const w = document.querySelector('#images .tablewrap');
const m = {table: [w.scrollWidth, w.clientWidth], page: document.documentElement.scrollWidth,
  attention: box(document.querySelector('#attention')), charts: box(document.querySelector('#charts svg')),
  images: box(document.querySelector('#images table')), nsvg: document.querySelectorAll('#charts svg').length};
document.body.setAttribute('data-measured', JSON.stringify(m));
</script>"""


def _measure(page_path: Path, tmp_path: Path) -> dict[str, Any]:
    probe = tmp_path / "probe.html"
    probe.write_text(page_path.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = dump_dom(probe, 1400, 1000)
    m = re.search(r'data-measured="([^"]*)"', dom)
    assert m, "the probe script did not run"
    return json.loads(unescape(m.group(1)))


@requires_chromium
@pytest.mark.parametrize("stem", [LONG.stem, "7m_mosaic_multi_eb"])
def test_page_in_chromium(pages, stem: str, tmp_path: Path) -> None:
    """Loads without console errors or failed loads; what needs attention and the charts are on the
    first screen at 1400 x 1000; the imaging table fits 1400 px without scrolling sideways."""
    page_path = pages[stem][2]
    assert console_errors(page_path) == []
    png = tmp_path / f"{stem}.png"
    screenshot(page_path, png, 1400, 1000)
    assert not is_blank(png)
    m = _measure(page_path, tmp_path)
    assert m["table"][0] <= m["table"][1], m  # scrollWidth <= clientWidth: no horizontal scroll
    assert m["page"] <= 1400, m
    assert 0 <= m["attention"][0] < 1000 and m["attention"][2] > 0, m
    assert m["charts"][0] < 1000 and m["charts"][1] > 200 and m["charts"][2] > 100, m  # a chart on the first screen
    assert m["nsvg"] == 3 if stem == LONG.stem else m["nsvg"] >= 1
    assert m["images"][1] > 0 and m["images"][2] > 0


@requires_chromium
def test_browser_helper_catches_errors_and_blank_pages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>x</p><img src="missing.png">'
                   "<script>console.error('boom')</script></body></html>", encoding="utf-8")
    errors = console_errors(bad)
    assert any("missing.png" in e for e in errors) and any("boom" in e for e in errors)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    screenshot(blank, tmp_path / "blank.png")
    assert is_blank(tmp_path / "blank.png")
