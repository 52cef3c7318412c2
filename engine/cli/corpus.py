"""``almarules corpus build|info`` and how `plan --corpus` / `diff --corpus` open a corpus (a corpus
folder, or summaries and MSs built into a temporary one)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator, Optional

from almarules.engine.cli.common import parts_progress

PARALLEL_ARGS_HELP = "worker processes (default: one per core, as memory allows; 1: in this process)"


def _workers(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def parallel_args(p) -> None:
    p.add_argument("--workers", type=_workers, default=None, metavar="N", help=PARALLEL_ARGS_HELP)
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler (tcp://host:8786) whose workers see the same paths")


def add_parsers(sub) -> None:
    p = sub.add_parser("corpus", help="columnar corpora: build one from summaries and MSs, describe one")
    csub = p.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND")
    b = csub.add_parser("build", help="summaries (.yaml/.json) and Measurement Sets into a corpus folder (Parquet)")
    b.add_argument("sources", nargs="+", metavar="SRC", help="summary files, MSs, or folders of them")
    b.add_argument("-o", "--output", required=True, metavar="CORPUS", help="the corpus folder (resumed if present)")
    b.add_argument("--chunk", type=int, default=None, metavar="N", help="summaries per part (default 2000)")
    parallel_args(b)
    i = csub.add_parser("info", help="what a corpus holds: datasets, parts, tables, units, what was skipped")
    i.add_argument("corpus", metavar="CORPUS")


def cmd_corpus(args) -> int:
    from almarules.engine.cli.common import UserError

    if args.corpus_command == "build":
        return _build(args)
    if args.corpus_command == "info":
        return _info(args)
    raise UserError("give a subcommand: almarules corpus build|info (see --help)")


def _build(args) -> int:
    from almarules.engine.corpus.build import CHUNK, build_corpus

    if args.chunk is not None and args.chunk < 1:
        from almarules.engine.cli.common import UserError

        raise UserError("--chunk must be at least 1")
    show = parts_progress("building")
    report = build_corpus(args.sources, args.output, workers=args.workers, scheduler=args.scheduler,
                          chunk=args.chunk or CHUNK, progress=show)
    m = report.manifest
    print_skipped(m.skipped)
    rate = m.datasets / report.seconds if report.seconds else 0.0
    print(f"built {args.output}: {m.datasets} datasets in {len(m.parts)} parts, {report.seconds:.1f} s "
          f"({rate_text(rate)} datasets/s; {report.where})"
          + (f"; {report.resumed} parts kept from an earlier build" if report.resumed else "")
          + (f"; {len(m.skipped)} skipped" if m.skipped else ""), file=sys.stderr)
    return 0


def rate_text(rate: float) -> str:
    """A throughput: whole numbers from 100 up, two significant digits below."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.2g}"


def print_skipped(skipped, limit: int = 20) -> None:
    """Each skipped dataset's problems on stderr (the first `limit` datasets)."""
    for s in skipped[:limit]:
        for line in s.problems[:5]:
            print(f"almarules: skipped {s.source}: {line.removeprefix(s.source + ': ')}", file=sys.stderr)
    if len(skipped) > limit:
        print(f"almarules: ... and {len(skipped) - limit} more skipped datasets (see 'almarules corpus info')",
              file=sys.stderr)


def _info(args) -> int:
    from tabulate import tabulate

    from almarules.engine.corpus.store import CorpusStore

    store = CorpusStore(args.corpus)
    m = store.manifest
    size = sum(f.stat().st_size for f in Path(args.corpus).rglob("*.parquet"))
    print(f"{args.corpus}: {m.datasets} datasets in {len(m.parts)} parts, {size / 1e6:.1f} MB of Parquet; "
          f"built {m.created} from {', '.join(m.inputs) or '?'}")
    rows = []
    for kind, info in m.tables.items():
        n = sum(p.rows.get(kind, 0) for p in m.parts)
        units = sorted({f"{c}: {ci.unit}" for c, ci in info.columns.items() if ci.unit})
        rows.append([kind, f"{info.parent}.{info.attr}" if info.parent else "-", n, len(info.columns),
                     "; ".join(units[:4]) + (" ..." if len(units) > 4 else "")])
    print(tabulate(rows, ["table", "held by", "rows", "columns", "units"]))
    if m.skipped:
        print(f"\nskipped ({len(m.skipped)}):")
        for s in m.skipped:
            print(f"  {s.source}: {'; '.join(p.removeprefix(s.source + ': ') for p in s.problems[:3])}")
    return 0


@contextlib.contextmanager
def open_corpus(path: str, workers: Optional[int] = None, scheduler: Optional[str] = None) -> Iterator:
    """The `CorpusStore` of a corpus folder, or of a temporary corpus built from the summaries and
    MSs in the folder `path` (removed afterwards); what was skipped is printed."""
    from almarules.engine.corpus.build import opened_corpus

    with opened_corpus(path, workers, scheduler, notice=lambda text: print(f"almarules: {text}",
                                                                             file=sys.stderr)) as store:
        print_skipped(store.skipped)
        yield store


COMMANDS = {"corpus": cmd_corpus}

__all__ = ["add_parsers", "COMMANDS", "open_corpus", "parallel_args", "print_skipped", "rate_text"]
