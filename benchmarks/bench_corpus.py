"""Benchmark: archive-scale corpora (printed, not asserted): summaries -> columnar corpus, load and
evaluate from it, the interpreter, diff, and the out-of-core run on a million datasets.

    python benchmarks/bench_corpus.py [--n 10000] [--dir DIR] [--million CORPUS] [--million-n N]
                                      [--skip-million | --only-million] [--sample 500]

For N synthetic JSON summaries (`--dir`: reuse them; else written to a temporary folder):

- baseline: loading them one by one as validated facts (the way before columnar corpora);
- build: ``almarules corpus build`` (LocalCluster, 2 workers), with throughput;
- plan: load + evaluate straight from the corpus as ``plan --corpus`` does (the fact columns the
  rules read, memory-mapped), median of 3, each in a fresh process that reports its own peak RSS;
  the whole command's wall time too; issue 17's targets: <= 2 s and <= 500 MB;
- every derived value of every entity (`compute_all`) from the corpus;
- the interpreter: ms per dataset on `--sample` datasets (issue 17's target, <= 5 ms where 519dc7a
  took 38.9 ms, is judged by the ratio to 519dc7a on the same machine: bench_interpreter.py);
- diff cycle4 -> current from the corpus (time, peak RSS).

Then, out of core: ``plan --corpus`` over `--million-n` (default 1,000,000) synthetic datasets
(``synth-corpus --format parquet``, or `--million` to reuse a corpus) with 1 and 2 workers:
throughput, and the peak RSS of each worker (bounded by the partition, not the corpus).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "rules" / "alma"
ALMARULES = [str(Path(sys.executable).parent / "almarules")]  # the installed command, beside this Python


def step(name: str, *args: str) -> dict:
    """Run one measured step in a fresh process; its JSON report (seconds, peak_mb, ...)."""
    out = subprocess.run([sys.executable, __file__, "--step", name, *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_PEAK_OF = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def command(*args: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the command or any of its worker processes, stderr) of an
    almarules command, run under a fresh parent (so the peak is this command's alone)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _PEAK_OF, *ALMARULES, *args], check=True, capture_output=True,
                         text=True)
    err, _, peak = out.stderr.rstrip("\n").rpartition("\n")
    return time.perf_counter() - t, int(peak) / 1024, err


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(name: str, args: list[str]) -> dict:
    from almarules.engine.evaluate.api import load_program

    if name == "load-json":
        from almarules.engine.corpus.build import find_inputs
        from almarules.engine.facts.summary import load_summary

        paths = find_inputs([args[0]])
        t = time.perf_counter()
        for p in paths:
            load_summary(p)
        return {"seconds": time.perf_counter() - t, "datasets": len(paths), "peak_mb": _peak()}
    program = load_program([RULES / "cycle4"])
    from almarules.engine.corpus.access import StoredTables
    from almarules.engine.corpus.store import CorpusStore

    store = CorpusStore(args[0])
    t = time.perf_counter()
    if name == "plan":
        from almarules.engine.plan.corpus import evaluate_corpus

        result = evaluate_corpus(program, StoredTables(store))
        return {"seconds": time.perf_counter() - t, "datasets": result.table.num_rows, "peak_mb": _peak(),
                "mode": result.mode}
    if name == "compute-all":
        from almarules.engine.columnar.tables import Corpus
        from almarules.engine.columnar.vevaluate import VProgram

        ev = VProgram(program).run(Corpus(StoredTables(store), program.schema))
        ev.compute_all()
        values = sum(t.n * len([a for a, i in program.schema.kinds[k].items() if i.origin in ("derived", "score")])
                     for k, t in ev.tables.items() if k in program.schema.kinds)
        return {"seconds": time.perf_counter() - t, "values": values, "peak_mb": _peak()}
    if name == "interpreter":
        from almarules.engine.corpus.summaries import summaries
        from almarules.engine.facts.summary import parse_summary

        models = [parse_summary(d) for d in summaries(StoredTables(store), range(int(args[1])))]
        t = time.perf_counter()
        for d in models:
            program.run(d).compute_all()
        return {"ms": (time.perf_counter() - t) / len(models) * 1e3, "datasets": len(models)}
    if name == "diff":
        from almarules.engine.plan.outofcore import diff_in_partitions

        report = diff_in_partitions(program, load_program([RULES / "current"]), store)
        return {"seconds": time.perf_counter() - t, "changed": report.changed_datasets,
                "values": report.changed_values, "peak_mb": _peak()}
    raise SystemExit(f"unknown step {name}")


def ten_thousand(args, directory: Path, tmp: Path) -> None:
    n = args.n
    base = step("load-json", str(directory))
    print(f"baseline: load {base['datasets']} JSON summaries one by one as validated facts: {base['seconds']:.1f} s "
          f"({base['seconds'] / base['datasets'] * 1e3:.2f} ms each), peak RSS {base['peak_mb']:.0f} MB")
    corpus = tmp / "corpus"
    secs, peak, _ = command("corpus", "build", str(directory), "-o", str(corpus), "--workers", "2")
    print(f"build (summaries -> corpus, 2 workers): {secs:.1f} s ({n / secs:,.0f} datasets/s, peak RSS {peak:.0f} MB); "
          f"{sum(f.stat().st_size for f in corpus.rglob('*.parquet')) / 1e6:.1f} MB of Parquet "
          f"(the JSON: {sum(f.stat().st_size for f in directory.glob('*.json')) / 1e6:.0f} MB)")
    runs = [step("plan", str(corpus)) for _ in range(3)]
    med = statistics.median(r["seconds"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    print(f"plan --corpus: load + evaluate {n} datasets from the corpus: median {med:.2f} s (runs "
          f"{', '.join(format(r['seconds'], '.2f') for r in runs)}), peak RSS {peak:.0f} MB; {base['seconds'] / med:.0f}x "
          f"faster than loading the JSON alone; targets <= 2 s: {'met' if med <= 2 else 'NOT met'}, <= 500 MB: "
          f"{'met' if peak <= 500 else 'NOT met'}")
    wall, cpeak, _ = command("plan", "--corpus", str(corpus), "-o", str(tmp / "plan.txt"))
    print(f"  the whole command (start-up, rules, load, evaluate, write {n} rows): {wall:.2f} s, peak RSS {cpeak:.0f} MB")
    every = step("compute-all", str(corpus))
    print(f"every derived value of every entity ({every['values']:,} values): {every['seconds']:.2f} s "
          f"({every['values'] / every['seconds'] / 1e6:.1f} M values/s), peak RSS {every['peak_mb']:.0f} MB")
    interp = step("interpreter", str(corpus), str(args.sample))
    print(f"interpreter: {interp['ms']:.2f} ms per dataset (mean over {interp['datasets']}; issue 17's <= 5 ms is "
          f"for its machine, where 519dc7a took 38.9 ms: bench_interpreter.py --against 519dc7a judges it on this "
          f"one); vectorised is "
          f"{interp['ms'] * n / 1e3 / every['seconds']:.0f}x faster on every value")
    d = step("diff", str(corpus))
    print(f"diff cycle4 -> current over {n}: {d['seconds']:.2f} s ({d['changed']} datasets, {d['values']:,} values "
          f"change), peak RSS {d['peak_mb']:.0f} MB (in partitions of 2,000 datasets)")


def million(args, tmp: Path) -> None:
    corpus = Path(args.million) if args.million else tmp / "million"
    if not args.million:
        secs, peak, _ = command("synth-corpus", str(args.million_n), "--format", "parquet", "-o", str(corpus),
                                "--workers", "2")
        print(f"synth-corpus {args.million_n:,} --format parquet (2 workers): {secs:.0f} s "
              f"({args.million_n / secs:,.0f} datasets/s), peak RSS of any process {peak:.0f} MB")
    rates = {}
    for workers in (1, 2):
        results = tmp / f"results-{workers}"
        secs, peak, err = command("plan", "--corpus", str(corpus), "--results", str(results), "--workers",
                                  str(workers), "-o", str(tmp / f"summary-{workers}.txt"))
        record = json.loads((results / "results.json").read_text())
        worker_peak = max(p["peak_rss_mb"] for p in record["parts"])
        rates[workers] = record["datasets"] / record["seconds"]
        busy = sum(p["seconds"] for p in record["parts"])
        print(f"out of core, {workers} worker{'s' if workers > 1 else ''}: {record['datasets']:,} datasets in "
              f"{record['seconds']:.0f} s ({rates[workers]:,.0f} datasets/s; {len(record['parts'])} partitions, "
              f"{busy / len(record['parts']):.2f} s each, workers busy {busy / workers / record['seconds']:.0%} of "
              f"the time), peak RSS per worker {worker_peak:.0f} MB (command wall {secs:.0f} s)")
    print(f"scaling 1 -> 2 workers: {rates[2] / rates[1]:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--dir", help="a folder of JSON summaries to use (default: N synthetic ones)")
    ap.add_argument("--sample", type=int, default=500, help="datasets the interpreter evaluates")
    ap.add_argument("--million", metavar="CORPUS", help="an existing large corpus for the out-of-core run")
    ap.add_argument("--million-n", type=int, default=1_000_000, help="datasets of the generated large corpus")
    ap.add_argument("--skip-million", action="store_true")
    ap.add_argument("--only-million", action="store_true", help="only the out-of-core run")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.step:
        print(json.dumps(run_step(args.step, rest)))
        return 0
    import numpy

    print(f"bench_corpus: {platform.machine()}, Python {platform.python_version()}, numpy {numpy.__version__}; "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only_million:
            million(args, tmp)
            return 0
        directory = Path(args.dir) if args.dir else tmp / "summaries"
        if not args.dir:
            from almarules.engine.facts.synth import write_corpus

            t = time.perf_counter()
            write_corpus(args.n, directory, seed=0, fmt="json")
            print(f"synth-corpus {args.n} (JSON): {time.perf_counter() - t:.1f} s")
        ten_thousand(args, directory, tmp)
        if not args.skip_million:
            million(args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
