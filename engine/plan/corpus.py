"""Corpus mode: evaluate a rule set over many datasets at once; one result row per dataset.

The datasets are a corpus (engine.corpus: Parquet tables, read column by column straight into
the evaluator's columns), or summaries and Measurement Sets in a folder, built into a temporary
corpus first. Evaluation is vectorised (`almarules.engine.columnar`); a rule set the vectorised
compiler does not support falls back, with a notice, to the per-dataset interpreter. The results
are an Arrow table (written as Parquet by the out-of-core runner, engine.plan.outofcore).
"""

from __future__ import annotations

import functools

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa

from almarules.dsl.checker import plural
from almarules.dsl.units import format_number, from_canonical
from almarules.engine.columnar.columns import STRINGS, Unsupported
from almarules.engine.columnar.results import UNKNOWN
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vevaluate import CorpusEvaluation, VProgram
from almarules.engine.corpus.access import FactTables
from almarules.engine.corpus.summaries import summaries
from almarules.engine.corpus.store import Skipped
from almarules.engine.evaluate.program import Program
from almarules.engine.facts.summary import parse_summary

# the result table: (column, dataset attribute or special, unit shown)
ROW_COLUMNS = [
    ("images", "#images", None), ("largest_cube", "largest_cube", "GB"), ("product_size", "product_size", "GB"),
    ("cascade", "#cascade", None), ("imaging_time", "imaging_time", "h"),
    ("importdata_score", "importdata_score", None),
]
SUMMARY_KEYS = {key for key, _, _ in ROW_COLUMNS}
TABLE_LIMIT = 1000  # above this many datasets the terminal gets a summary, not every row


@dataclass
class CorpusResult:
    """One result row per dataset (an Arrow table, ``dataset`` first), and how it was computed."""

    table: pa.Table
    mode: str  # "vectorised" or "per dataset (…)"
    evaluation: Any = None

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist()


def evaluate_corpus(program: Program, facts: FactTables, params: Optional[dict[str, float]] = None
                    ) -> CorpusResult:
    """Evaluate `program` over the corpus, vectorised when the rule set allows it."""
    names = facts.names
    try:
        ev = VProgram(program).run(Corpus(facts, program.schema, names), params)
        return CorpusResult(result_table(ev, names), "vectorised", ev)
    except Unsupported as exc:
        docs = summaries(facts)
        rows = [_interpreted_row(program, parse_summary(doc, name), name, params)
                for doc, name in zip(docs, names, strict=True)]
        return CorpusResult(pa.Table.from_pylist(rows),
                            f"per dataset (the vectorised compiler does not support {exc})")


def _attribute(ev: CorpusEvaluation, attr: str, unit: Optional[str]) -> Optional[pa.Array]:
    """A dataset attribute over the corpus (numbers in `unit`; null where unknown)."""
    if attr not in ev.schema.kinds["dataset"]:
        return None
    c = ev.column("dataset", attr)
    n = ev.corpus.n
    v = np.broadcast_to(np.asarray(c.v), (n,))
    mask = None if c.unk is None else np.asarray(c.unk, dtype=bool)
    if c.t == "num":
        return pa.array(from_canonical(v, unit) if unit else v.astype(np.float64), mask=mask)
    if c.t == "str":
        return pa.array(STRINGS.array()[np.where(v < 0, 0, v)], type=pa.string(), mask=mask)
    if c.t == "bool":
        return pa.array(v.astype(bool), mask=mask)
    return None


def result_table(ev: CorpusEvaluation, names: Sequence[str]) -> pa.Table:
    """The results: one row per dataset (numbers in the units of ROW_COLUMNS; null: unknown)."""
    n = ev.corpus.n
    cols: dict[str, pa.Array] = {"dataset": pa.array(list(names), type=pa.string())}
    for key, source, unit in ROW_COLUMNS:
        if source == "#images":
            if "image" in ev.vp.collections:
                rel = ev.column("dataset", plural("image"))
                offsets = rel.base[0]
                owner = np.broadcast_to(np.asarray(rel.v, dtype=np.int64), (n,))
                cols[key] = pa.array(offsets[owner + 1] - offsets[owner], type=pa.int64(), mask=rel.unk)
        elif source == "#cascade":
            for c in ev.cascades:
                cols[f"{c.name}_steps"] = pa.array(c.steps, type=pa.list_(pa.string()))
                cols[f"{c.name}_status"] = pa.array([str(s) for s in c.status.tolist()], type=pa.string())
        else:
            arr = _attribute(ev, source, unit)
            if arr is not None:
                cols[key] = arr
    return pa.table(cols)


def _interpreted_row(program: Program, d: Any, name: str, params: Optional[dict[str, float]]) -> dict[str, Any]:
    from almarules.engine.evaluate.values import Unknown

    ev = program.run(d, params or {}, source=name)
    row: dict[str, Any] = {"dataset": name}
    for key, source, unit in ROW_COLUMNS:
        if source == "#images":
            if "image" in program.rs.collections:
                ents = ev.entities("image")
                row[key] = None if isinstance(ents, Unknown) else len(ents)
        elif source == "#cascade":
            for c in ev.cascades:
                row[f"{c.name}_steps"] = [s.name for s in c.steps]
                row[f"{c.name}_status"] = c.status
        elif source in program.schema.kinds["dataset"]:
            v = ev.attr(ev.dataset, source)
            row[key] = None if isinstance(v, Unknown) else (
                float(from_canonical(v, unit)) if unit and isinstance(v, float) else v)
    return row


# ---------------------------------------------------------------- output
def in_summary(column: str) -> bool:
    """`summary_text` reads this column of a result table."""
    return column in SUMMARY_KEYS or column.endswith("_status")


def summary_text(table: pa.Table) -> str:
    """What a large corpus's results say, in a few lines: totals, quantiles, cascade outcomes."""
    n = table.num_rows
    lines = [f"{n:,} datasets"]
    for key, _, unit in ROW_COLUMNS:
        if key not in table.column_names:
            continue
        arr = table.column(key)
        unknown = arr.null_count
        x = arr.drop_null().to_numpy(zero_copy_only=False).astype(np.float64) if n - unknown else np.zeros(0)
        tail = f"; unknown for {unknown:,}" if unknown else ""
        if not len(x):
            lines.append(f"  {_header(key)}: unknown for every dataset")
            continue
        q50, q90, q99 = np.quantile(x, [0.5, 0.9, 0.99])
        total = f"total {format_number(float(x.sum()), 6)}, " if key in ("images", "imaging_time", "product_size") \
            else ""
        lines.append(f"  {_header(key)}: {total}median {format_number(q50, 4)}, 90 % {format_number(q90, 4)}, "
                     f"99 % {format_number(q99, 4)}, max {format_number(float(x.max()), 4)}{tail}")
    for name in table.column_names:
        if name.endswith("_status"):
            values, counts = np.unique(np.asarray(table.column(name).to_pylist(), dtype=object).astype(str),
                                       return_counts=True)
            order = np.argsort(-counts, kind="stable")
            lines.append(f"  {name.removesuffix('_status')} cascade: "
                         + ", ".join(f"{values[i]} {counts[i]:,}" for i in order))
    return "\n".join(lines) + "\n"


def rows_table(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    if not rows:
        return "no datasets\n"
    keys = [k for k in rows[0] if k != "dataset"]
    head = ["dataset"] + [_header(k) for k in keys]
    body = [[Path(r["dataset"]).name] + [_cell(r.get(k)) for k in keys] for r in rows]
    return tabulate(body, head, disable_numparse=True) + "\n"


def _header(key: str) -> str:
    unit = {k: u for k, _, u in ROW_COLUMNS}.get(key)
    return f"{key} ({unit})" if unit else key


def _cell(v: Any) -> str:
    if v is None:
        return UNKNOWN
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format_number(v, 4)
    if isinstance(v, list):
        return ", ".join(v) if v else "-"
    return str(v)


def rows_json(result: CorpusResult, skipped: Sequence[Skipped]) -> str:
    return json.dumps({"mode": result.mode, "datasets": result.rows,
                       "skipped": [{"path": s.source, "why": "; ".join(s.problems)} for s in skipped]},
                      indent=2) + "\n"


def rows_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (";".join(v) if isinstance(v, list) else ("" if v is None else v)) for k, v in r.items()})
    return buf.getvalue()


__all__ = ["evaluate_corpus", "result_table", "summary_text", "rows_table", "rows_json", "rows_csv", "CorpusResult", "ROW_COLUMNS",
           "TABLE_LIMIT"]
