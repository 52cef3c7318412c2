"""Out of core: plan and diff over a corpus a partition of whole datasets at a time (on Dask, or in this
process), results written as Parquet, give the results of one evaluation of the whole corpus; a killed
run resumes; the CLI's corpus commands."""

from __future__ import annotations

import json
import shutil

import pytest

from almarules.engine.cli.app import main
from almarules.engine.columnar.columns import STRINGS
from almarules.engine.corpus.access import StoredTables
from almarules.engine.corpus.store import CorpusStore
from almarules.engine.corpus.synth import synth_corpus
from almarules.engine.evaluate.api import load_program
from almarules.engine.plan.corpus import evaluate_corpus
from almarules.engine.plan.diff import diff
from almarules.engine.plan.outofcore import diff_in_partitions, partitions, read_results, run_out_of_core
from almarules.engine.columnar.tables import Corpus
from conftest import REPO

RULES = REPO / "rules" / "alma"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """60 synthetic datasets in 3 parts of 20, blocks of 1000 (so a partition is a part)."""
    out = tmp_path_factory.mktemp("ooc") / "corpus"
    synth_corpus(60, out, seed=5, part=20, workers=1)
    return out


def test_partitions_cover_the_corpus_in_blocks(corpus):
    store = CorpusStore(corpus)
    assert partitions(store, 2000) == [(0, (0, 1)), (1, (0, 1)), (2, (0, 1))]
    assert sum(StoredTables(store, [i], b).n for i, b in partitions(store, 1)) == 60


def test_plan_out_of_core_equals_one_evaluation(corpus, tmp_path, cycle4):
    whole = evaluate_corpus(cycle4, StoredTables(CorpusStore(corpus))).table
    mark = STRINGS.mark()
    run = run_out_of_core(corpus, tmp_path / "r", [str(RULES / "cycle4")], workers=1)
    assert STRINGS.mark() == mark  # a partition's strings are forgotten after it
    assert run.record.datasets == 60 and len(run.record.parts) == 3
    assert all(50 < p.peak_rss_mb < 4000 and not p.kept for p in run.record.parts)  # MB of a Python process with pyarrow
    assert read_results(tmp_path / "r").to_pylist() == whole.to_pylist()
    again = run_out_of_core(corpus, tmp_path / "r", [str(RULES / "cycle4")], workers=1)
    assert all(p.kept for p in again.record.parts)  # a finished partition is kept (a killed run resumes)
    changed = run_out_of_core(corpus, tmp_path / "r", [str(RULES / "cycle4")], ["tlimit=2"], workers=1)
    assert not any(p.kept for p in changed.record.parts)  # other --set values: evaluated again


def test_diff_in_partitions_and_out_of_core_equal_one_diff(corpus, tmp_path, cycle4):
    current = load_program([RULES / "current"])
    store = CorpusStore(corpus)
    whole = diff(cycle4, current, Corpus(StoredTables(store), current.schema))
    assert diff_in_partitions(cycle4, current, store, partition=1).model_dump() == whole.model_dump()
    run = run_out_of_core(corpus, tmp_path / "d", [str(RULES / "current")], base=[str(RULES / "cycle4")],
                          workers=2)
    assert "LocalCluster" in run.record.where
    assert run.report.model_dump(exclude={"by_dataset"}) == whole.model_dump(exclude={"by_dataset"})
    rows = read_results(tmp_path / "d").to_pylist()
    assert [r["dataset"] for r in rows] == [c.dataset for c in whole.by_dataset]
    assert [r["values"] for r in rows] == [c.values for c in whole.by_dataset]


def test_the_corpus_commands(corpus, tmp_path, capsys):
    assert main(["corpus", "info", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "60 datasets in 3 parts" in out and "pointing" in out and "dish_diameter: m" in out
    assert main(["plan", "--corpus", str(corpus), "--json", str(tmp_path / "rows.json"), "-o",
                 str(tmp_path / "rows.txt")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())["datasets"]
    assert len(rows) == 60 and rows[0]["dataset"] == "synth_000000"
    assert main(["plan", "--corpus", str(corpus), "--in-memory", "10", "--results", str(tmp_path / "ooc"),
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "60 datasets" in captured.out and "productsize cascade" in captured.out
    assert "peak memory per worker" in captured.err
    assert read_results(tmp_path / "ooc").to_pylist() == rows
    for bad in (["corpus", "info", str(tmp_path / "nowhere")], ["plan", "--corpus", str(tmp_path / "nowhere")],
                ["corpus", "build", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")],
                ["plan", "--corpus", str(corpus), "--partition", "0"]):
        assert main(bad) == 2, bad


def test_synth_corpus_parquet_holds_what_the_json_summaries_hold(tmp_path):
    from almarules.engine.corpus.build import build_corpus
    from almarules.engine.corpus.summaries import summaries
    from almarules.engine.facts.synth import write_corpus

    assert main(["synth-corpus", "7", "--format", "parquet", "-o", str(tmp_path / "p"), "--part", "3",
                 "--workers", "1", "--seed", "9"]) == 0
    write_corpus(7, tmp_path / "j", seed=9, fmt="json")
    build_corpus([tmp_path / "j"], tmp_path / "c", workers=1)
    a = summaries(StoredTables(CorpusStore(tmp_path / "p")))
    b = summaries(StoredTables(CorpusStore(tmp_path / "c")))
    assert a == b and len(a) == 7


def test_results_of_an_earlier_run_over_other_partitions_are_not_read(corpus, tmp_path):
    out = tmp_path / "r"
    run_out_of_core(corpus, out, [str(RULES / "cycle4")], workers=1)
    small = tmp_path / "small"
    synth_corpus(20, small, seed=5, part=20, workers=1)
    seen = []
    run_out_of_core(small, out, [str(RULES / "cycle4")], workers=1, progress=lambda *a: seen.append(a))
    assert read_results(out).num_rows == 20  # the parts beyond the small corpus's one are gone
    assert seen == [(20, 1, 1)]  # progress(datasets, parts done, parts)


def test_a_resumed_run_sees_an_edit_to_an_imported_rule_file(corpus, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES / "cycle4", rules / "cycle4")
    shutil.copytree(RULES / "current", rules / "current")  # imports ../cycle4
    first = run_out_of_core(corpus, tmp_path / "r", [str(rules / "current")], workers=1)
    assert not any(p.kept for p in first.record.parts)
    imported = rules / "cycle4" / "imaging.rules"
    imported.write_text(imported.read_text() + "\n# edited\n")
    again = run_out_of_core(corpus, tmp_path / "r", [str(rules / "current")], workers=1)
    assert not any(p.kept for p in again.record.parts)


def test_plan_out_of_core_refuses_row_outputs_and_bad_sets_before_starting(corpus, tmp_path, capsys):
    assert main(["plan", "--corpus", str(corpus), "--results", str(tmp_path / "r"), "--csv",
                 str(tmp_path / "rows.csv")]) == 2
    assert "--json, --csv and --format" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["plan", "--corpus", str(corpus), "--results", str(tmp_path / "r"), "--set", "nosuch=3"]) == 2
    assert "nosuch" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_partitions_inside_parts_give_one_evaluation(tmp_path, monkeypatch, cycle4):
    """Blocks of 5 datasets (parts of 20 and 14): partitions of one block start inside a part; some
    hold no measurement at all."""
    from almarules.engine.corpus import store as store_module

    monkeypatch.setattr(store_module, "BLOCK", 5)
    synth_corpus(34, tmp_path / "c", seed=5, part=20, workers=1)
    store = CorpusStore(tmp_path / "c")
    assert partitions(store, 5) == [(0, (b, b + 1)) for b in range(4)] + [(1, (b, b + 1)) for b in range(3)]
    current = load_program([RULES / "current"])
    whole = diff(cycle4, current, Corpus(StoredTables(store), current.schema))
    assert diff_in_partitions(cycle4, current, store, partition=5).model_dump() == whole.model_dump()
    run_out_of_core(tmp_path / "c", tmp_path / "r", [str(RULES / "cycle4")], partition=5, workers=1)
    assert read_results(tmp_path / "r").to_pylist() == evaluate_corpus(cycle4, StoredTables(store)).table.to_pylist()
