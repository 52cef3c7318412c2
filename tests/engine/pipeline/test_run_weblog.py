"""The weblog of a run (engine/pipeline/weblog), tested as a user sees it: rendered from a real run
on alma_sim (images made by `almarules image`, the plan and facts by the CLI, the run state built
with the models), then read with html.parser (links, anchors, numbers against the image records,
colours of flagged images, the attention list) and opened in headless Chromium (console, layout,
pictures, screenshot)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional

import pytest

from almarules.engine.pipeline.state import Attention, Command, ImageEntry, QAReason, RunState, StageRun, StageScore
from almarules.engine.pipeline.weblog import render
from almarules.engine.plan.model import Plan
from almarules.engine.stages.imaging.record import ImageRecord

import browser  # tests/browser.py (tests/ is on sys.path: its conftest.py)

REPO = Path(__file__).resolve().parents[3]
KEYS = ["J1554-3140.CHECK.0.mfs", "SIMGAL_1.TARGET.0.mfs", "SIMGAL_1.TARGET.0.cube"]
#: recipe stages almarules runs (the rest are not implemented)
IMPLEMENTED = ("importdata", "makeimlist", "makeimages", "exportdata")
_SCALE = {"h": 3600.0, "s": 1.0, "GB": 1.0, "mJy/beam": 1e-3, "Jy/beam": 1.0, "uJy/beam": 1e-6}
LOG_TEXT = "stage log line with <script>alert('x')</script> & an ampersand\n"


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "almarules", *args], check=True, capture_output=True, text=True)


def _estimates(plan: Plan, key: str) -> dict[str, Optional[float]]:
    """The plan's estimates of one image in s, GB and Jy/beam (None where unknown)."""
    values = {v.path: v for v in plan.decisions.values}
    out: dict[str, Optional[float]] = {}
    for q in ("run_time", "size", "sensitivity", "threshold"):
        v = values.get(f"image[{key}].{q}")
        ok = v is not None and v.status == "known" and isinstance(v.value, (int, float))
        out[q] = float(v.value) * _SCALE[v.unit or "s"] if ok else None
    return out


def _split(name: str) -> tuple[str, list[str]]:
    m = re.fullmatch(r"(\w+)(?:\((.*)\))?", name)
    assert m is not None, name
    return m.group(1), [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]


def _stage_items(args: list[str], records: dict[str, ImageRecord]) -> list[str]:
    """The images a makeimages stage makes, from the arguments of the makeimlist before it."""
    if args and args[0] in ("PHASE", "BANDPASS", "CHECK"):
        return sorted(k for k, r in records.items() if r.intent in args)
    return sorted(k for k, r in records.items() if r.intent == "TARGET" and r.specmode in args)


def _stages(plan: Plan, records: dict[str, ImageRecord], workdir: Path) -> list[StageRun]:
    stages, last_args = [], []
    for i, sp in enumerate(plan.recipe, 1):
        name, args = _split(sp.name)
        stage = StageRun(index=i, name=name, args=args, at=sp.at, condition=sp.why)
        if sp.run is False:
            stage.status, stage.why = "skipped", sp.why
        elif name not in IMPLEMENTED:
            stage.status, stage.why = "not_implemented", f"almarules has no {name} stage yet"
        else:
            stage.status, stage.duration = "done", 0.5 * i
            stage.log = f"logs/{i:02d}_{name}.log"
            (workdir / stage.log).parent.mkdir(exist_ok=True)
            (workdir / stage.log).write_text(f"[{i}] {name}\n" + LOG_TEXT)
            last_args = args if name == "makeimlist" else last_args
            if name == "makeimages":
                stage.items = _stage_items(last_args, records)
                stage.score = _lowest_score(stage.items, records)
                stage.commands = [Command(tool="almarules", text="almarules image MS --image " + " --image ".join(
                    stage.items)), Command(tool="casa", text="tclean(vis='MS', ...)", note="one call per image")]
        stages.append(stage)
    return stages


def _lowest_score(keys: list[str], records: dict[str, ImageRecord]) -> StageScore:
    """A makeimages stage's score as the runner gives it: its lowest image score, with that image's reasons."""
    if not keys:
        return StageScore()
    key = min(keys, key=lambda k: (records[k].weblog.qa_score.value, k))
    w = records[key].weblog
    return StageScore(value=w.qa_score.value, colour=w.qa_colour.value, source=f"lowest image score: {key}",
                      reasons=[QAReason(text=f"{key}: {t}", at=w.qa_score.source) for t in w.qa_reasons])


def _score_importdata(plan: Plan, stages: list[StageRun]) -> None:
    score = next(s for s in plan.scores if s.label == "importdata")
    reasons = [QAReason(text=r.split(" (")[0], at=(re.search(r"\((\S+\.rules:\d+:\d+)\)", r) or [None, None])[1])
               for r in score.reasons]
    stages[0].score = StageScore(value=float(score.cell.text), colour=score.cell.colour,
                                 source=f"{score.cell.ref}", reasons=reasons)


def make_workdir(ms: Path, workdir: Path, keys: Optional[list[str]], rules: str = "rules/alma/cycle4") -> RunState:
    """A WORKDIR as `almarules run` leaves it: images (the CLI), plan.json, facts.json, logs, run.json."""
    workdir.mkdir(parents=True, exist_ok=True)
    _cli("image", str(ms), "-o", str(workdir / "images"), "--extra-products", "--rules", rules,
         *([a for k in keys for a in ("--image", k)] if keys else ["--all"]))
    _cli("plan", str(ms), "--format", "json", "-o", str(workdir / "plan.json"), "--rules", rules)
    _cli("facts", str(ms), "--json", "-o", str(workdir / "facts.json"))
    plan = Plan.model_validate_json((workdir / "plan.json").read_text())
    records = {r.key: r for r in (ImageRecord.model_validate_json(p.read_text())
                                  for p in sorted((workdir / "images").glob("*.record.json")))}
    paths = {json.loads(p.read_text())["key"]: p for p in (workdir / "images").glob("*.record.json")}
    stages = _stages(plan, records, workdir)
    _score_importdata(plan, stages)
    images = {}
    for stage in stages:
        for key in stage.items:
            images[key] = ImageEntry(key=key, stage=stage.index, record=str(paths[key].relative_to(workdir)),
                                     status=records[key].status, worker="local",
                                     seconds=records[key].timings.get("total"), plan=_estimates(plan, key))
    attention = [Attention(level=w.level, text=w.message, at=w.at,
                           stage=1 if (w.ref or "").startswith("dataset.importdata") else None) for w in plan.warnings]
    missing = [s for s in stages if s.status == "not_implemented"]  # as the runner says it
    attention.append(Attention(level="warning", stage=missing[0].index, text=f"{len(missing)} stage(s) of the recipe "
                               f"are not implemented yet and did not run: {', '.join(s.name for s in missing)}"))
    attention += [Attention(level="warning", text=f"{k}: {r.concerns[0]}", stage=images[k].stage, image=k,
                            at=r.weblog.qa_score.source) for k, r in sorted(records.items()) if r.concerns]
    state = RunState(created="2026-12-06T20:00:00+00:00", updated="2026-12-06T20:05:00+00:00",
                     command=["almarules", "run", str(ms), "-o", str(workdir)], ms=[str(ms)],
                     rules=[rules], rules_sha256=plan.rules_sha256, recipe="cycle4", stages=stages,
                     images=images, attention=attention, finished=True, workers="serial")
    (workdir / "run.json").write_text(state.to_json())
    return state


@pytest.fixture(scope="session")
def run_dir(shared_ms, tmp_path_factory) -> Path:
    """A WORKDIR with three images of alma_sim (a calibrator, a target mfs, a target cube) and its weblog."""
    workdir = tmp_path_factory.mktemp("weblog") / "run"
    make_workdir(shared_ms("alma_sim.ms"), workdir, KEYS)
    render.write_weblog(workdir)
    return workdir


@pytest.fixture(scope="session")
def nocap_dir(shared_ms, tmp_path_factory) -> Path:
    """A WORKDIR with one uncalibrated image scored green: made with a copy of the cycle4 rules
    whose image score does not cap uncalibrated data (a rule set may well say so)."""
    root = tmp_path_factory.mktemp("weblog_nocap")
    rules = root / "rules" / "nocap"
    shutil.copytree(REPO / "rules/alma/cycle4", rules)
    qa = rules / "imageqa.rules"
    qa.write_text("".join(line for line in qa.read_text().splitlines(keepends=True) if "score capped at 0.3" not in line))
    make_workdir(shared_ms("alma_sim.ms"), root / "run", ["J1554-3140.CHECK.0.mfs"], rules=str(rules))
    render.write_weblog(root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def calibrated_dir(alma_sim_calibrated, tmp_path_factory) -> Path:
    """A WORKDIR with two images of the calibrated alma_sim (CORRECTED_DATA = the truth divided out)."""
    root = tmp_path_factory.mktemp("weblog_calibrated")
    make_workdir(alma_sim_calibrated, root / "run", ["J1607-2730.PHASE.0.mfs", "SIMGAL_1.TARGET.0.mfs"])
    render.write_weblog(root / "run")
    return root / "run"


# ---------------------------------------------------------------- html.parser helpers
class Page(HTMLParser):
    """ids, links (href/src) and elements (tag, attrs, text) of one HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.duplicate_ids: list[str] = []
        self.refs: list[str] = []
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.ids:
                self.duplicate_ids.append(a["id"])
            self.ids.add(a["id"])
        self.refs += [a[k] for k in ("href", "src") if a.get(k)]
        el = {"tag": tag, "attrs": a, "text": ""}
        self.elements.append(el)
        if tag not in ("img", "br", "meta", "link", "input", "hr"):
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el["text"] += data


def _pages(weblog: Path) -> dict[Path, Page]:
    return {p: Page(p.read_text()) for p in sorted(weblog.rglob("*.html"))}


def _classes(el: dict) -> set[str]:
    return set((el["attrs"].get("class") or "").split())


# ---------------------------------------------------------------- parse-level tests
def test_every_internal_link_and_anchor_resolves(run_dir):
    pages = _pages(run_dir / "weblog")
    assert len(pages) > 10
    for path, page in pages.items():
        assert page.duplicate_ids == [], path
        for ref in page.refs:
            assert not ref.startswith(("http:", "https:", "//")), f"{path.name}: remote reference {ref}"
            target, _, anchor = ref.partition("#")
            file = (path.parent / target).resolve() if target else path
            assert file.exists(), f"{path.relative_to(run_dir)}: broken link {ref}"
            if anchor and file.suffix == ".html":
                assert anchor in pages[file].ids, f"{path.relative_to(run_dir)}: no id {anchor!r} in {file.name}"


def test_no_remote_references_anywhere(run_dir):
    for path in sorted((run_dir / "weblog").rglob("*")):
        if path.suffix in (".html", ".css"):
            assert not re.search(r"https?://", path.read_text()), path


def test_rule_links_point_at_the_rule_line(run_dir):
    """A threshold links to threshold.rules at the line of its rule (as the record says), and that
    line of the rule page holds the rule that derives the threshold."""
    record = _record(run_dir, "SIMGAL_1.TARGET.0.mfs")
    file, line, _ = record.weblog.threshold.source.rsplit(":", 2)
    page = Page((run_dir / "weblog/images/SIMGAL_1.TARGET.0.mfs.html").read_text())
    span = next(e for e in page.elements if e["attrs"].get("data-key") == "threshold")
    link = next(e for e in page.elements if e["tag"] == "a" and e["attrs"].get("href", "").endswith(f"#L{line}")
                and "threshold.rules" in e["attrs"]["href"])
    assert span["attrs"]["title"] == record.weblog.threshold.source
    rules_page = (run_dir / "weblog/images" / link["attrs"]["href"].split("#")[0]).resolve()
    rp = Page(rules_page.read_text())
    row = next(e for e in rp.elements if e["attrs"].get("id") == f"L{line}")
    source_line = (Path(__file__).resolve().parents[3] / file).read_text().splitlines()[int(line) - 1]
    assert "threshold" in row["text"] and source_line.strip() in row["text"]


def _record(run_dir: Path, key: str) -> ImageRecord:
    state = RunState.model_validate_json((run_dir / "run.json").read_text())
    return ImageRecord.model_validate_json((run_dir / state.images[key].record).read_text())


_NUMBER = re.compile(r"^(?P<num>-?[0-9.]+(?:e-?\d+)?)(?: (?P<unit>\S+))?$")


def test_every_number_on_the_image_pages_equals_the_record(run_dir):
    """Each number shown (data-key) parses back to the record's value within its 4 significant
    digits, with the record's unit, and its hover text is the record's source."""
    state = RunState.model_validate_json((run_dir / "run.json").read_text())
    checked = 0
    for key in state.images:
        record = _record(run_dir, key)
        page = Page((run_dir / "weblog" / "images" / f"{key}.html").read_text())
        for el in (e for e in page.elements if e["tag"] == "span" and "data-key" in e["attrs"]):
            setting = getattr(record.weblog, el["attrs"]["data-key"], None) or record.parameters[el["attrs"]["data-key"]]
            if not isinstance(setting.value, (int, float)) or isinstance(setting.value, bool):
                assert el["text"].split(" ")[0] == str(setting.value)
                continue
            m = _NUMBER.match(el["text"].strip())
            assert m is not None, (key, el)
            assert float(m.group("num")) == pytest.approx(setting.value, rel=5e-4, abs=1e-300)
            assert (m.group("unit") or "") == (setting.unit or ""), (key, el)
            assert el["attrs"]["title"] == setting.source
            checked += 1
    assert checked >= 3 * 14


@pytest.mark.parametrize("which", ["run_dir", "nocap_dir"])
def test_uncalibrated_image_is_never_green(which, request):
    """alma_sim has no CORRECTED_DATA: every image is uncalibrated, and none is drawn green/ok/blue,
    even where the rules scored it green (nocap_dir)."""
    run_dir = request.getfixturevalue(which)
    state = RunState.model_validate_json((run_dir / "run.json").read_text())
    assert {e.status for e in state.images.values()} == {"uncalibrated"}
    if which == "nocap_dir":
        assert _record(run_dir, "J1554-3140.CHECK.0.mfs").weblog.qa_colour.value == "green"  # the premise
    forbidden = {"green", "qa-green", "ok", "blue", "qa-blue", "st-ok"}
    listing = Page((run_dir / "weblog/images/index.html").read_text())
    for key in state.images:
        row = next(e for e in listing.elements if e["attrs"].get("id") == key)
        assert not _classes(row) & forbidden
        page = Page((run_dir / "weblog" / "images" / f"{key}.html").read_text())
        coloured = [e for e in page.elements if _classes(e) & forbidden]
        assert coloured == [], (key, coloured[:2])
        assert any("uncalibrated" in e["text"] and "st-uncalibrated" in _classes(e) for e in page.elements)


def test_green_stages_are_one_line_and_ok_images_keep_their_colour(calibrated_dir):
    """Calibrated data: the images are ok and scored green by the rules; their makeimages stages
    take one line on the index (no reasons row) and the images are not in the attention list."""
    state = RunState.model_validate_json((calibrated_dir / "run.json").read_text())
    assert {e.status for e in state.images.values()} == {"ok"}
    green = [s for s in state.stages if s.name == "makeimages" and s.score.colour == "green"]
    assert len(green) == 2  # the premise: calibrator and target mfs stages
    page = Page((calibrated_dir / "weblog/index.html").read_text())
    rows = [e for e in page.elements if e["tag"] == "tr"]
    for s in green:
        i = next(n for n, e in enumerate(rows) if e["attrs"].get("id") == f"stage-{s.index}")
        assert "folded" in _classes(rows[i]) and "detail" not in _classes(rows[i + 1])
    section = next(e for e in page.elements if e["attrs"].get("id") == "attention")
    listing = Page((calibrated_dir / "weblog/images/index.html").read_text())
    for key in state.images:
        assert key not in section["text"]
        row = next(e for e in listing.elements if e["attrs"].get("id") == key)
        assert "qa-green" in _classes(row)


def test_attention_lists_not_implemented_stages_and_flagged_images(run_dir):
    state = RunState.model_validate_json((run_dir / "run.json").read_text())
    page = Page((run_dir / "weblog/index.html").read_text())
    section = next(e for e in page.elements if e["attrs"].get("id") == "attention")
    hrefs = {e["attrs"].get("href") for e in page.elements if e["tag"] == "a"}
    missing = [s for s in state.stages if s.status == "not_implemented"]
    assert missing and "not implemented" in section["text"]
    for s in missing:
        assert f"stages/{s.index:02d}_{s.name}.html" in hrefs
        assert f"{s.index}. {s.name}" in section["text"]
    for key in state.images:
        assert key in section["text"] and f"images/{key}.html" in hrefs
    assert "importdata score 0 (red)" in section["text"]


def test_attention_groups_the_same_concern_of_several_images(run_dir):
    """The run says "KEY: uncalibrated: ..." once per image; the index says it once, with a link per image."""
    page = Page((run_dir / "weblog/index.html").read_text())
    items = [e for e in page.elements if e["tag"] == "li" and "uncalibrated: the visibilities" in e["text"]]
    assert len(items) == 1 and items[0]["text"].count("uncalibrated: the visibilities") == 1
    assert items[0]["text"].lstrip().startswith("warning3 images: ")


def test_plan_against_outcome_summary(run_dir):
    """Median and worst ratio of actual to estimated run time, computed here from run.json."""
    state = RunState.model_validate_json((run_dir / "run.json").read_text())
    ratios = sorted((e.seconds / e.plan["run_time"], k) for k, e in state.images.items())
    assert len(ratios) == 3
    page = Page((run_dir / "weblog/outcome.html").read_text())
    row = next(e for e in page.elements if e["tag"] == "tr" and e["text"].startswith("run time"))
    cells = [e["text"] for e in _children(page, row) if e["tag"] == "td"]
    worst = max(ratios, key=lambda r: abs(math.log(r[0])))
    assert cells == ["run time", "3", f"{ratios[1][0]:.3g}", f"{worst[0]:.3g}", worst[1]]
    assert "<svg" in (run_dir / "weblog/outcome.html").read_text()


def _children(page: Page, parent: dict) -> list[dict]:
    """The elements after `parent` up to the next element of its tag (a row's cells)."""
    i = next(n for n, e in enumerate(page.elements) if e is parent)
    out = []
    for e in page.elements[i + 1:]:
        if e["tag"] == parent["tag"]:
            break
        out.append(e)
    return out


def test_positions_are_sexagesimal_as_astropy_writes_them():
    from astropy import units as u
    from astropy.coordinates import Angle

    from almarules.engine.pipeline.weblog.overview import sexagesimal

    for ra, dec in [(241.8, -27.5), (0.0001, -0.0001), (230.00000000000006, -25.000000000000004), (12.3456789, 31.6666667)]:
        assert sexagesimal(ra, hours=True) == Angle(ra * u.deg).to_string(unit=u.hour, sep=":", precision=3, pad=True)
        assert sexagesimal(dec, hours=False) == Angle(dec * u.deg).to_string(unit=u.deg, sep=":", precision=2, pad=True,
                                                                             alwayssign=True)


def test_stage_log_is_inline_and_escaped(run_dir):
    text = (run_dir / "weblog/stages/01_importdata.html").read_text()
    assert "&lt;script&gt;alert(" in text and "<script>" not in text


def test_rendering_twice_gives_identical_pages_and_reuses_pictures(run_dir, tmp_path):
    before = {p.relative_to(run_dir): p.read_bytes() for p in sorted((run_dir / "weblog").rglob("*")) if p.is_file()}
    lines: list[str] = []
    render.write_weblog(run_dir, progress=lines.append)
    after = {p.relative_to(run_dir): p.read_bytes() for p in sorted((run_dir / "weblog").rglob("*")) if p.is_file()}
    assert after.keys() == before.keys()
    assert [k for k in before if before[k] != after[k]] == []
    assert any(re.search(r"\b0 pictures drawn, [1-9]\d* reused", line) for line in lines), lines


def test_a_changed_fits_file_is_drawn_again(run_dir):
    """Touching one product (a new mtime) redraws exactly its picture; the page names the new PNG."""
    state = RunState.model_validate_json((run_dir / "run.json").read_text())
    record = _record(run_dir, KEYS[0])
    residual = (run_dir / state.images[KEYS[0]].record).parent / next(p.file for p in record.products
                                                                       if p.kind == "residual")
    page = run_dir / "weblog/images" / f"{KEYS[0]}.html"
    old = {r for r in Page(page.read_text()).refs if ".residual." in r and r.endswith(".png")}
    st = residual.stat()
    os.utime(residual, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    lines: list[str] = []
    render.write_weblog(run_dir, progress=lines.append)
    new = {r for r in Page(page.read_text()).refs if ".residual." in r and r.endswith(".png")}
    assert len(old) == len(new) == 1 and old != new
    assert any(re.search(r"\b1 pictures drawn, [1-9]\d* reused", line) for line in lines), lines


def test_a_failed_image_is_shown_failed_and_needs_attention(run_dir, tmp_path):
    """An image the run could not make (no record) is an error in the attention list, its page says failed."""
    work = tmp_path / "run"
    shutil.copytree(run_dir, work, ignore=shutil.ignore_patterns("weblog"))
    state = RunState.model_validate_json((work / "run.json").read_text())
    cube_stage = state.images["SIMGAL_1.TARGET.0.cube"].stage
    state.images["SIMGAL_1.TARGET.1.cube"] = ImageEntry(key="SIMGAL_1.TARGET.1.cube", stage=cube_stage, status="failed")
    next(s for s in state.stages if s.index == cube_stage).items.append("SIMGAL_1.TARGET.1.cube")
    render.write_weblog(work, state=state)
    index = Page((work / "weblog/index.html").read_text())
    errors = [e for e in index.elements if e["tag"] == "li" and "error" in _classes(e)]
    assert any("1 image could not be made" in e["text"] and "SIMGAL_1.TARGET.1.cube" in e["text"] for e in errors)
    page = Page((work / "weblog/images/SIMGAL_1.TARGET.1.cube.html").read_text())
    assert any("st-failed" in _classes(e) for e in page.elements)
    assert not [e for e in page.elements if _classes(e) & {"green", "qa-green", "blue", "qa-blue"}]


def test_a_failed_render_leaves_the_previous_weblog(run_dir, monkeypatch):
    index = run_dir / "weblog/index.html"
    old = index.read_bytes()

    def boom(*_args, **_kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "write_pages", boom)
    with pytest.raises(RuntimeError):
        render.write_weblog(run_dir)
    assert index.read_bytes() == old
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".weblog")] == []


def test_pictures_are_valid_pngs_of_the_size_the_page_says(run_dir):
    pages = _pages(run_dir / "weblog")
    n = 0
    for path, page in pages.items():
        for img in (e for e in page.elements if e["tag"] == "img"):
            data = (path.parent / img["attrs"]["src"]).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n", img
            width, height = struct.unpack(">II", data[16:24])
            if img["attrs"].get("class") != "mini":
                assert (width, height) == (int(img["attrs"]["width"]), int(img["attrs"]["height"]))
            n += 1
    assert n >= 3 * 6 + 2


# ---------------------------------------------------------------- in the browser
PROBE = """<script>
window.addEventListener('load', () => {
  const r = {};
  const main = document.querySelector('main');
  const first = main.querySelector('section, h2, table');
  r.first = first ? (first.id || first.tagName) : null;
  const att = document.getElementById('attention');
  if (att) { const a = att.getBoundingClientRect(); r.attention_top = a.top; r.attention_height = a.height; }
  r.viewport = window.innerHeight;
  r.broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  r.images = document.images.length;
  document.body.setAttribute('data-probe', JSON.stringify(r));
});
</script>"""


@browser.requires_chromium
def test_index_in_the_browser(run_dir, tmp_path):
    index = run_dir / "weblog/index.html"
    assert browser.console_errors(index) == []
    probe_dir = tmp_path / "weblog"
    shutil.copytree(run_dir / "weblog", probe_dir)
    for page in ("index.html", "overview.html", *(f"images/{k}.html" for k in KEYS)):
        p = probe_dir / page  # all pictures loaded at once (not lazily), then the probe reports
        p.write_text(p.read_text().replace(' loading="lazy"', "").replace("</body>", PROBE + "</body>"))
        dom = browser.dump_dom(p)
        probe = json.loads(re.search(r"data-probe=\"([^\"]*)\"", dom).group(1).replace("&quot;", '"'))
        assert probe["broken"] == [], probe
        if page == "index.html":
            assert probe["first"] == "attention"
            assert 0 < probe["attention_top"] < probe["viewport"] / 3 and probe["attention_height"] > 40
        elif page == "overview.html":
            assert probe["images"] == 2  # the array and the scans
        else:  # image, residual, mask, PSF, PB, model (+ spectrum and moment map for the cube)
            assert probe["images"] == (8 if page.endswith("cube.html") else 6)
    png = tmp_path / "index.png"
    browser.screenshot(index, png)
    assert not browser.is_blank(png)


@browser.requires_chromium
def test_image_page_in_the_browser(run_dir, tmp_path):
    page = run_dir / "weblog/images/SIMGAL_1.TARGET.0.cube.html"
    assert browser.console_errors(page) == []
    png = tmp_path / "cube.png"
    browser.screenshot(page, png)
    assert not browser.is_blank(png)
