"""What the command modules share: the user-error type, common arguments, output, reading a
dataset with progress, loading rules, checking ``--set`` numbers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


class UserError(Exception):
    """A problem the user can fix; printed as one message, exit code 2."""


def rules_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", action="append", metavar="PATH",
                   help="rule set directory or files, and override files (repeatable); default: the shipped cycle4 set")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                   help="override a parameter, e.g. --set imaging.max_cube_size=40GB")


def ms_run_args(p: argparse.ArgumentParser) -> None:
    """The options `image` and `run` share: rules, --set, intents, cont.dat, OUS id."""
    rules_arg(p)
    p.add_argument("--intents", metavar="FILE", help="YAML/JSON: field name -> intents, for MSs without intents")
    p.add_argument("--contfile", metavar="FILE", help="cont.dat: continuum ranges for the cont images")
    p.add_argument("--mous", metavar="ID", help="the OUS id that starts product names (default: from the data)")


def dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="+", metavar="DATASET",
                   help="a dataset summary (.yaml/.json), or the Measurement Sets of one dataset")
    p.add_argument("--intents", metavar="FILE", help="YAML/JSON: field name -> intents, for MSs without intents")



def emit(text: str, output: Optional[str]) -> None:
    if output:
        from almarules.engine.io import write_atomic

        write_atomic(output, text)
    else:
        sys.stdout.write(text)



def read_dataset(paths: list[str], intents: Optional[str]):
    from almarules.dsl.limits import MAX_SUMMARY_BYTES
    from almarules.engine.evaluate.api import load_dataset
    from almarules.engine.io import check_user_file

    for p in paths:
        if not Path(p).exists():
            raise UserError(f"no such dataset: {p}")
    if intents and not Path(intents).exists():
        raise UserError(f"no such intents file: {intents}")
    if intents:  # a regular file of at most MAX_SUMMARY_BYTES: never a FIFO or a device
        check_user_file(intents, MAX_SUMMARY_BYTES, "an intents file")
    return load_dataset(paths, intents, progress=read_progress())


def read_progress():
    """A progress line on stderr for long reads (only when stderr is a terminal)."""
    return progress_printer(lambda pct, name, done, total: f"reading flags and weights of {name}: {pct:3d}%")


def progress_printer(text):
    """A callback ``show(..., done, total)`` that rewrites one stderr line, ``text(pct, ...)``,
    when the percentage changes; None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None
    last = {"pct": -1}

    def show(*args) -> None:
        done, total = args[-2], args[-1]
        pct = int(100 * done / max(total, 1))
        if pct != last["pct"]:
            last["pct"] = pct
            sys.stderr.write("\r" + text(pct, *args))
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
    return show


def parts_progress(what: str):
    """`progress_printer` for work in parts: ``show(datasets, parts done, parts)``."""
    return progress_printer(lambda pct, n, done, total: f"{what}: part {done}/{total}, {n:,} datasets ({pct}%)")


def program_and_facts(args):
    """The program of ``--rules`` and the facts of the DATASET arguments."""
    return load_rules(args.rules), read_dataset(args.dataset, args.intents)



def check_set_numbers(sets: Sequence[str]) -> None:
    """Refuse a ``--set`` number that is not finite (``1e400``) or is subnormal (``1e-320``, or
    a value whose SI value is below 2.2e-308 in magnitude, where precision is lost): one line.
    The parameter's own ``in`` clause is checked later, when the rules are loaded."""
    import math

    from almarules.dsl.units import UnitError, parse_quantity

    for assignment in sets:
        text = assignment.split("=", 1)[1].strip() if "=" in assignment else ""
        try:
            value, _ = parse_quantity(text)
        except (UnitError, ValueError):
            continue  # a string, or not a number: the parameter's type decides later
        if not math.isfinite(value):
            raise UserError(f"--set {assignment}: {text} is not a finite number")
        if value != 0 and abs(value) < sys.float_info.min:
            raise UserError(f"--set {assignment}: {text} is too small to compute with (a subnormal number: "
                            f"its SI value is below {sys.float_info.min:.3g} in magnitude)")



def load_rules(rules: Optional[list[str]]):
    """The checked program of `rules` (paths; default: the shipped cycle4 set)."""
    from almarules.engine.evaluate.api import default_rules, load_program

    rules = rules or default_rules()
    for r in rules:
        if not Path(r).exists():
            raise UserError(f"no such rule file or directory: {r}")
    return load_program(rules)
