"""Out of core: `plan` and `diff` over a corpus larger than memory, a partition of whole datasets (a
few blocks of one part, `engine.corpus.store`) at a time on Dask workers (a LocalCluster, or a cluster
with ``--scheduler``); each partition's per-dataset results are written as Parquet, so the memory of a
worker is bounded by the partition size (``--partition``), not by the corpus.

    RESULTS/part-00000-0000.parquet   one row per dataset of a partition (plan: `result_table`;
                                      diff: the datasets that change)
    RESULTS/results.json              what was evaluated, by what, how fast, with how much memory

A partition already written from the same corpus part, rules and ``--set`` values is kept (a killed
run resumes). Each task reports its worker's peak RSS; the runner prints throughput and memory.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from almarules.engine.columnar.columns import STRINGS
from almarules.engine.columnar.tables import Corpus
from almarules.engine.corpus.access import StoredTables
from almarules.engine.corpus.store import CorpusStore, part_name
from almarules.dsl.loader import load_ruleset
from almarules.engine.evaluate.api import load_program
from almarules.engine.evaluate.program import Program
from almarules.engine.io import write_atomic, write_bytes_atomic
from almarules.engine.io.parallel import run_all
from almarules.engine.plan.corpus import evaluate_corpus
from almarules.engine.plan.diff import DiffReport, diff, merge_reports

DIGEST_KEY = b"almarules.results"
PARTITION = 2000  # datasets evaluated at once by a worker (~150 MB for plan, ~400 MB for diff, cycle4 rules)
SHOWN = 50  # datasets that change kept in a part's diff report (all of them are in its Parquet table)


@dataclass
class PartTask:
    """One part of a corpus to evaluate with some rules (plan: `rules`; diff: `base` and `rules`)."""

    index: int  # the part
    blocks: tuple[int, int]  # its blocks of datasets (first, end)
    corpus: str
    results: str
    rules: tuple[str, ...]
    sets: tuple[str, ...] = ()
    base: tuple[str, ...] = ()
    examples: int = 5
    key: str = ""
    rules_digest: str = ""  # `rules_digest` of the run


class PartStats(BaseModel):
    part: int
    blocks: tuple[int, int]
    datasets: int
    seconds: float
    peak_rss_mb: float  # of the worker process, so far
    mode: str = "vectorised"
    kept: bool = False  # written by an earlier run


class RunRecord(BaseModel):
    """results.json: the run as a whole."""

    what: str  # "plan" or "diff"
    corpus: str
    rules: list[str]
    base: list[str] = []
    sets: list[str] = []
    datasets: int
    seconds: float
    where: str
    parts: list[PartStats]


@functools.lru_cache(maxsize=4)
def _program(rules: tuple[str, ...], digest: str) -> Program:
    """A worker loads each rule set once per run (`digest`: the run's `rules_digest`, so an edited
    rule file is loaded again; a Program is not sent between processes)."""
    return load_program(list(rules))


def rules_digest(rules: Sequence[str], base: Sequence[str], sets: Sequence[str], examples: int) -> str:
    """What a run evaluates with: each rule set's digest (`RuleSet.digest`: every file it loads,
    imports included, read now), the ``--set`` values (worked out once per run)."""
    digests = [load_ruleset(list(map(str, paths))).digest() for paths in (rules, base) if paths]
    return hashlib.sha1(json.dumps([digests, list(sets), examples]).encode()).hexdigest()


def _digest(task: PartTask, store: CorpusStore) -> str:
    """A partition's results are those of an earlier run with the same rules and the same corpus part."""
    return hashlib.sha1(f"{task.rules_digest}\0{task.blocks}\0{store.parts[task.index].inputs}".encode()).hexdigest()


def _done(path: Path, digest: str) -> Optional[dict]:
    try:
        meta = pq.read_schema(path).metadata or {}
        info = json.loads(meta[DIGEST_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return info if info.get("digest") == digest else None


def _write(path: Path, table: pa.Table, info: dict) -> None:
    table = table.replace_schema_metadata({DIGEST_KEY: json.dumps(info).encode()})
    write_bytes_atomic(path, lambda fh: pq.write_table(table, fh, compression="zstd"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evaluate_part(task: PartTask) -> tuple[PartStats, Optional[DiffReport]]:
    """Evaluate one part (on a worker) and write its results; a diff also returns its report."""
    t0 = time.perf_counter()
    store = CorpusStore(task.corpus)
    path = Path(task.results) / f"{task.key}.parquet"
    digest = _digest(task, store)
    done = _done(path, digest)
    if done is not None:
        report = DiffReport.model_validate(done["report"]) if task.base else None
        return PartStats(part=task.index, blocks=task.blocks, datasets=done["datasets"], seconds=0.0,
                         peak_rss_mb=_peak_mb(), mode=done["mode"], kept=True), report
    mark = STRINGS.mark()
    try:
        facts = StoredTables(store, [task.index], task.blocks)
        new = _program(task.rules, task.rules_digest)
        if task.base:
            report = diff(_program(task.base, task.rules_digest), new, Corpus(facts, new.schema), examples=task.examples)
            table = changes_table(report)
            brief = report.model_copy(update={"by_dataset": report.by_dataset[:SHOWN]})  # the rest: in the table
            info = {"digest": digest, "datasets": facts.n, "mode": "vectorised",
                    "report": json.loads(brief.model_dump_json())}
            _write(path, table, info)
            return PartStats(part=task.index, blocks=task.blocks, datasets=facts.n,
                             seconds=time.perf_counter() - t0, peak_rss_mb=_peak_mb()), brief
        result = evaluate_corpus(new, facts, dict(new.resolve_set(s) for s in task.sets))
        _write(path, result.table, {"digest": digest, "datasets": facts.n, "mode": result.mode})
        return PartStats(part=task.index, blocks=task.blocks, datasets=facts.n, seconds=time.perf_counter() - t0,
                         peak_rss_mb=_peak_mb(), mode=result.mode), None
    finally:
        STRINGS.reset(mark)
        gc.collect()  # a partition's evaluation is cyclic garbage: freed now, not at some later pass


def changes_table(report: DiffReport) -> pa.Table:
    """A diff's per-dataset changes as a table (one row per dataset that changes)."""
    rows = report.by_dataset
    return pa.table({
        "dataset": pa.array([c.dataset for c in rows], pa.string()),
        "values": pa.array([c.values for c in rows], pa.int64()),
        "attributes": pa.array([c.attributes for c in rows], pa.list_(pa.string())),
        "entities_added": pa.array([c.entities_added for c in rows], pa.list_(pa.string())),
        "entities_removed": pa.array([c.entities_removed for c in rows], pa.list_(pa.string())),
        "cascade": pa.array([c.cascade for c in rows], pa.string())})


def partitions(store: CorpusStore, size: int) -> list[tuple[int, tuple[int, int]]]:
    """(part, (first block, end block)) covering the corpus, about `size` datasets each."""
    out = []
    for i, p in enumerate(store.parts):
        step = max(1, round(size / p.block))
        n = store.blocks(i)
        out += [(i, (b, min(b + step, n))) for b in range(0, n, step)]
    return out


def diff_in_partitions(base: Program, new: Program, store: CorpusStore, partition: int = PARTITION,
                       examples: int = 5) -> DiffReport:
    """`diff` over a corpus in this process, a partition at a time (memory bounded by the partition):
    the same report as one evaluation of the whole corpus."""
    reports = []
    for i, blocks in partitions(store, partition):
        mark = STRINGS.mark()
        try:
            reports.append(diff(base, new, Corpus(StoredTables(store, [i], blocks), new.schema), examples=examples))
        finally:
            STRINGS.reset(mark)
            gc.collect()  # a partition's evaluation is cyclic garbage: freed now, not at some later pass
    return merge_reports(reports, store.n, examples)


@dataclass
class OutOfCoreRun:
    record: RunRecord
    report: Optional[DiffReport] = None


def run_out_of_core(corpus: str | Path, results: str | Path, rules: Sequence[str], sets: Sequence[str] = (),
                    base: Sequence[str] = (), examples: int = 5, partition: int = PARTITION,
                    workers: Optional[int] = None,
                    scheduler: Optional[str] = None,
                    progress: Optional[Callable[[int, int, int], None]] = None) -> OutOfCoreRun:
    """Evaluate every part of `corpus` (plan; diff when `base` is given), writing `results`."""
    t0 = time.perf_counter()
    store = CorpusStore(corpus)
    out = Path(results)
    out.mkdir(parents=True, exist_ok=True)
    digest = rules_digest(list(map(str, rules)), list(map(str, base)), list(sets), examples)
    tasks = [PartTask(i, b, str(Path(corpus).resolve()), str(out.resolve()), tuple(map(str, rules)), tuple(sets),
                      tuple(map(str, base)), examples, key=f"{part_name(i)}-{b[0]:04d}", rules_digest=digest)
             for i, b in partitions(store, partition)]
    _remove_results_beyond(out, tasks)
    results, where = run_all(evaluate_part, tasks, workers, scheduler, count=lambda r: r[0].datasets,
                             progress=progress)
    stats = [st for st, _ in results]
    datasets = sum(st.datasets for st in stats)
    record = RunRecord(what="diff" if base else "plan", corpus=str(corpus), rules=list(rules), base=list(base),
                       sets=list(sets), datasets=datasets, seconds=round(time.perf_counter() - t0, 3), where=where,
                       parts=stats)
    write_atomic(out / "results.json", record.model_dump_json(indent=1) + "\n")
    merged = merge_reports([report for _, report in results], datasets, examples) if base else None
    return OutOfCoreRun(record, merged)


def _remove_results_beyond(out: Path, tasks: Sequence[PartTask]) -> None:
    """Result files of an earlier run over other partitions (another corpus or --partition):
    read_results would count their rows too."""
    current = {f"{t.key}.parquet" for t in tasks}
    for f in out.glob("part-*-*.parquet"):
        if f.name not in current:
            f.unlink()


def read_results(results: str | Path, keep: Optional[Callable[[str], bool]] = None) -> pa.Table:
    """The per-dataset results of a run (all parts, in corpus order): every column, or those
    whose names `keep` accepts."""
    tables = []
    for f in sorted(Path(results).glob("part-*-*.parquet")):
        columns = None if keep is None else [c for c in pq.read_schema(f).names if keep(c)]
        tables.append(pq.read_table(f, columns=columns).replace_schema_metadata(None))
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


__all__ = ["run_out_of_core", "diff_in_partitions", "partitions", "evaluate_part", "read_results", "changes_table", "PartTask", "PartStats", "RunRecord",
           "OutOfCoreRun"]
