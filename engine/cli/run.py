"""``almarules run``: the recipe executed end to end into WORKDIR (products, weblog), resumable."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = ("run the rule set's recipe on Measurement Sets: products and a weblog in WORKDIR; "
        "resumable, parallel on Dask")


def add_parsers(sub) -> None:
    p = sub.add_parser("run", help=HELP, description=(
        "Walk the rule set's recipe: each stage runs as the rules say (a stage almarules does not implement "
        "yet is shown as not implemented; --dry-run prints the plan instead). Images run as tasks on Dask "
        "(a LocalCluster sized to the machine; --workers 1 runs them in this process; --scheduler uses an "
        "existing cluster whose workers see the same paths). The same command resumes a killed run; after an "
        "edit (cont.dat, --set, a rule) only the images whose inputs changed are made again, with the reason. "
        "WORKDIR/products holds the FITS products, cont.dat, the flag template, commands.log, rerun.sh and "
        "manifest.json; WORKDIR/weblog/index.html the weblog."))
    _shared_args(p)
    p.add_argument("--from", dest="from_stage", metavar="STAGE", help="first stage to run (name or number)")
    p.add_argument("--until", dest="until_stage", metavar="STAGE", help="last stage to run (name or number)")
    p.add_argument("--dry-run", action="store_true", help="print the plan: what would run, what would be kept")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the closing line")
    p.add_argument("--no-weblog", action="store_true", help="do not write the weblog")

    c = sub.add_parser("calibrate", help="calibrate Measurement Sets as the rule set's recipe says (its stages up to "
                                         "applycal): calibrated working copies and CASA calibration tables in WORKDIR",
                       description=(
        "Run the calibration stages of the recipe (flagdata ... applycal, correctedampflag) on working copies of the "
        "MSs in WORKDIR/calibrated (the inputs are never written): CORRECTED_DATA there, CASA calibration tables in "
        "WORKDIR/caltables, the stages' records in WORKDIR/run.json and the weblog. 'almarules run --from makeimlist' "
        "on the same WORKDIR then images the calibrated copies."))
    _shared_args(c)
    c.add_argument("-q", "--quiet", action="store_true", help="only warnings and the closing line")
    c.add_argument("--no-weblog", action="store_true", help="do not write the weblog")


def _shared_args(p) -> None:
    from almarules.engine.cli.common import ms_run_args

    p.add_argument("dataset", nargs="+", metavar="MS", help="Measurement Set(s) of the dataset (execution blocks)")
    p.add_argument("-o", "--output", required=True, metavar="WORKDIR", help="the run's directory (created)")
    ms_run_args(p)
    p.add_argument("--flagtemplate", metavar="FILE",
                   help="flag template (flagdata syntax): applied by flagdata to the working copies, delivered with the products")
    p.add_argument("--fluxfile", metavar="FILE",
                   help="calibrator flux densities (the pipeline's flux.csv: ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment)")
    p.add_argument("--data-calibrated", action="store_true",
                   help="the DATA column holds calibrated visibilities (a split MS, a simulation without corruptions)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core; 1: serial)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--memory", type=float, default=4.0, metavar="GB",
                   help="per task: visibilities held in memory at once (cubes stream); default 4 GB")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="gridder/FFT threads per image (default: the cores shared among the workers)")



def _options(args):
    from almarules.engine.cli.common import UserError
    from almarules.engine.evaluate.api import default_rules
    from almarules.engine.ms.facts import is_ms
    from almarules.engine.pipeline.session import RunOptions

    for d in args.dataset:
        if not Path(d).exists():
            raise UserError(f"no such dataset: {d}")
        if not is_ms(d):
            raise UserError(f"{d}: not a Measurement Set; 'almarules run' needs the visibilities")
    for flag, value in (("--intents", args.intents), ("--contfile", args.contfile),
                        ("--flagtemplate", args.flagtemplate), ("--fluxfile", args.fluxfile)):
        if value and not Path(value).is_file():
            raise UserError(f"{flag}: no such file: {value}")
    for r in args.rules or []:
        if not Path(r).exists():
            raise UserError(f"no such rule file or directory: {r}")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.memory <= 0:
        raise UserError("--memory must be positive")
    if args.threads < 0:
        raise UserError("--threads must be 0 (automatic) or a positive number")
    absolute = lambda p: str(Path(p).resolve()) if p else None  # noqa: E731
    return RunOptions(ms=[absolute(d) for d in args.dataset], workdir=absolute(args.output),
                      rules=[absolute(r) for r in (args.rules or default_rules())], sets=args.sets,
                      intents=absolute(args.intents), contfile=absolute(args.contfile),
                      flagtemplate=absolute(args.flagtemplate), fluxfile=absolute(args.fluxfile), mous=args.mous, data_calibrated=args.data_calibrated,
                      workers=args.workers, scheduler=args.scheduler, memory_gb=args.memory, threads=args.threads,
                      from_stage=args.from_stage, until_stage=args.until_stage, dry_run=args.dry_run,
                      quiet=args.quiet, weblog=not args.no_weblog)


def _check_inputs(opts) -> None:
    """Read the small inputs before any slow work: one line naming the file on a problem."""
    from almarules.dsl.limits import MAX_SUMMARY_BYTES
    from almarules.engine.io import read_user_text
    from almarules.engine.products.contdat import parse_contdat

    if opts.contfile:
        parse_contdat(read_user_text(opts.contfile, MAX_SUMMARY_BYTES, "a cont.dat file"), source=opts.contfile)
    from almarules.engine.cli.common import UserError
    from almarules.engine.stages.calibration.flagtemplate import FlagTemplateError, parse
    from almarules.engine.stages.calibration.fluxmodels import FluxCsvError, read_flux_csv

    try:
        if opts.flagtemplate:
            parse(read_user_text(opts.flagtemplate, MAX_SUMMARY_BYTES, "a flag template"), opts.flagtemplate)
        if opts.fluxfile:
            read_flux_csv(opts.fluxfile)
    except (FlagTemplateError, FluxCsvError) as exc:
        raise UserError(str(exc)) from None


def cmd_run(args) -> int:
    from almarules.engine.cli.common import UserError
    from almarules.engine.pipeline.context import WorkdirError
    from almarules.engine.pipeline.commands import run_argv
    from almarules.engine.pipeline.runner import RunError, run

    opts = _options(args)
    _check_inputs(opts)
    if opts.dry_run:
        from almarules.engine.pipeline.dryrun import dry_run

        sys.stdout.write(dry_run(opts))
        return 0
    import time

    t0 = time.monotonic()
    try:
        state = run(opts, run_argv(opts))
    except (WorkdirError, RunError, ConnectionError) as exc:
        raise UserError(str(exc)) from None
    return _closing(state, opts, time.monotonic() - t0)


def _closing(state, opts, seconds: float) -> int:
    from almarules.engine.pipeline.progress import duration

    for line in _attention_lines(state):
        print(line, file=sys.stderr)
    if opts.until_stage == "calibration":
        done = [st for st in state.stages if st.name == "applycal" and st.status == "done"]
        failed = [st.name for st in state.stages if st.status == "failed"]
        where = Path(opts.workdir)
        print(f"calibrated in {duration(seconds)}: " + (f"CORRECTED_DATA in {where / 'calibrated'}, CASA tables in "
                                                        f"{where / 'caltables'}" if done else "applycal did not run")
              + (f"; FAILED: {', '.join(failed)}" if failed else ""))
        return 0 if done and not failed else 2
    made = [e for e in state.images.values() if e.status]
    failed = [e for e in made if e.status == "failed"]
    counts = {s: sum(e.status == s for e in made) for s in ("ok", "uncalibrated", "unscaled", "diverged", "failed")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    where = Path(opts.workdir)
    print(f"{len(made)} image(s) ({text or 'none'}) in {duration(seconds)}; products in {where / 'products'}"
          + (f"; weblog {where / 'weblog' / 'index.html'}" if opts.weblog else ""))
    return 2 if failed else 0


def _attention_lines(state) -> list[str]:
    """The errors and warnings of the run, one line each; the same concern of several images is
    one line naming them (the weblog lists each with its evidence)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for a in state.attention:
        if a.level not in ("error", "warning"):
            continue
        text = a.text.removeprefix(f"{a.image}: ") if a.image else a.text
        grouped.setdefault((a.level, text), []).append(a.image or "")
    lines = []
    for (level, text), images in grouped.items():
        named = [i for i in images if i]
        who = (f"{named[0]}: " if len(named) == 1 else f"{len(named)} images ({', '.join(named)}): ") if named else ""
        lines.append(f"{level.upper()} {who}{text}")
    return lines


def cmd_calibrate(args) -> int:
    """``almarules calibrate``: ``run`` up to the recipe's last calibration stage."""
    args.from_stage, args.until_stage, args.dry_run = None, "calibration", False
    return cmd_run(args)


COMMANDS = {"run": cmd_run, "calibrate": cmd_calibrate}
