"""Corpus mode: evaluate a rule set over many datasets at once and summarise each.

Datasets are summaries (.yaml/.yml/.json) and Measurement Sets found in a directory.
Evaluation is vectorised (`almarules.engine.columnar`): one column per attribute
across every entity of every dataset. A rule set the vectorised compiler does not
support falls back, with a notice, to the per-dataset interpreter.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from almarules.dsl.units import format_number, from_canonical
from almarules.engine.columnar.columns import STRINGS, Unsupported
from almarules.engine.columnar.results import UNKNOWN, live_rows
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vevaluate import CorpusEvaluation, VProgram
from almarules.engine.evaluate.program import Program
from almarules.engine.facts.model import Dataset

SUMMARY_SUFFIXES = (".yaml", ".yml", ".json")

# the corpus table: (column, dataset attribute or special, unit shown)
ROW_COLUMNS = [
    ("images", "#images", None), ("largest_cube", "largest_cube", "GB"), ("product_size", "product_size", "GB"),
    ("cascade", "#cascade", None), ("imaging_time", "imaging_time", "h"),
    ("importdata_score", "importdata_score", None),
]


@dataclass
class LoadedCorpus:
    datasets: list[Dataset]
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def find_datasets(directory: Path) -> list[Path]:
    """Summaries and Measurement Sets directly in `directory` (rule tests excluded), sorted."""
    from almarules.engine.ms.facts import is_ms

    found: list[Path] = []
    for p in sorted(directory.iterdir()):
        if p.is_dir() and is_ms(p):
            found.append(p)
        elif p.is_file() and p.suffix in SUMMARY_SUFFIXES and not p.name.endswith(".test.yaml"):
            found.append(p)
    return found


def load_corpus(paths: Sequence[Path], progress: Optional[Callable[[int, int], None]] = None) -> LoadedCorpus:
    """Load every dataset; one that cannot be read is skipped and reported, not fatal."""
    from almarules.engine.evaluate.api import load_dataset
    from almarules.engine.evaluate.program import UsageError
    from almarules.engine.ms.facts import MSError
    from almarules.engine.facts.summary import FactsError

    out = LoadedCorpus([], [])
    for i, p in enumerate(paths):
        try:
            out.datasets.append(load_dataset([p]))
            out.names.append(str(p))
        except (FactsError, MSError, UsageError, OSError) as exc:
            out.skipped.append((str(p), str(exc).splitlines()[0]))
        if progress is not None:
            progress(i + 1, len(paths))
    return out


@dataclass
class CorpusResult:
    """One summary row per dataset, and the evaluation it came from."""

    names: list[str]
    rows: list[dict[str, Any]]
    mode: str  # "vectorised" or "per-dataset (…)"
    evaluation: Any = None


def evaluate_corpus(program: Program, loaded: LoadedCorpus, params: Optional[dict[str, float]] = None) -> CorpusResult:
    """Evaluate `program` over the corpus, vectorised when the rule set allows it."""
    try:
        vp = VProgram(program)
        ev = vp.run(Corpus(loaded.datasets, program.schema, loaded.names), params)
        return CorpusResult(loaded.names, summary_rows(ev, loaded.names), "vectorised", ev)
    except Unsupported as exc:
        rows = [_interpreted_row(program, d, n, params) for d, n in zip(loaded.datasets, loaded.names)]
        return CorpusResult(loaded.names, rows, f"per dataset (the vectorised compiler does not support {exc})")


def _column_values(ev: CorpusEvaluation, attr: str, unit: Optional[str]) -> Optional[list[Any]]:
    if attr not in ev.schema.kinds["dataset"]:
        return None
    c = ev.column("dataset", attr)
    n = ev.corpus.n
    v = np.broadcast_to(np.asarray(c.v), (n,))
    unk = c.unk if c.unk is not None else np.zeros(n, dtype=bool)
    out: list[Any] = []
    for i in range(n):
        if unk[i]:
            out.append(None)
        elif c.t == "num":
            out.append(float(from_canonical(float(v[i]), unit)) if unit else float(v[i]))
        elif c.t == "str":
            out.append(STRINGS.texts[int(v[i])])
        elif c.t == "bool":
            out.append(bool(v[i]))
        else:
            out.append(None)
    return out


def summary_rows(ev: CorpusEvaluation, names: Sequence[str]) -> list[dict[str, Any]]:
    """The corpus table: one dict per dataset (numbers in the units of ROW_COLUMNS)."""
    n = ev.corpus.n
    rows: list[dict[str, Any]] = [{"dataset": names[i]} for i in range(n)]
    for key, source, unit in ROW_COLUMNS:
        if source == "#images":
            if "image" not in ev.vp.collections:
                continue
            counts = [len(live_rows(ev, "image", i)) for i in range(n)]
            for r, c in zip(rows, counts):
                r[key] = c
        elif source == "#cascade":
            for c in ev.cascades:
                for i, r in enumerate(rows):
                    r[f"{c.name}_steps"] = list(c.steps[i])
                    r[f"{c.name}_status"] = str(c.status[i])
        else:
            values = _column_values(ev, source, unit)
            if values is not None:
                for r, v in zip(rows, values):
                    r[key] = v
    return rows


def _interpreted_row(program: Program, d: Dataset, name: str, params: Optional[dict[str, float]]) -> dict[str, Any]:
    from almarules.engine.evaluate.values import Unknown

    ev = program.run(d, params or {}, source=name)
    row: dict[str, Any] = {"dataset": name}
    for key, source, unit in ROW_COLUMNS:
        if source == "#images":
            if "image" in program.rs.collections:
                ents = ev.entities("image")
                row[key] = 0 if isinstance(ents, Unknown) else len(ents)
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


def rows_json(result: CorpusResult, skipped: list[tuple[str, str]]) -> str:
    return json.dumps({"mode": result.mode, "datasets": result.rows,
                       "skipped": [{"path": p, "why": w} for p, w in skipped]}, indent=2) + "\n"


def rows_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (";".join(v) if isinstance(v, list) else ("" if v is None else v)) for k, v in r.items()})
    return buf.getvalue()


__all__ = ["find_datasets", "load_corpus", "evaluate_corpus", "summary_rows", "rows_table", "rows_json",
           "rows_csv", "CorpusResult", "LoadedCorpus"]
