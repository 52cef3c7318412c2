"""The vectorised corpus evaluator gives the per-dataset interpreter's decisions.

Property: on random corpora (synthetic summaries drawn from hypothesis seeds, with the odd
fact missing), for the shipped rule sets, every derived value of every entity, the entity
sets, every cascade's status and applied steps, the recipe stages and the warnings are the
same. Real numbers agree to 1e-12 relative (numpy's vectorised log/exp/erf may differ from
libm's in the last bits); everything else exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from almarules.engine.evaluate.api import load_facts, load_program
from almarules.engine.columnar.results import dataset_values, interpreter_values, live_rows, same_value
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vevaluate import VProgram
from almarules.engine.facts.model import Dataset
from almarules.engine.facts.summary import parse_summary
from almarules.engine.facts.synth import dataset_rng, synth_dataset
from conftest import EXAMPLES, REPO

RULE_SETS = ["cycle4", "cycle5", "current"]
_PROGRAMS: dict = {}


def program(name: str):
    if name not in _PROGRAMS:
        _PROGRAMS[name] = load_program([REPO / "rules" / "alma" / name])
    return _PROGRAMS[name]


def assert_same(prog, datasets: list[Dataset], params: dict | None = None, corpus: Corpus | None = None) -> None:
    """The vectorised evaluation of `corpus` (default: of `datasets`) decides as the interpreter on `datasets`."""
    ev = VProgram(prog).run(corpus or Corpus(datasets, prog.schema), params)
    for i, d in enumerate(datasets):
        one = prog.run(d, params or {})
        vec, ref = dataset_values(ev, i), interpreter_values(one)
        assert vec.keys() == ref.keys(), (i, sorted(set(vec) ^ set(ref))[:10])
        bad = [(k, vec[k], ref[k]) for k in ref if not same_value(vec[k], ref[k])]
        assert not bad, (i, bad[:10])
        for c, rec in zip(ev.cascades, one.cascades, strict=True):
            assert (c.name, c.status[i], c.steps[i]) == (rec.name, rec.status, [s.name for s in rec.steps]), i
            assert c.errors[i] == rec.error, i
        for name, stages in one.stages.items():
            vstages = ev.stages[name]
            assert [s.run for s in stages] == [None if u[i] else bool(r[i]) for _, r, u in vstages], i
        fired = {w.message: w.status for w in one.warnings}
        for decl, f, u in ev.warnings:
            assert fired.get(decl.message) == ("fires" if f[i] else "unknown" if u[i] else None), i


@pytest.mark.parametrize("rules", RULE_SETS)
def test_examples(rules):
    assert_same(program(rules), [load_facts(p) for p in EXAMPLES])


@pytest.mark.parametrize("rules", RULE_SETS)
def test_synthetic_corpus(rules):
    """A fixed corpus of 60: every cascade outcome of the current set appears in such corpora."""
    assert_same(program(rules), [parse_summary(synth_dataset(dataset_rng(7, i))) for i in range(60)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), rules=st.sampled_from(RULE_SETS),
       tight=st.booleans())
def test_random_corpora(seed, n, rules, tight):
    """Random corpora; with `tight`, lower size limits so that most datasets run the cascade."""
    prog = program(rules)
    datasets = [parse_summary(synth_dataset(np.random.default_rng([seed, i]))) for i in range(n)]
    params = None
    if tight:
        params = {name: prog.params[name] / 50 for name in ("max_cube_size", "max_product_size", "max_cube_limit")
                  if name in prog.params}
    assert_same(prog, datasets, params)


def test_degenerate_datasets():
    """Missing collections and facts: the same unknowns in both evaluators."""
    datasets = [
        Dataset(),
        Dataset.model_validate({"array": "12m"}),
        Dataset.model_validate({"array": "7m", "spws": [], "fields": [], "ebs": []}),
        Dataset.model_validate({"array": "12m", "fields": [{"id": 0, "name": "T", "intents": ["TARGET"]}],
                                "spws": [{"id": 1, "nchan": 128, "intents": ["TARGET"]}]}),
    ]
    for rules in RULE_SETS:
        assert_same(program(rules), datasets)


KLEENE_RULES = '''
"""Unknown-heavy expressions: three-valued logic, aggregates over unknown elements, errors."""

table steps(x) over [0, 100]:
    [0, 10]    -> 1
    (10, 100]  -> x / 10

derive dataset.rep_high = dataset.representative_spw > 20
derive dataset.seven = dataset.array == "7m"
derive dataset.and_ = dataset.rep_high and dataset.seven
derive dataset.or_ = dataset.rep_high or dataset.seven
derive dataset.not_ = not dataset.rep_high
derive dataset.pick = if dataset.rep_high then 1 else 2
derive dataset.any_fdm = any(s.nchan > 256 for s in spws)
derive dataset.all_fdm = all(s.nchan > 256 for s in spws)
derive dataset.widest = max(s.nchan for s in spws where s.nchan > 100 else 0)
derive dataset.first_wide = the(s.id for s in spws where s.nchan > 1000)
derive dataset.mean_chan = mean(s.nchan for s in spws)
derive dataset.ratio = count(spws) / count(s for s in spws where s.nchan > 4000)
derive dataset.step = steps(dataset.mean_chan / 10)
derive dataset.known_rep = known(dataset.representative_spw)
derive spw.is_rep = spw.id == dataset.representative_spw
derive spw.wide = spw.nchan in {1920, 3840} or spw.is_rep
derive spw.joined = count(t for t in spws where t.id == spw.nchan / 128)
derive spw.joined_text = count(f for f in fields where f.name == dataset.project)
'''


def test_three_valued_logic_and_unknown_aggregates(tmp_path):
    rules = tmp_path / "kleene.rules"
    rules.write_text(KLEENE_RULES)
    prog = load_program([rules])
    spws = [{"id": 1, "nchan": 128}, {"id": 2, "nchan": 3840}, {"id": 3}]
    datasets = [Dataset.model_validate(d) for d in [
        {"array": "12m", "spws": spws},  # representative unknown, 12m: and false, or unknown
        {"array": "7m", "spws": spws},  # and unknown, or true
        {"array": "7m", "representative_spw": 25, "spws": spws[:2], "project": "T",
         "fields": [{"id": 0, "name": "T"}, {"id": 1, "name": "U"}]},
        {"spws": [{"id": 1, "nchan": 192}, {"id": 2, "nchan": 256}, {"id": 3, "nchan": 128}]},  # 1.5 joins nothing
        {"representative_spw": 5, "spws": [{"id": 5, "nchan": 64}]},  # array unknown: and false
        {"spws": [{"id": 7}]},
        {"spws": []},
        {},
    ]]
    assert_same(prog, datasets)
    ev = VProgram(prog).run(Corpus(datasets, prog.schema))
    assert dataset_values(ev, 0)[("dataset", "dataset", "and_")] is False
    assert dataset_values(ev, 1)[("dataset", "dataset", "or_")] is True
    assert dataset_values(ev, 4)[("dataset", "dataset", "and_")] is False


# ---------------------------------------------------------------- keep, for many datasets at once
KEEP_BASE = '''
param ppb = 5

derive spw.nbin = 1
derive spw.size = spw.nchan / spw.nbin / ppb
derive dataset.total = sum(s.size for s in spws)

cascade shrink:
    until dataset.total <= 1
    step "fewer":
        keep spw {clauses}
'''

KEEP_CLAUSES = [
    "ranked by spw.id limit 2.7",
    "ranked by -spw.id limit count(spws) / 2",
    "ranked by spw.id limit count(s for s in spws where s.online_hanning)",  # unknown for some datasets
    "ranked by spw.id limit inf - inf",  # NaN: every dataset stops, unknown
    "ranked by spw.nchan < 1000, spw.nchan limit 3",
    "ranked by spw.frame limit 3",  # strings by text, unknown last
    "ranked by -spw.nchan while dataset.total <= 90",
    "ranked by -spw.nchan while dataset.total <= 100 or spw.nchan == 64",
    "where spw.nchan > 50 ranked by spw.id while dataset.total <= 150",
    "group by [spw] ranked by spw.id",
    'group by (if known(spw.frame) then spw.frame else "none") ranked by spw.nchan while dataset.total <= 200',
    pytest.param("group by spw.frame ranked by spw.nchan while dataset.total <= 200", marks=pytest.mark.xfail(
        strict=True, reason="known difference: the vectorised keep puts every entity whose group key is "
                            "unknown in one group; the interpreter groups by key text, and an unknown's "
                            "text names what it waits for (one group per entity here)")),
    "group by spw.nchan > 150 ranked by -spw.id while dataset.total <= 120",
    "group by spw.nchan / 2 ranked by -spw.id limit 2",
]


def keep_datasets(n: int = 12) -> list[Dataset]:
    """Datasets of 0-6 spws with repeated channel counts, some frames and flags missing."""
    rng = np.random.default_rng(12)
    out = []
    for d in range(n):
        spws = []
        for i in range(int(rng.integers(0, 7))):
            spw: dict = {"id": i}
            if rng.random() > 0.1:
                spw["nchan"] = int(rng.choice([20, 64, 100, 128, 200, 300, 450, 2000, 3000]))
            if rng.random() > 0.2:
                spw["frame"] = str(rng.choice(["TOPO", "BARY", "LSRK"]))
            if d % 3:
                spw["online_hanning"] = bool(rng.random() > 0.5)
            spws.append(spw)
        out.append(Dataset.model_validate({"spws": spws}))
    return out


@pytest.mark.parametrize("clauses", KEEP_CLAUSES)
def test_keep_over_many_datasets_as_the_interpreter(tmp_path, clauses):
    """Limits, ranking keys, groups and `while`, evaluated for every dataset at once, keep the
    entities the per-dataset interpreter keeps, with the same cascade status."""
    rules = tmp_path / "keep.rules"
    rules.write_text(KEEP_BASE.format(clauses=clauses))
    prog = load_program([rules])
    datasets = keep_datasets()
    assert_same(prog, datasets)
    ev = VProgram(prog).run(Corpus(datasets, prog.schema))
    kept = [len(live_rows(ev, "spw", d)) for d in range(len(datasets))]
    assert kept != [len(d.spws) for d in datasets] or "inf - inf" in clauses  # the keep changed something
