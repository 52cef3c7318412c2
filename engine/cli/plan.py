"""The commands of the planner: ``plan`` (one dataset, or ``--corpus``), ``synth-corpus``, ``diff``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

FORMATS = ("text", "markdown", "json", "html")


def add_parsers(sub) -> None:
    p = sub.add_parser("plan", help="dry-run plan of a dataset (or a corpus): stages, images, sizes, time, why")
    p.add_argument("dataset", nargs="*", metavar="DATASET",
                   help="a dataset summary (.yaml/.json), or the Measurement Sets of one dataset")
    p.add_argument("--corpus", metavar="DIR", help="plan every summary and MS in DIR (vectorised); one row each")
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

    p = sub.add_parser("synth-corpus", help="write N plausible, varied synthetic dataset summaries")
    p.add_argument("n", type=int, metavar="N", help="how many datasets")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write them to")
    p.add_argument("--seed", type=int, default=0, help="random seed (dataset i depends only on seed and i)")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="summary format (json loads faster)")

    p = sub.add_parser("diff", help="what a rule edit changes across a corpus, and which edit causes it")
    p.add_argument("--base", action="append", required=True, metavar="PATH", help="the base rule set (repeatable)")
    p.add_argument("--new", action="append", required=True, nargs="+", metavar="PATH",
                   help="the new rule set and any override files")
    p.add_argument("--corpus", required=True, metavar="DIR", help="summaries and MSs to evaluate both on")
    p.add_argument("--json", action="store_true", help="the full report as JSON")
    p.add_argument("--examples", type=int, default=5, help="example changes kept per attribute (default 5)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (atomically)")


def _progress(what: str):
    from almarules.engine.cli.common import progress_printer

    return progress_printer(lambda pct, done, total: f"{what}: {done}/{total} ({pct}%)")


def _format(args) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return {".md": "markdown", ".json": "json", ".html": "html", ".htm": "html"}.get(suffix, "text")


def _unreadable_entries(directory: Path, found: list[Path]) -> list[tuple[Path, str]]:
    """Entries of `directory` named like summaries that are not read: FIFOs, devices, sockets and
    broken links (never opened, so a FIFO cannot block the corpus)."""
    from almarules.engine.plan.corpus import SUMMARY_SUFFIXES
    from almarules.engine.io import UserFileError, check_user_file

    out = []
    for p in sorted(directory.iterdir()):
        if p in found or p.suffix not in SUMMARY_SUFFIXES or p.name.endswith(".test.yaml"):
            continue
        try:
            check_user_file(p, 1 << 62, "a dataset summary")
        except UserFileError as exc:
            out.append((p, str(exc).split(": ", 1)[-1]))
    return out


def _load_corpus(directory: str):
    from almarules.engine.cli.common import UserError
    from almarules.engine.plan.corpus import find_datasets, load_corpus

    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"no such corpus directory: {directory}")
    paths = find_datasets(d)
    for entry, why in _unreadable_entries(d, paths):
        print(f"almarules: skipped {entry}: {why}", file=sys.stderr)
    if not paths:
        raise UserError(f"no dataset summaries (.yaml/.json) or Measurement Sets in {directory}")
    loaded = load_corpus(paths, _progress("loading datasets"))
    for path, why in loaded.skipped:
        print(f"almarules: skipped {path}: {why}", file=sys.stderr)
    if not loaded.datasets:
        raise UserError(f"none of the {len(paths)} datasets in {directory} could be read")
    return loaded


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
    from almarules.engine.plan.corpus import evaluate_corpus, rows_csv, rows_json, rows_table
    from almarules.engine.io import write_atomic

    loaded = _load_corpus(args.corpus)
    params = {}
    for s in args.sets:
        name, value = program.resolve_set(s)
        params[name] = value
    t0 = time.perf_counter()
    result = evaluate_corpus(program, loaded, params)
    took = time.perf_counter() - t0
    if args.json_out:
        write_atomic(args.json_out, rows_json(result, loaded.skipped))
    if args.csv_out:
        write_atomic(args.csv_out, rows_csv(result.rows))
    fmt = _format(args)
    text = rows_json(result, loaded.skipped) if fmt == "json" else rows_table(result.rows)
    emit(text, args.output)
    print(f"{len(result.rows)} datasets evaluated ({result.mode}) in {took:.2f} s", file=sys.stderr)
    return 0


def cmd_synth_corpus(args) -> int:
    from almarules.engine.cli.common import UserError
    from almarules.engine.facts.synth import write_corpus

    if args.n < 1:
        raise UserError("N must be at least 1")
    t0 = time.perf_counter()
    paths = write_corpus(args.n, args.output, seed=args.seed, fmt=args.format, progress=_progress("writing"))
    print(f"wrote {len(paths)} summaries to {args.output} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_diff(args) -> int:
    from almarules.engine.cli.common import UserError, emit, load_rules
    from almarules.engine.columnar.columns import Unsupported
    from almarules.engine.columnar.tables import Corpus
    from almarules.engine.plan.diff import diff, report_text

    base = load_rules(args.base)
    new = load_rules([p for group in args.new for p in group])
    loaded = _load_corpus(args.corpus)
    corpus = Corpus(loaded.datasets, new.schema, loaded.names)
    try:
        report = diff(base, new, corpus, examples=args.examples)
    except Unsupported as exc:
        raise UserError(f"diff evaluates with the vectorised evaluator, which does not support {exc}") from None
    emit(report.to_json() if args.json else report_text(report), args.output)
    return 0


COMMANDS = {"plan": cmd_plan, "synth-corpus": cmd_synth_corpus, "diff": cmd_diff}

__all__ = ["add_parsers", "COMMANDS"]
