"""The commands of the planner: ``plan`` (one dataset, or ``--corpus``), ``synth-corpus``, ``diff``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from almarules.engine.cli.common import parts_progress
from almarules.engine.cli.corpus import parallel_args, rate_text

FORMATS = ("text", "markdown", "json", "html")
IN_MEMORY = 50_000  # datasets evaluated in one process (~45 KB each with the cycle4 rules)


def add_parsers(sub) -> None:
    p = sub.add_parser("plan", help="dry-run plan of a dataset (or a corpus): stages, images, sizes, time, why")
    p.add_argument("dataset", nargs="*", metavar="DATASET",
                   help="a dataset summary (.yaml/.json), or the Measurement Sets of one dataset")
    p.add_argument("--corpus", metavar="CORPUS",
                   help="plan every dataset of a corpus folder (almarules corpus build), or of the summaries and "
                        "MSs in a folder (vectorised); one row each")
    p.add_argument("--intents", metavar="FILE", help="YAML/JSON: field name -> intents, for MSs without intents")
    p.add_argument("--rules", action="append", metavar="PATH",
                   help="rule set directory or files, and override files (repeatable); default: the shipped cycle4 set")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                   help="override a parameter, e.g. --set max_cube_size=40GB")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="report format (default: text, or from the -o suffix .md/.json/.html)")
    p.add_argument("--explain", action="store_true", help="text/markdown: add the derivation of every number")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (atomically)")
    p.add_argument("--json", metavar="FILE", dest="json_out", help="corpus: also write the rows as JSON")
    p.add_argument("--csv", metavar="FILE", dest="csv_out", help="corpus: also write the rows as CSV")
    _out_of_core_args(p, "rows", "CORPUS.results")

    p = sub.add_parser("synth-corpus", help="write N plausible, varied synthetic datasets: summaries, or a corpus")
    p.add_argument("n", type=int, metavar="N", help="how many datasets")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write them to")
    p.add_argument("--seed", type=int, default=0, help="random seed (dataset i depends only on seed and i)")
    p.add_argument("--format", choices=("yaml", "json", "parquet"), default="yaml",
                   help="summary files (yaml, json), or a columnar corpus written in parallel (parquet)")
    p.add_argument("--part", type=int, default=None, metavar="N",
                   help="parquet: datasets per part (default 10,000; a part is what one worker evaluates at once)")
    parallel_args(p)

    p = sub.add_parser("diff", help="what a rule edit changes across a corpus, and which edit causes it")
    p.add_argument("--base", action="append", required=True, metavar="PATH", help="the base rule set (repeatable)")
    p.add_argument("--new", action="append", required=True, nargs="+", metavar="PATH",
                   help="the new rule set and any override files")
    p.add_argument("--corpus", required=True, metavar="CORPUS",
                   help="a corpus folder, or a folder of summaries and MSs, to evaluate both on")
    p.add_argument("--json", action="store_true", help="the full report as JSON")
    p.add_argument("--examples", type=int, default=5, help="example changes kept per attribute (default 5)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (atomically)")
    _out_of_core_args(p, "changed datasets", "CORPUS.diff")


def _out_of_core_args(p, rows: str, default: str) -> None:
    p.add_argument("--results", metavar="DIR",
                   help=f"corpus: evaluate out of core, a partition of datasets at a time on Dask, writing each "
                        f"partition's {rows} as Parquet to DIR (the default above --in-memory datasets: {default})")
    p.add_argument("--in-memory", type=int, default=IN_MEMORY, metavar="N",
                   help=f"corpus: evaluate in memory up to N datasets (default {IN_MEMORY:,}), out of core above")
    p.add_argument("--partition", type=int, default=None, metavar="N",
                   help="datasets evaluated at once (default 2,000, rounded to whole blocks of 1,000; bounds the memory of a "
                        "worker)")
    parallel_args(p)


def _progress(what: str):
    from almarules.engine.cli.common import progress_printer

    return progress_printer(lambda pct, done, total: f"{what}: {done}/{total} ({pct}%)")


def _format(args) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return {".md": "markdown", ".json": "json", ".html": "html", ".htm": "html"}.get(suffix, "text")


def cmd_plan(args) -> int:
    from almarules.engine.cli.common import UserError, emit, load_rules, read_dataset

    if args.corpus and args.dataset:
        raise UserError("give either DATASET or --corpus DIR, not both")
    if not args.corpus and not args.dataset:
        raise UserError("give a DATASET (summary or MSs) or --corpus DIR")
    program = load_rules(args.rules)
    if args.corpus:
        return _plan_corpus(args, program)
    from almarules.engine.plan.render import html as plan_html
    from almarules.engine.plan.render import markdown as plan_markdown
    from almarules.engine.plan.render import text as plan_text
    from almarules.engine.plan.build import build_plan

    facts = read_dataset(args.dataset, args.intents)
    plan = build_plan(program, facts, ", ".join(args.dataset), args.sets)
    fmt = _format(args)
    if fmt == "json":
        text = plan.to_json()
    elif fmt == "html":
        text = plan_html.render(plan)
    elif fmt == "markdown":
        text = plan_markdown.render(plan, explain=args.explain)
    else:
        text = plan_text.render(plan, explain=args.explain)
    emit(text, args.output)
    return 0


def _plan_corpus(args, program) -> int:
    from almarules.engine.cli.common import emit
    from almarules.engine.cli.corpus import open_corpus
    from almarules.engine.corpus.access import StoredTables
    from almarules.engine.io import write_atomic
    from almarules.engine.plan.corpus import TABLE_LIMIT, evaluate_corpus, rows_csv, rows_json, rows_table, \
        summary_text

    _partition(args)  # checked before any work
    params = dict(program.resolve_set(s) for s in args.sets)
    with open_corpus(args.corpus, args.workers, args.scheduler) as store:
        if args.results or store.n > args.in_memory:
            return _plan_out_of_core(args, store)
        t0 = time.perf_counter()
        result = evaluate_corpus(program, StoredTables(store), params)
        took = time.perf_counter() - t0
        skipped = store.skipped
    if args.json_out:
        write_atomic(args.json_out, rows_json(result, skipped))
    if args.csv_out:
        write_atomic(args.csv_out, rows_csv(result.rows))
    fmt = _format(args)
    n = result.table.num_rows
    if fmt == "json":
        text = rows_json(result, skipped)
    elif n <= TABLE_LIMIT or args.output:
        text = rows_table(result.rows)
    else:
        text = summary_text(result.table) + "(one row per dataset: --json FILE, --csv FILE, or -o FILE)\n"
    emit(text, args.output)
    print(f"{n} datasets evaluated ({result.mode}) in {took:.2f} s (load and evaluation)", file=sys.stderr)
    return 0


def _results_dir(args, suffix: str) -> str:
    if args.results:
        return args.results
    out = Path(args.corpus.rstrip("/")).name + suffix
    print(f"almarules: {args.corpus} is larger than --in-memory {args.in_memory:,} datasets: evaluating it out of "
          f"core, results in {out}", file=sys.stderr)
    return out


def _plan_out_of_core(args, store) -> int:
    from almarules.engine.cli.common import emit
    from almarules.engine.evaluate.api import default_rules
    from almarules.engine.plan.corpus import in_summary, summary_text
    from almarules.engine.plan.outofcore import read_results, run_out_of_core

    from almarules.engine.cli.common import UserError

    if args.json_out or args.csv_out or _format(args) != "text":
        raise UserError("out of core the rows are Parquet files in the results folder (read them with any Parquet "
                        "reader); --json, --csv and --format are for corpora evaluated in memory (--in-memory N)")
    results = _results_dir(args, ".results")
    run = run_out_of_core(store.path, results, args.rules or default_rules(), args.sets, workers=args.workers,
                          scheduler=args.scheduler, partition=_partition(args), progress=parts_progress("evaluating"))
    emit(summary_text(read_results(results, in_summary)) + f"(one row per dataset: {results}/part-*.parquet)\n",
         args.output)
    _print_run(run.record)
    return 0


def _partition(args) -> int:
    from almarules.engine.cli.common import UserError
    from almarules.engine.plan.outofcore import PARTITION

    if args.partition is not None and args.partition < 1:
        raise UserError("--partition must be at least 1")
    return args.partition or PARTITION


def _print_run(record) -> None:
    peak = max((p.peak_rss_mb for p in record.parts), default=0.0)
    rate = record.datasets / record.seconds if record.seconds else 0.0
    kept = sum(p.kept for p in record.parts)
    print(f"{record.datasets:,} datasets in {len(record.parts)} partitions evaluated out of core in {record.seconds:.1f} s "
          f"({rate_text(rate)} datasets/s; {record.where}); peak memory per worker {peak:.0f} MB"
          + (f"; {kept} parts kept from an earlier run" if kept else ""), file=sys.stderr)


def cmd_synth_corpus(args) -> int:
    from almarules.engine.cli.common import UserError
    from almarules.engine.facts.synth import write_corpus

    if args.n < 1:
        raise UserError("N must be at least 1")
    t0 = time.perf_counter()
    if args.format == "parquet":
        from almarules.engine.corpus.synth import PART, synth_corpus

        if args.part is not None and args.part < 1:
            raise UserError("--part must be at least 1")
        report = synth_corpus(args.n, args.output, seed=args.seed, part=args.part or PART, workers=args.workers,
                              scheduler=args.scheduler, progress=parts_progress("writing"))
        took = time.perf_counter() - t0
        print(f"wrote a corpus of {report.manifest.datasets:,} datasets ({len(report.manifest.parts)} parts) to {args.output} "
              f"in {took:.1f} s ({rate_text(report.manifest.datasets / took)} datasets/s; {report.where})",
              file=sys.stderr)
        return 0
    paths = write_corpus(args.n, args.output, seed=args.seed, fmt=args.format, progress=_progress("writing"))
    print(f"wrote {len(paths)} summaries to {args.output} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_diff(args) -> int:
    from almarules.engine.cli.common import UserError, emit, load_rules
    from almarules.engine.cli.corpus import open_corpus
    from almarules.engine.columnar.columns import Unsupported
    from almarules.engine.plan.diff import report_text

    base = load_rules(args.base)
    new_paths = [p for group in args.new for p in group]
    new = load_rules(new_paths)
    try:
        with open_corpus(args.corpus, args.workers, args.scheduler) as store:
            if args.results or store.n > args.in_memory:
                from almarules.engine.plan.outofcore import run_out_of_core

                results = _results_dir(args, ".diff")
                run = run_out_of_core(store.path, results, new_paths, base=args.base, examples=args.examples,
                                      workers=args.workers, scheduler=args.scheduler, partition=_partition(args),
                                      progress=parts_progress("comparing"))
                report = run.report
                _print_run(run.record)
            else:
                from almarules.engine.plan.outofcore import diff_in_partitions

                report = diff_in_partitions(base, new, store, _partition(args), args.examples)
    except Unsupported as exc:
        raise UserError(f"diff evaluates with the vectorised evaluator, which does not support {exc}") from None
    emit(report.to_json() if args.json else report_text(report), args.output)
    return 0


COMMANDS = {"plan": cmd_plan, "synth-corpus": cmd_synth_corpus, "diff": cmd_diff}

__all__ = ["add_parsers", "COMMANDS"]
