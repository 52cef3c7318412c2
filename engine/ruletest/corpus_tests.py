"""Rule tests over a corpus: a test with ``corpus:`` instead of ``given:`` evaluates the rules on every
dataset of a corpus (a corpus folder, or a folder of summaries and MSs built into a temporary one),
straight from its tables with the vectorised evaluator, and checks properties of every value:

    - name: every image sized; only the long-baseline set-up stays over the cube limit
      corpus: ../../../examples
      set: {max_cube_size: 30 GB}                # optional
      expect:
        datasets: 5                              # how many datasets were evaluated
        dataset.largest_cube: <= 47.1 GB         # every known value (< <= > >= == !=, any unit)
        image.size: known                        # no value unknown, on any image
        cascade productsize.status: [not needed, still exceeded]   # every dataset's status is one of these

(rules/alma/cycle4/archive.test.yaml is this test, without the ``set``.)
A comparison holds for every known value (``known`` checks that none is unknown); a failure says how
many datasets and values break it, with the first few (dataset, entity, value).
"""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import numpy as np

from almarules.dsl.types import NumT
from almarules.dsl.units import UnitError, format_quantity, parse_quantity
from almarules.engine.columnar.columns import Unsupported
from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation
from almarules.engine.columnar.results import UNKNOWN, live_mask, plain_value
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vevaluate import VProgram
from almarules.engine.corpus.access import StoredTables
from almarules.engine.corpus.build import BuildError, opened_corpus
from almarules.engine.corpus.store import CorpusError
from almarules.engine.evaluate.program import Program, UsageError

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
        "!=": operator.ne}
_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+)$")
SHOWN = 3  # example failures per expectation


def run_corpus_test(program: Program, corpus: Path, sets: dict, expect: dict) -> list[str]:
    """The problems of one corpus test (empty: it passes)."""
    try:
        params = dict(program.resolve_set(f"{k}={v}") for k, v in sets.items())
        with opened_corpus(corpus) as store:
            names = store.sources()
            ev = VProgram(program).run(Corpus(StoredTables(store), program.schema, names), params)
            return [p for key, raw in expect.items() for p in _check(ev, names, str(key), raw)]
    except (BuildError, CorpusError, UsageError) as exc:
        return [str(exc)]
    except Unsupported as exc:
        return [f"a corpus test evaluates with the vectorised evaluator, which does not support {exc}"]


def _check(ev: CorpusEvaluation, names: list[str], key: str, raw: Any) -> list[str]:
    if key == "datasets":
        return [] if ev.corpus.n == raw else [f"datasets: expected {raw}, got {ev.corpus.n}"]
    if key.startswith("cascade "):
        name, _, what = key[len("cascade "):].partition(".")
        c = next((c for c in ev.cascades if c.name == name), None)
        if c is None or what != "status":
            return [f"{key}: no cascade {name!r} (a corpus test checks 'cascade NAME.status')"]
        allowed = [str(x) for x in (raw if isinstance(raw, list) else [raw])]
        bad = [d for d, s in enumerate(c.status.tolist()) if s not in allowed]
        return _report(key, f"one of {allowed}", bad, [(names[d], "", c.status[d]) for d in bad[:SHOWN]])
    kind, _, attr = key.partition(".")
    info = ev.schema.kinds.get(kind, {}).get(attr)
    if info is None:
        return [f"{key}: no attribute {attr!r} of {kind!r}"]
    rows = np.flatnonzero(live_mask(ev, kind))
    col = ev.column(kind, attr)
    n = len(rows)
    unk = col.unk[rows] if col.unk is not None else np.zeros(n, dtype=bool)
    text = str(raw).strip()
    if text == "known":
        bad = rows[unk]
        return _report(key, "known", _datasets(ev, kind, bad), _examples(ev, names, kind, bad, col, info))
    m = _COMPARISON.match(text)
    if m is None:
        return [f"{key}: cannot read the expectation {raw!r} (a comparison such as '<= 40 GB', or 'known')"]
    if col.t != "num":
        return [f"{key}: a comparison needs numbers; {key} is not a number"]
    try:
        limit, dim = parse_quantity(m.group(2))
    except UnitError as exc:
        return [f"{key}: cannot read the expectation {raw!r}: {exc}"]
    own = info.type.dim if isinstance(info.type, NumT) else None
    if own is not None and dim != own and not (dim.is_dimensionless and own.is_dimensionless):
        return [f"{key}: {m.group(2)!r} is not in the unit of {key} ({own.display_unit() or 'a plain number'})"]
    values = np.broadcast_to(np.asarray(col.v, dtype=np.float64), (len(ev.table_of(kind).ds),))[rows]
    bad = rows[~unk & ~_OPS[m.group(1)](values, limit)]
    return _report(key, text, _datasets(ev, kind, bad), _examples(ev, names, kind, bad, col, info))


def _datasets(ev: CorpusEvaluation, kind: str, rows: np.ndarray) -> list[int]:
    return sorted(set(ev.table_of(kind).ds[rows].tolist()))


def _examples(ev: CorpusEvaluation, names: list[str], kind: str, rows: np.ndarray, col, info) -> list[tuple]:
    t = ev.table_of(kind)
    out = []
    for r in rows[:SHOWN].tolist():
        value = plain_value(ev, col, r)
        if value is UNKNOWN:
            value = "unknown"
        elif col.t == "num" and isinstance(info.type, NumT):
            value = format_quantity(value, info.type.dim)
        out.append((names[int(t.ds[r])], "" if kind == "dataset" else f"{kind}[{t.keys_of([r])[0]}]", value))
    return out


def _report(key: str, want: str, datasets: list[int], examples: list[tuple]) -> list[str]:
    if not datasets:
        return []
    shown = "; ".join(f"{Path(d).name}{': ' + e if e else ''} {v}" for d, e, v in examples)
    return [f"{key}: expected {want} everywhere; {len(datasets)} dataset{'s' if len(datasets) != 1 else ''} "
            f"break{'s' if len(datasets) == 1 else ''} it (e.g. {shown})"]


__all__ = ["run_corpus_test"]
