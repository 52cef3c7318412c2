"""The ``almarules`` command.

Exit codes: 0 success; 1 findings (check) or failures (test, fmt --check); 2 user
errors (bad rule files given to eval, bad facts, bad options). ``--debug`` shows
tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from almarules import __version__
from almarules.dsl.errors import RuleError
from almarules.engine.cli.common import (UserError, check_set_numbers, dataset_args, emit, program_and_facts,
                                          read_dataset, rules_arg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="almarules",
        description="Declarative heuristics for ALMA-style interferometry pipelines: check, evaluate, "
                    "explain and test rules against dataset facts.")
    parser.add_argument("--version", action="version", version=f"almarules {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="check rule files: syntax, names, units, cycles, coverage")
    p.add_argument("paths", nargs="+", metavar="PATH", help="rule files or directories (each directory with .rules files is a set)")

    p = sub.add_parser("facts", help="read the facts of Measurement Sets (or a summary) and print them")
    p.add_argument("datasets", nargs="+", metavar="PATH", help="MSs of one dataset (its execution blocks), or a summary")
    p.add_argument("--intents", metavar="FILE", help="YAML/JSON: field name -> intents, for data without intents")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON (the default)")
    fmt.add_argument("--yaml", action="store_true", help="YAML")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically)")

    p = sub.add_parser("eval", help="evaluate rules on a dataset (summary or Measurement Sets)")
    dataset_args(p)
    rules_arg(p)
    p.add_argument("--json", action="store_true", help="JSON with provenance")
    p.add_argument("--only", metavar="TEXT", help="show only values whose path contains TEXT")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of stdout")

    p = sub.add_parser("explain", help="the derivation tree of one value")
    dataset_args(p)
    rules_arg(p)
    p.add_argument("--value", required=True, metavar="PATH", help="e.g. 'image[Elias_29.TARGET.17.mfs].threshold'")
    p.add_argument("--depth", type=int, default=8, help="levels of inputs to show (default 8)")

    p = sub.add_parser("test", help="run rule tests (*.test.yaml) and report coverage")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--no-coverage", action="store_true", help="do not report coverage")

    p = sub.add_parser("fmt", help="format rule files canonically (in place)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--check", action="store_true", help="only report files that are not formatted; exit 1 if any")

    from almarules.engine.cli import simulate as simulate_cli

    p = sub.add_parser("simulate", help=simulate_cli.HELP)
    simulate_cli.add_arguments(p)

    p = sub.add_parser("schema", help="print the JSON Schema of dataset facts")
    p.add_argument("-o", "--output", metavar="FILE")

    from almarules.engine.cli import corpus as corpus_cli
    from almarules.engine.cli import image as image_cli
    from almarules.engine.cli import plan as plan_cli
    from almarules.engine.cli import run as run_cli

    plan_cli.add_parsers(sub)
    corpus_cli.add_parsers(sub)
    image_cli.add_parsers(sub)
    run_cli.add_parsers(sub)
    return parser


# ---------------------------------------------------------------- commands
def _check_targets(raws: list[str]) -> dict[Path, Optional[set[str]]]:
    """Rule sets to check -> the files whose findings to report (None: all of them).

    A directory is checked as every rule set at or below it. A ``.rules`` file inside a rule
    set (a directory holding ``.rules`` files) is checked as part of that set, so names it
    takes from its sibling files resolve; only that file's findings are reported."""
    from almarules.dsl.loader import display_path, rule_set_dirs

    targets: dict[Path, Optional[set[str]]] = {}
    for raw in raws:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"no such file or directory: {raw}")
        if path.is_dir():
            found = rule_set_dirs(path)
            if not found:
                raise UserError(f"no .rules files under {raw}")
            for s in found:
                targets[s] = None
            continue
        if not path.is_file():
            raise UserError(f"not a regular file: {raw}")
        home = path.parent if path.suffix == ".rules" else path
        if home not in targets:
            targets[home] = set()
        if targets[home] is not None:
            targets[home].add(display_path(path))
    return targets


def cmd_check(args) -> int:
    from almarules.dsl.errors import finding_order
    from almarules.dsl.loader import display_path
    from almarules.engine.evaluate.api import check_rules

    targets = _check_targets(args.paths)
    seen = set()
    findings = []
    sources: dict[str, str] = {}
    nfiles = 0
    elsewhere: dict[str, int] = {}  # rule set -> findings in files not asked about
    for s, only in targets.items():
        rs, result = check_rules([s])
        nfiles += len(rs.modules)
        sources.update(rs.sources)
        for f in result.findings:
            if only is not None and f.loc.file not in only:
                elsewhere[display_path(s)] = elsewhere.get(display_path(s), 0) + 1
                continue
            if (f.loc, f.code, f.message) not in seen:
                seen.add((f.loc, f.code, f.message))
                findings.append(f)
    for f in sorted(findings, key=finding_order):
        print(f.render(sources.get(f.loc.file)))
    n = len(targets)
    sets = f"{n} rule set{'s' if n != 1 else ''}"
    note = "".join(f"; {k} more in other files of {d} (check the directory to see them)"
                   for d, k in elsewhere.items())
    if findings:
        print(f"{_plural(len(findings), 'finding')} in {sets}{note}")
        return 1
    print(f"ok: {sets}, {nfiles} files, no findings{' in the files given' if elsewhere else ''}{note}")
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _source(args) -> str:
    return ", ".join(args.dataset)


def cmd_facts(args) -> int:
    import json

    import yaml

    from almarules.engine.facts.summary import dump_summary

    facts = read_dataset(args.datasets, args.intents)
    data = dump_summary(facts)
    text = (yaml.safe_dump(data, sort_keys=False, allow_unicode=True) if args.yaml
            else json.dumps(data, indent=2) + "\n")
    emit(text, args.output)
    return 0


def cmd_eval(args) -> int:
    from almarules.engine.evaluate.api import run
    from almarules.engine.evaluate.decisions import decisions
    from almarules.engine.evaluate.report import decisions_table

    program, facts = program_and_facts(args)
    result = decisions(run(program, facts, args.sets, source=_source(args)))
    if args.only:
        result.values = [v for v in result.values if args.only in v.path]
    emit(result.to_json() if args.json else decisions_table(result), args.output)
    return 0


def cmd_explain(args) -> int:
    from almarules.engine.evaluate.api import run
    from almarules.engine.evaluate.explain import explain

    program, facts = program_and_facts(args)
    ev = run(program, facts, args.sets, source=_source(args))
    sys.stdout.write(explain(ev, args.value, depth=args.depth))
    return 0


def cmd_test(args) -> int:
    from almarules.engine.ruletest.tester import run_tests

    for raw in args.paths:
        if not Path(raw).exists():
            raise UserError(f"no such file or directory: {raw}")
    report = run_tests([Path(p) for p in args.paths], coverage=not args.no_coverage)
    sys.stdout.write(report.text)
    if report.rules_broken:
        print("almarules: the rules have problems (listed above); run 'almarules check' on them", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


def cmd_fmt(args) -> int:
    from almarules.dsl.format import format_text
    from almarules.dsl.loader import BadEncoding, display_path, read_rule_file
    from almarules.engine.io import write_atomic

    files: list[Path] = []
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"no such file or directory: {raw}")
        files.extend(sorted(path.rglob("*.rules")) if path.is_dir() else [path])
    changed = []
    errors = []
    for f in files:
        try:
            text = read_rule_file(f)  # a regular file within the size limit, UTF-8
        except (OSError, BadEncoding) as exc:
            raise UserError(f"{f}: cannot format: {exc}") from None
        try:
            new = format_text(text, display_path(f))
        except RuleError as exc:
            errors.append(exc)
            continue
        if new != text:
            changed.append(f)
            if not args.check:
                write_atomic(f, new)
    for exc in errors:
        print(exc.render(), file=sys.stderr)
    verb = "would reformat" if args.check else "reformatted"
    for f in changed:
        print(f"{verb} {display_path(f)}")
    if errors:
        return 2
    if args.check and changed:
        return 1
    if not changed:
        print(f"{len(files)} file{'s' if len(files) != 1 else ''} already formatted")
    return 0


def cmd_schema(args) -> int:
    from almarules.engine.facts.summary import schema_json

    emit(schema_json(), args.output)
    return 0


def cmd_simulate(args) -> int:
    from almarules.engine.cli.simulate import cmd_simulate as run_simulation

    return run_simulation(args)


COMMANDS = {"check": cmd_check, "facts": cmd_facts, "eval": cmd_eval, "explain": cmd_explain, "test": cmd_test,
            "fmt": cmd_fmt, "simulate": cmd_simulate, "schema": cmd_schema}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; every error becomes one clear message and an exit code (0 ok, 1 findings,
    2 usage or data errors, 3 internal errors, 130 interrupted by Ctrl-C)."""
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        check_set_numbers(getattr(args, "sets", None) or [])
        from almarules.engine.cli.corpus import COMMANDS as CORPUS_COMMANDS
        from almarules.engine.cli.image import COMMANDS as IMAGE_COMMANDS
        from almarules.engine.cli.plan import COMMANDS as PLAN_COMMANDS
        from almarules.engine.cli.run import COMMANDS as RUN_COMMANDS

        return {**COMMANDS, **PLAN_COMMANDS, **CORPUS_COMMANDS, **IMAGE_COMMANDS, **RUN_COMMANDS}[args.command](args)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - every error becomes one clear message
        if args is not None and getattr(args, "debug", False):
            traceback.print_exc()
        return _report(exc)


def _report(exc: BaseException) -> int:
    if isinstance(exc, BrokenPipeError):  # the reader went away (`almarules ... | head`): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError, AttributeError):  # stdout is not a file (tests)
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    if isinstance(exc, KeyboardInterrupt):
        print("almarules: interrupted (nothing half-written is left; finished products are kept)",
              file=sys.stderr)
        return 130

    from almarules.engine.products.contdat import ContDatError
    from almarules.engine.evaluate.program import UsageError
    from almarules.engine.stages.imaging.job import ImagingError
    from almarules.engine.ms.facts import MSError
    from almarules.engine.facts.summary import FactsError
    from almarules.engine.ms.tables import TableAccessError
    from almarules.engine.ms.visibilities import DataSelectionError
    from almarules.engine.corpus.build import BuildError
    from almarules.engine.corpus.store import CorpusError

    if isinstance(exc, RuleError):
        print(exc.render(), file=sys.stderr)
        n = len(exc.findings)
        print(f"almarules: the rules have {n} problem{'s' if n != 1 else ''}; "
              f"run 'almarules check' on them", file=sys.stderr)
        return 2
    if isinstance(exc, (UserError, UsageError, FactsError, MSError, ImagingError, ContDatError, DataSelectionError,
                        TableAccessError, BuildError, CorpusError)):
        print(f"almarules: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, (OSError,)):
        print(f"almarules: {exc}", file=sys.stderr)
        return 2
    print(f"almarules: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
          file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
