"""The columnar corpus: summaries and MSs into Parquet tables; the checks of the facts schema applied
column by column (the same datasets refused, with the same messages, as one by one); a round trip
back to the summaries; resuming a killed build."""

from __future__ import annotations

import copy
import json
import math

import pyarrow.parquet as pq
import pytest

from almarules.engine.corpus.access import MemoryTables, StoredTables
from almarules.engine.corpus.batch import batch_of_summaries
from almarules.engine.corpus.build import build_corpus
from almarules.engine.corpus import store as store_module
from almarules.engine.corpus.layout import layout
from almarules.engine.corpus.store import CorpusError, CorpusStore
from almarules.engine.corpus.synth import synth_corpus
from almarules.engine.corpus.summaries import summaries
from almarules.engine.facts.summary import FactsError, dump_summary, parse_summary
from almarules.engine.facts.synth import synthesize

SYNTH = list(synthesize(40, seed=11))


def _facts_error(doc, source):
    try:
        parse_summary(doc, source)
    except FactsError as exc:
        return exc.problems
    return None


def test_a_batch_round_trips_to_the_same_summaries():
    batch = batch_of_summaries(SYNTH, [f"s{i}" for i in range(len(SYNTH))])
    assert batch.n == len(SYNTH) and not batch.skipped
    back = summaries(MemoryTables(batch))
    for doc, got in zip(SYNTH, back, strict=True):
        assert dump_summary(parse_summary(got)) == dump_summary(parse_summary(doc))


def test_quantities_with_units_and_whole_floats_convert_as_one_by_one():
    doc = copy.deepcopy(SYNTH[0])
    doc["representative_frequency"] = "230.5 GHz"
    doc["spws"][0]["nchan"] = float(doc["spws"][0]["nchan"])
    doc["spws"][0]["channel_width"] = "-15.625 MHz"
    doc["ebs"][0]["integration_time"] = "6048 ms"
    batch = batch_of_summaries([doc], ["d"])
    assert not batch.skipped
    assert dump_summary(parse_summary(summaries(MemoryTables(batch))[0])) == dump_summary(parse_summary(doc))
    assert batch.tables["dataset"].column("representative_frequency")[0].as_py() == 230.5e9


MUTATIONS = [
    ("negative channels", lambda d: d["spws"][0].__setitem__("nchan", 0)),
    ("a boolean count", lambda d: d["spws"][0].__setitem__("nchan", True)),
    ("an unknown key", lambda d: d["spws"][1].__setitem__("nchans", 3)),
    ("a computed key", lambda d: d["fields"][0].__setitem__("is_mosaic", True)),
    ("not an intent", lambda d: d["fields"][0].__setitem__("intents", ["TARGET", "TARGT"])),
    ("not an array kind", lambda d: d.__setitem__("array", "9m")),
    ("a string for a number", lambda d: d.__setitem__("representative_frequency", "high")),
    ("a length for a frequency", lambda d: d.__setitem__("representative_frequency", "3 m")),
    ("an infinite time", lambda d: d["ebs"][0].__setitem__("start", math.inf)),
    ("NaN flagged fraction", lambda d: d["weights"][0].__setitem__("flagged_fraction", math.nan)),
    ("an impossible baseline", lambda d: d["ebs"][0]["baselines"].__setitem__("max", 2e7)),
    ("a required field missing", lambda d: d["scans"][0].pop("number")),
    ("a required field null", lambda d: d["antennas"][0].__setitem__("name", None)),
    ("a mapping expected", lambda d: d["spws"].__setitem__(0, 3)),
    ("a list expected", lambda d: d.__setitem__("fields", {"a": 1})),
    ("too many antennas", lambda d: d.__setitem__("antennas", [{"name": f"A{i}"} for i in range(1001)])),
    ("a pointing too far", lambda d: d["fields"][0]["pointings"].append({"ra_offset": 4e4})),
    ("a huge integer", lambda d: d["spws"][0].__setitem__("rows", 2 ** 60)),
    ("a 4-vector position", lambda d: d["antennas"][0].__setitem__("position", [1.0, 2.0, 3.0, 4.0])),
    ("a bad frequency in a list", lambda d: d["spws"][0].__setitem__("rest_frequencies", [1e11, -5.0])),
    ("a zero channel width", lambda d: d["spws"][0].__setitem__("channel_width", 0)),
    ("not a mapping at all", lambda d: None),
]


@pytest.mark.parametrize("name,mutate", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_the_vectorised_checks_refuse_what_the_schema_refuses_with_its_messages(name, mutate):
    docs = copy.deepcopy(SYNTH[:4])
    if name == "not a mapping at all":
        docs[2] = [1, 2]
    else:
        mutate(docs[2])
    names = [f"d{i}.json" for i in range(len(docs))]
    batch = batch_of_summaries(docs, names)
    expected = [(n, _facts_error(d, n)) for d, n in zip(docs, names, strict=True) if _facts_error(d, n)]
    assert expected, "the mutation makes the summary invalid"
    assert batch.skipped == expected
    assert batch.sources == [n for n in names if n != "d2.json"]
    assert batch.tables["dataset"].column("_dataset").to_pylist() == [0, 1, 2]


def test_valid_edge_values_are_kept():
    """NaN where a measurement failed, inf where no bound forbids it, booleans where a float is plain."""
    doc = copy.deepcopy(SYNTH[1])
    doc["measurements"] = [{"field": "T", "intent": "TARGET", "spws": [1, 2], "specmode": "mfs",
                            "rms": math.nan, "dirty_dr": math.inf}]
    doc["spws"][0]["bandpass_vis_snr"] = True
    batch = batch_of_summaries([doc], ["d"])
    assert not batch.skipped
    m = batch.tables["measurement"].to_pylist()[0]
    assert math.isnan(m["rms"]) and m["dirty_dr"] == math.inf and m["key"] == "T.TARGET.1_2.mfs"
    assert batch.tables["spw"].column("bandpass_vis_snr")[0].as_py() == 1.0


def _write(tmp_path, docs):
    folder = tmp_path / "summaries"
    folder.mkdir()
    for i, d in enumerate(docs):
        (folder / f"s{i:03d}.json").write_text(json.dumps(d))
    return folder


def test_build_stores_units_sources_and_resumes(tmp_path, monkeypatch):
    folder = _write(tmp_path, SYNTH[:10])
    (folder / "broken.json").write_text("{\"array\": \"9m\"}")
    out = tmp_path / "corpus"
    report = build_corpus([folder], out, workers=1, chunk=4)
    m = report.manifest
    assert m.datasets == 10 and len(m.parts) == 3 and report.resumed == 0
    assert [s.source for s in m.skipped] == [str(folder / "broken.json")]
    assert "array" in m.skipped[0].problems[0]
    schema = pq.read_schema(out / "spw" / "part-00000.parquet")
    assert schema.field("start_frequency").metadata[b"unit"] == b"Hz"
    store = CorpusStore(out)
    assert store.sources() == sorted(str(p) for p in folder.glob("s*.json"))
    back = summaries(StoredTables(store))
    assert [dump_summary(parse_summary(b)) for b in back] == [dump_summary(parse_summary(d)) for d in SYNTH[:10]]
    # a build killed before its manifest (and one part) was written resumes from the finished parts
    (out / "corpus.json").unlink()
    (out / "dataset" / "part-00001.parquet").unlink()
    with pytest.raises(CorpusError, match="not a corpus"):
        CorpusStore(out)
    again = build_corpus([folder], out, workers=1, chunk=4)
    assert again.resumed == 2 and again.manifest.datasets == 10
    # an input that changed is rebuilt
    (folder / "s000.json").write_text(json.dumps(SYNTH[20]))
    third = build_corpus([folder], out, workers=1, chunk=4)
    assert third.resumed == 2
    rebuilt = summaries(StoredTables(CorpusStore(out)), [0])[0]
    assert dump_summary(parse_summary(rebuilt)) == dump_summary(parse_summary(SYNTH[20]))
    # parts written under another table layout (a facts schema change) are not kept
    monkeypatch.setattr(store_module, "layout_digest", lambda: "another layout")
    assert build_corpus([folder], out, workers=1, chunk=4).resumed == 0
    again = synth_corpus(20, tmp_path / "synth", part=10, workers=1)
    monkeypatch.undo()
    assert again.resumed == 0 and synth_corpus(20, tmp_path / "synth", part=10, workers=1).resumed == 0
    assert synth_corpus(20, tmp_path / "synth", part=10, workers=1).resumed == 2


def test_parts_build_in_parallel_on_dask(tmp_path):
    folder = _write(tmp_path, SYNTH[:12])
    report = build_corpus([folder], tmp_path / "c", workers=2, chunk=4)
    assert "LocalCluster" in report.where and report.manifest.datasets == 12
    serial = build_corpus([folder], tmp_path / "s", workers=1, chunk=4)
    parallel, one = CorpusStore(tmp_path / "c"), CorpusStore(tmp_path / "s")
    for kind in layout():
        assert parallel.read(kind).to_pylist() == one.read(kind).to_pylist(), kind
    assert serial.where.startswith("serial")


def test_a_measurement_set_is_read_into_the_corpus(tmp_path, shared_ms):
    from almarules.engine.ms.facts import read_ms

    ms = shared_ms("alma_sim.ms")
    folder = _write(tmp_path, SYNTH[:2])
    report = build_corpus([folder, ms], tmp_path / "c", workers=1)
    assert report.manifest.datasets == 3 and [p.datasets for p in report.manifest.parts] == [2, 1]
    got = summaries(StoredTables(CorpusStore(tmp_path / "c")), [2])[0]
    assert dump_summary(parse_summary(got)) == dump_summary(read_ms([ms]))


def test_a_damaged_corpus_is_a_clear_error(tmp_path):
    folder = _write(tmp_path, SYNTH[:3])
    out = tmp_path / "c"
    build_corpus([folder], out, workers=1)
    (out / "spw" / "part-00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(CorpusError, match="spw/part-00000.parquet: cannot read"):
        StoredTables(CorpusStore(out)).column("spw", "nchan")
    (out / "corpus.json").write_text("{")
    with pytest.raises(CorpusError, match="not a corpus manifest"):
        CorpusStore(out)


def test_a_build_runs_on_a_dask_scheduler_given_by_address(tmp_path):
    from distributed import LocalCluster

    folder = _write(tmp_path, SYNTH[:6])
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        report = build_corpus([folder], tmp_path / "c", scheduler=cluster.scheduler_address, chunk=3)
    assert report.where.startswith(f"Dask scheduler {cluster.scheduler_address}") and report.manifest.datasets == 6


def test_a_file_named_that_is_no_summary_is_reported_not_read_as_yaml(tmp_path):
    folder = _write(tmp_path, SYNTH[:2])
    notes = tmp_path / "notes.txt"
    notes.write_text("array: 12m\n")  # valid YAML, but not a summary file
    report = build_corpus([folder, notes], tmp_path / "c", workers=1)
    assert report.manifest.datasets == 2
    assert [(s.source, "unsupported summary format '.txt'" in s.problems[0]) for s in report.manifest.skipped] == \
        [(str(notes), True)]


def test_stored_computed_facts_equal_the_models_properties(tmp_path):
    """Each computed column (spw.bandwidth, field.is_mosaic, measurement.key ...) holds exactly what
    the validated models compute, for every entity of every dataset."""
    build_corpus([_write(tmp_path, SYNTH[:12])], tmp_path / "c", workers=1)
    store = CorpusStore(tmp_path / "c")
    models = [parse_summary(d) for d in SYNTH[:12]]
    checked = 0
    for kind, spec in layout().items():
        if not spec.computed_names or spec.parent not in (None, "dataset"):
            continue
        table = store.read(kind)
        owned = [[m] for m in models] if kind == "dataset" else [getattr(m, spec.attr) or [] for m in models]
        ds = table.column("_dataset").to_pylist()
        position = [sum(1 for e in ds[:r] if e == d) for r, d in enumerate(ds)]
        for name in sorted(spec.computed_names):
            for d, pos, stored in zip(ds, position, table.column(name).to_pylist(), strict=True):
                want = getattr(owned[d][pos] if spec.many or kind == "dataset" else owned[d], name)
                assert stored == want or (stored != stored and want != want), (kind, name, d, pos)
                checked += 1
    assert checked > 500
