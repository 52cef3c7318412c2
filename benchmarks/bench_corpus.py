"""Benchmark: corpus evaluation, vectorised against the per-dataset interpreter, and the diff of
two rule versions (printed, not asserted).

    python benchmarks/bench_corpus.py [--n 10000] [--dir DIR] [--rules PATH] [--sample 500]

Makes (or reuses) N synthetic JSON summaries (`almarules synth-corpus`), loads them, builds the
columns, then evaluates every derived value of every entity with the vectorised evaluator
(median of 3 runs on the same columns) and with the interpreter on `--sample` datasets (the
per-dataset mean, extrapolated to N and said so), and times `almarules diff` cycle4 -> current.
Issue 4's targets: the full cycle4 set on 10,000 summaries in <= 1 s, >= 20x the interpreter.
"""

from __future__ import annotations

import argparse
import gc
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--dir", help="an existing corpus directory (default: generate one in a temp dir)")
    ap.add_argument("--rules", default=str(REPO / "rules" / "alma" / "cycle4"))
    ap.add_argument("--new", default=str(REPO / "rules" / "alma" / "current"), help="the diff's new version")
    ap.add_argument("--sample", type=int, default=500, help="datasets the interpreter evaluates")
    args = ap.parse_args()

    from almarules.engine.evaluate.api import load_program
    from almarules.engine.columnar.tables import Corpus
    from almarules.engine.columnar.vevaluate import VProgram
    from almarules.engine.plan.corpus import find_datasets, load_corpus
    from almarules.engine.plan.diff import diff
    from almarules.engine.facts.synth import write_corpus

    import numpy

    print(f"bench_corpus: {platform.machine()}, Python {platform.python_version()}, numpy {numpy.__version__}; "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    tmp = None
    if args.dir:
        directory = Path(args.dir)
    else:
        tmp = tempfile.TemporaryDirectory()
        directory = Path(tmp.name)
        _, t = timed(lambda: write_corpus(args.n, directory, seed=0, fmt="json"))
        print(f"synth-corpus {args.n} (JSON): {t:.1f} s")
    paths = find_datasets(directory)[:args.n]
    loaded, t_load = timed(lambda: load_corpus(paths))
    n = len(loaded.datasets)
    print(f"load {n} summaries (JSON -> validated facts): {t_load:.1f} s ({t_load / n * 1e3:.2f} ms each)")

    program = load_program([args.rules])
    vp = VProgram(program)
    corpus = Corpus(loaded.datasets, program.schema, loaded.names)

    def vectorised():
        ev = vp.run(corpus)
        ev.compute_all()
        return ev

    ev, t_first = timed(vectorised)
    rows = {k: t.n for k, t in ev.tables.items()}
    del ev
    runs = []
    for _ in range(3):  # one evaluation alive at a time (as in use): steady-state memory
        gc.collect()
        runs.append(timed(vectorised)[1])
    t_vec = statistics.median(runs)
    values = sum(n_rows * len([a for a, i in program.schema.kinds[k].items() if i.origin in ("derived", "score")])
                 for k, n_rows in rows.items() if k in program.schema.kinds)
    print(f"entities: {rows}")
    print(f"vectorised, first run (builds the fact columns too): {t_first:.2f} s")
    print(f"vectorised evaluation, median of 3: {t_vec:.2f} s for {n} datasets, ~{values:,} values "
          f"({values / t_vec / 1e6:.2f} M values/s); runs {', '.join(f'{r:.2f}' for r in runs)} s")

    sample = loaded.datasets[:args.sample]
    t = time.perf_counter()
    for d in sample:
        program.run(d).compute_all()
    per = (time.perf_counter() - t) / len(sample)
    print(f"interpreter: {per * 1e3:.1f} ms per dataset (mean over {len(sample)}), "
          f"{per * n:.0f} s for {n} extrapolated")
    print(f"speed-up vectorised / interpreter: {per * n / t_vec:.0f}x (target >= 20x); "
          f"target <= 1 s: {'met' if t_vec <= 1 else 'not met'}")

    new = load_program([args.new])
    report, t_diff = timed(lambda: diff(program, new, corpus))
    print(f"diff {Path(args.rules).name} -> {Path(args.new).name} over {n}: {t_diff:.2f} s "
          f"({report.changed_datasets} datasets, {report.changed_values:,} values change)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
