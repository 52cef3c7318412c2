"""`almarules diff` and `synth-corpus`: what a rule edit changes across a corpus, and why."""

from __future__ import annotations

import json

from almarules.engine.evaluate.api import load_facts, load_program
from almarules.engine.facts.model import Dataset
from almarules.engine.facts.synth import synthesize
from almarules.engine.cli.app import main
from almarules.engine.columnar.tables import Corpus
from almarules.engine.plan.diff import diff, report_text
from conftest import EXAMPLES, REPO

RULES = REPO / "rules" / "alma"


def corpus_of(program):
    return Corpus([load_facts(p) for p in EXAMPLES], program.schema, [str(p) for p in EXAMPLES])


def test_a_rule_set_against_itself_changes_nothing(cycle4):
    report = diff(cycle4, cycle4, corpus_of(cycle4))
    assert (report.changed_datasets, report.changed_values, report.edits) == (0, 0, [])


def test_cycle5_override_changes_only_the_long_baseline_project(cycle4, cycle5):
    report = diff(cycle4, cycle5, corpus_of(cycle5))
    assert [e.what for e in report.edits] == ["cascade productsize step 'representative spw only'"]
    assert [d.dataset.rsplit("/", 1)[1] for d in report.by_dataset] == ["12m_long_baseline_cascade.yaml"]
    changed = report.by_dataset[0]
    assert changed.cascade.endswith("representative spw only]")
    assert len(changed.entities_removed) == 6  # the other spws' mfs images and cubes of the kept source
    product = next(a for a in report.attributes if a.attribute == "dataset.product_size")
    assert product.causes == ["cascade productsize step 'representative spw only'"]


def test_cycle4_to_current_attributes_each_change_to_its_edit(cycle4):
    current = load_program([RULES / "current"])
    report = diff(cycle4, current, corpus_of(current))
    edits = {e.what: e for e in report.edits}
    assert edits["param tlimit"].change == "4 -> 2"
    assert edits["param max_cube_size"].change == "30 GB -> 40 GB"
    threshold = next(a for a in report.attributes if a.attribute == "image.threshold")
    assert "param tlimit" in threshold.causes
    # a calibrator image whose cascade did not run: the threshold halves with tlimit 4 -> 2
    phase = next(x for x in threshold.examples if "PHASE" in x.entity and "fdm_lines" in x.dataset)
    old, new = float(phase.old.split()[0]), float(phase.new.split()[0])
    assert abs(new / old - 0.5) < 1e-3
    text = report_text(report)
    assert text.index("datasets change") < text.index("rule edits") < text.index("what changes")


def test_diff_and_synth_corpus_commands(tmp_path):
    corpus = tmp_path / "corpus"
    assert main(["synth-corpus", "12", "-o", str(corpus), "--format", "json", "--seed", "4"]) == 0
    files = sorted(corpus.glob("*.json"))
    assert len(files) == 12
    again = tmp_path / "again"
    assert main(["synth-corpus", "12", "-o", str(again), "--format", "json", "--seed", "4"]) == 0
    assert [f.read_text() for f in files] == [f.read_text() for f in sorted(again.glob("*.json"))]
    out = tmp_path / "diff.json"
    assert main(["diff", "--base", str(RULES / "cycle4"), "--new", str(RULES / "current"),
                 "--corpus", str(corpus), "--json", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["datasets"] == 12 and report["changed_datasets"] >= 1
    assert main(["diff", "--base", str(RULES / "cycle4"), "--new", str(RULES / "nowhere"),
                 "--corpus", str(corpus)]) == 2
    assert main(["synth-corpus", "0", "-o", str(tmp_path / "none")]) == 2


def test_a_construct_the_vectorised_evaluator_lacks_falls_back_or_says_so(tmp_path, capsys):
    """Iterating over a set of intents is not vectorised: corpus mode uses the interpreter, diff says why."""
    from almarules.engine.columnar.tables import models_tables
    from almarules.engine.plan.corpus import evaluate_corpus

    rules = tmp_path / "set"
    rules.mkdir()
    (rules / "x.rules").write_text("derive dataset.imaging_time = count(i for f in fields, i in f.intents) * 1 h\n")
    program = load_program([rules])
    facts = models_tables([load_facts(p) for p in EXAMPLES], [str(p) for p in EXAMPLES])
    result = evaluate_corpus(program, facts)
    assert result.mode.startswith("per dataset") and len(result.rows) == len(EXAMPLES)
    assert all(isinstance(r["imaging_time"], float) and r["imaging_time"] > 0 for r in result.rows)
    assert main(["diff", "--base", str(rules), "--new", str(rules), "--corpus", str(REPO / "examples")]) == 2
    assert "does not support" in capsys.readouterr().err


def test_a_dataset_without_measurements_diffs_alone_as_within_a_corpus(cycle4):
    """Entity-valued columns of a kind no dataset has (measurements) are unknown, not a row to look up."""
    current = load_program([RULES / "current"])
    bare = Dataset.model_validate(next(d for d in synthesize(40, seed=5) if not d.get("measurements")))
    examples = [load_facts(p) for p in EXAMPLES]
    alone = diff(cycle4, current, Corpus([bare], current.schema, ["bare"]))
    among = diff(cycle4, current, Corpus(examples + [bare], current.schema, [str(p) for p in EXAMPLES] + ["bare"]))

    def of_bare(report):
        return next(d for d in report.by_dataset if d.dataset == "bare").model_dump()

    assert alone.changed_datasets == 1 and of_bare(alone) == of_bare(among)
