"""Property: a corpus built to Parquet (summaries flattened, converted and checked column by column,
written in several parts, read back column by column) decides exactly as the same summaries loaded
one by one as JSON and validated by the facts schema: every derived value of every entity, the entity
sets, every cascade's status and steps, the recipes' stages and the warnings (`assert_same`)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from almarules.engine.columnar.tables import Corpus
from almarules.engine.corpus.access import StoredTables
from almarules.engine.corpus.build import build_corpus
from almarules.engine.corpus.store import CorpusStore
from almarules.engine.facts.summary import load_summary
from almarules.engine.facts.synth import dataset_rng, synth_dataset
from test_columnar import RULE_SETS, assert_same, program


def _as_text(doc: dict, rng) -> dict:
    """Some quantities written as a summary's author might: exact numbers with a unit, counts as floats."""
    for spw in doc.get("spws") or []:
        if rng.random() < 0.5 and spw.get("start_frequency") is not None:
            spw["start_frequency"] = f"{spw['start_frequency']!r} Hz"
        if rng.random() < 0.5 and spw.get("nchan") is not None:
            spw["nchan"] = float(spw["nchan"])
    for eb in doc.get("ebs") or []:
        if rng.random() < 0.5 and eb.get("integration_time") is not None:
            eb["integration_time"] = f"{eb['integration_time']!r} s"
    return doc


@given(seed=st.integers(0, 2 ** 31 - 1), n=st.integers(1, 5), textual=st.booleans())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_parquet_corpus_decides_as_the_summaries_loaded_as_json(tmp_path_factory, seed, n, textual):
    root = tmp_path_factory.mktemp("parquet")
    folder = root / "summaries"
    folder.mkdir()
    for i in range(n):
        rng = dataset_rng(seed, i)
        doc = synth_dataset(rng)
        (folder / f"d{i}.json").write_text(json.dumps(_as_text(doc, rng) if textual else doc))
    report = build_corpus([folder], root / "corpus", workers=1, chunk=2)
    assert report.manifest.datasets == n and not report.manifest.skipped
    store = CorpusStore(root / "corpus")
    models = [load_summary(folder / f"d{i}.json") for i in range(n)]
    for rules in RULE_SETS:
        prog = program(rules)
        assert_same(prog, models, corpus=Corpus(StoredTables(store), prog.schema))
