"""`almarules plan` on the shipped examples and the shared Measurement Sets: complete reports in
every format, residuals computed by re-evaluation, HTML whose numbers match the JSON."""

from __future__ import annotations

import json

import pytest

from almarules.engine.plan.render import html as plan_html
from almarules.engine.plan.render import markdown as plan_markdown
from almarules.engine.plan.render import text as plan_text
from almarules.engine.evaluate.api import load_dataset, load_facts
from almarules.engine.cli.app import main
from almarules.engine.plan.build import build_plan
from almarules.engine.plan.model import Plan
from conftest import EXAMPLES, REPO
from test_plan_render import Page, plan_cell_texts

SHARED = ["ngc5921.ms", "alma_sim.ms", "X5707_1spw_1scan_10chan_1time_1bl_noatm.ms",
          "day2_TDEM0003_10s_norx_1src_1spw.ms"]
INTENTS = {"ngc5921.ms": REPO / "examples" / "intents" / "ngc5921.yaml",
           "day2_TDEM0003_10s_norx_1src_1spw.ms": REPO / "examples" / "intents" / "day2_TDEM0003.yaml"}


def check_complete(plan: Plan) -> None:
    """Every format renders; every image is listed; the HTML's numbers are the JSON's cells."""
    images = plan.decisions.entities.get("image", [])
    assert [r.key for r in plan.images] == images
    assert plan.recipe and plan.runtime is not None and plan.cascades
    for row in plan.images:
        assert set(row.cells) == {c.key for c in plan.columns}
    again = Plan.model_validate_json(plan.to_json())
    assert again == plan
    text, md, page_text = plan_text.render(plan, explain=True), plan_markdown.render(plan, explain=True), \
        plan_html.render(plan)
    for key in images:
        assert key in text and key in page_text and key.replace("_", "\\_") in md or key in md
    page = Page(page_text)
    assert not page.problems
    assert len(page.ids) == len(set(page.ids))
    assert {h[1:] for h in page.hrefs} <= set(page.ids)
    texts = plan_cell_texts(plan)
    for a in page.nums:
        assert a["text"] in texts[a["ref"]], a
    assert len(page.nums) >= len(images)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_gives_a_complete_plan(cycle4, example):
    plan = build_plan(cycle4, load_facts(example), str(example))
    check_complete(plan)
    assert plan.runtime.fits is not None  # the examples carry what the cost model needs


@pytest.mark.parametrize("name", SHARED)
def test_every_shared_ms_gives_a_complete_plan(cycle4, shared_ms, name):
    facts = load_dataset([shared_ms(name)], INTENTS.get(name))
    plan = build_plan(cycle4, facts, name)
    check_complete(plan)
    assert plan.images, "with intents declared, every MS has an imaging list"


def test_residual_threshold_cases_follow_the_dr_table(cycle4):
    """The 12-m target threshold waits for the dirty DR: 4 x sigma x (1, 1.5, 2, 2.5, then DR/150)."""
    example = REPO / "examples" / "12m_single_field_tdm.yaml"
    plan = build_plan(cycle4, load_facts(example), str(example))
    path = "image[Elias_29.TARGET.21.mfs].threshold"
    res = next(r for r in plan.residuals if r.ref == path)
    assert res.unknowns == ["measurements[Elias_29.TARGET.21.mfs]"]
    sigma = plan.decisions.value("image[Elias_29.TARGET.21.mfs].sensitivity").value  # mJy/beam
    factors = [1.0, 1.5, 2.0, 2.5]  # the four table rows; the fifth case (DR > 150) rises with the DR
    assert len(res.cases) == len(factors) + 1
    for case, f in zip(res.cases[:-1], factors, strict=True):
        shown = float(case.text.split()[0])
        assert shown == pytest.approx(4 * sigma * f, rel=2e-3), (case, f)
    assert [c.condition for c in res.cases][:2] == ["dirty_dr <= 20", "20 < dirty_dr <= 50"]
    assert res.cases[-1].condition == "dirty_dr > 150" and "rising with dirty_dr" in res.cases[-1].text
    assert res.formula.startswith("threshold = tlimit * image.sensitivity * image.dr_correction = 4 * ")
    calibrator = next(r for r in plan.residuals if r.ref == "image[J1625-2527.PHASE.17.mfs].threshold")
    assert calibrator.cases, "a formula without a table is probed over decades of the unknown"
    assert calibrator.cases[0].condition == "dirty_dr <= 1000"  # max(1, min(DR/1000, ...)) = 1 up to 1000


def test_warnings_come_first_and_name_the_problem(cycle4):
    example = REPO / "examples" / "12m_long_baseline_cascade.yaml"
    plan = build_plan(cycle4, load_facts(example), str(example))
    assert plan.warnings[0].level == "error" and "cascade productsize" in plan.warnings[0].message
    levels = [w.level for w in plan.warnings]
    assert levels == sorted(levels, key=["error", "warning", "notice"].index)
    nophase = REPO / "examples" / "12m_no_phase_calibrator.yaml"
    plan = build_plan(cycle4, load_facts(nophase), str(nophase))
    assert any(w.level == "error" and "importdata" in w.message and "no phase calibrator" in w.message
               for w in plan.warnings)
    score = next(s for s in plan.scores if s.label == "importdata")
    assert score.cell.colour == "red"


def test_plan_cli_formats_and_corpus(tmp_path, capsys):
    example = str(REPO / "examples" / "12m_fdm_lines.yaml")
    for fmt, suffix in (("text", ".txt"), ("markdown", ".md"), ("json", ".json"), ("html", ".html")):
        out = tmp_path / f"plan{suffix}"
        assert main(["plan", example, "--format", fmt, "-o", str(out)]) == 0
        assert out.stat().st_size > 1000
    Plan.model_validate_json((tmp_path / "plan.json").read_text())
    assert main(["plan", "--corpus", str(REPO / "examples"), "--json", str(tmp_path / "c.json"),
                 "--csv", str(tmp_path / "c.csv")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["datasets"]
    assert len(rows) == len(EXAMPLES)
    assert (tmp_path / "c.csv").read_text().count("\n") == len(EXAMPLES) + 1
    long = next(r for r in rows if r["dataset"].endswith("12m_long_baseline_cascade.yaml"))
    assert long["productsize_steps"][:2] == ["bin channels", "image to PB 0.5"]
    assert main(["plan"]) == 2
    assert main(["plan", "--corpus", str(tmp_path / "nowhere")]) == 2


@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "json"])
def test_a_rule_set_without_an_imaging_list_plans_no_images(tmp_path, capsys, fmt):
    """It was an internal error (KeyError 'image'); now a plan with an empty imaging list."""
    (tmp_path / "a.rules").write_text('"""No imaging list."""\n\nparam x = 3\n    """A number."""\n\n'
                                      'derive dataset.y = x * 2\n    """Twice x."""\n')
    rc = main(["plan", str(REPO / "examples" / "12m_single_field_tdm.yaml"), "--rules", str(tmp_path), "--format", fmt])
    out, err = capsys.readouterr()
    assert rc == 0, err
    if fmt == "json":
        assert json.loads(out)["images"] == []
    elif fmt == "text":
        assert "Imaging list (0 images)" in out and "(no images)" in out
