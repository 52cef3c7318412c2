"""One vocabulary for cascade outcomes everywhere: the words of ``dataset.NAME_outcome``
("not needed", "mitigated", "still exceeded", "error", "unknown"). ``plan`` said "mitigated" where
``plan --corpus``, ``eval``, ``diff`` and rule tests said "satisfied"."""

from __future__ import annotations

import json
import shutil

import pytest

from almarules.dsl.checker import OUTCOMES
from almarules.engine.evaluate.api import load_program
from almarules.engine.cli.app import main
from almarules.engine.plan.corpus import _interpreted_row
from almarules.engine.facts.summary import load_summary

from conftest import REPO

CASCADE = REPO / "examples" / "12m_long_baseline_cascade.yaml"
# largest cube 1233 GB and product 29600 GB before; binning channels by 4 gives 308.3 GB and
# 7406 GB (README), within these limits: the cascade is mitigated by its first step
LIMITS = ["--set", "max_cube_size=400GB", "--set", "max_product_size=8000GB"]


@pytest.fixture()
def corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    shutil.copy(CASCADE, d)
    shutil.copy(REPO / "examples" / "12m_single_field_tdm.yaml", d)
    return d


def _words(text: str) -> None:
    assert "mitigated" in text
    assert "satisfied" not in text


@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "json"])
def test_plan_formats_say_mitigated(capsys, fmt):
    assert main(["plan", str(CASCADE), "--format", fmt] + LIMITS) == 0
    _words(capsys.readouterr().out)


def test_plan_json_outcome_is_an_outcome_word(capsys):
    assert main(["plan", str(CASCADE), "--format", "json"] + LIMITS) == 0
    (cascade,) = json.loads(capsys.readouterr().out)["cascades"]
    assert cascade["outcome"] == "mitigated"


def test_eval_table_and_json_say_mitigated(capsys):
    assert main(["eval", str(CASCADE)] + LIMITS) == 0
    out = capsys.readouterr().out
    assert "Cascade productsize: mitigated   [" in out
    _words(out)
    assert main(["eval", str(CASCADE), "--json"] + LIMITS) == 0
    data = json.loads(capsys.readouterr().out)
    (cascade,) = data["cascades"]
    assert cascade["status"] == "mitigated"
    outcome = next(v for v in data["values"] if v["path"] == "dataset.productsize_outcome")
    assert outcome["value"] == cascade["status"]


def test_corpus_rows_say_mitigated(corpus, capsys):
    assert main(["plan", "--corpus", str(corpus), "--format", "json"] + LIMITS) == 0
    rows = {r["dataset"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert rows["12m_long_baseline_cascade.yaml"]["productsize_status"] == "mitigated"
    assert rows["12m_single_field_tdm.yaml"]["productsize_status"] == "not needed"
    assert main(["plan", "--corpus", str(corpus)] + LIMITS) == 0
    _words(capsys.readouterr().out)


def test_per_dataset_corpus_rows_use_the_same_words():
    program = load_program([REPO / "rules" / "alma" / "cycle4"])
    params = dict(program.resolve_set(s) for s in ("max_cube_size=400GB", "max_product_size=8000GB"))
    row = _interpreted_row(program, load_summary(CASCADE), "x", params)
    assert row["productsize_status"] == "mitigated" and row["productsize_status"] in OUTCOMES


def test_diff_says_mitigated(corpus, tmp_path, capsys):
    new = tmp_path / "new"
    new.mkdir()
    (new / "limits.rules").write_text(
        f'import "{REPO / "rules" / "alma" / "cycle4"}"\n\n'
        "override param max_cube_size = 400 GB\n\noverride param max_product_size = 8000 GB\n")
    assert main(["diff", "--base", str(REPO / "rules" / "alma" / "cycle4"), "--new", str(new),
                 "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "cascade still exceeded [" in out and "-> mitigated [bin channels]" in out
    _words(out)
