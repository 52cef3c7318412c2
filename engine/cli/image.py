"""``almarules image``: make the images of the plan's imaging list from Measurement Sets."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

SPECMODES = ("mfs", "cont", "cube")


def add_parsers(sub) -> None:
    from almarules.engine.cli.common import ms_run_args

    p = sub.add_parser("image", help="make images as the rules say: FITS products and a JSON record each",
                       description="Make the images of the imaging list (the rules decide every parameter; "
                                   "after the dirty image the rules give the threshold, after cleaning the QA "
                                   "score). Select images with --field/--intent/--spw/--specmode or --image, "
                                   "or make them all with --all. Each image gets a status: ok; uncalibrated "
                                   "(read from DATA: no filled CORRECTED_DATA), diverged (the clean stopped "
                                   "because the residual grew), both with a WARNING line and a capped QA score; "
                                   "or failed (exit code 2). Ctrl-C stops with exit code 130 and leaves no "
                                   "partial product.")
    p.add_argument("dataset", nargs="+", metavar="MS", help="Measurement Set(s) of the dataset (execution blocks)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the products (created)")
    p.add_argument("--field", help="field name")
    p.add_argument("--intent", help="intent of the image (TARGET, PHASE, BANDPASS, CHECK, ...)")
    p.add_argument("--spw", help="spw id(s) of the image, comma-separated (e.g. 0 or 0,1 for a cont image)")
    p.add_argument("--specmode", choices=SPECMODES)
    p.add_argument("--image", action="append", default=[], metavar="KEY",
                   help="an image by its key FIELD.INTENT.SPWS.SPECMODE (repeatable)")
    p.add_argument("--all", action="store_true", help="every image of the imaging list")
    ms_run_args(p)
    p.add_argument("--extra-products", action="store_true",
                   help="also write the non-pbcor image, residual, model, psf and mask")
    p.add_argument("--data-calibrated", action="store_true",
                   help="the DATA column holds calibrated visibilities (a split MS, a simulation without "
                        "corruptions): an image read from DATA is then not marked uncalibrated")
    p.add_argument("--memory", type=float, default=2.0, metavar="GB",
                   help="cubes: visibilities held in memory at once (default 2 GB)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="threads of the gridder and FFTs (default 0: all cores). With 1 thread identical inputs give "
                        "identical products (FITS data byte for byte); with several, sums run in a thread-dependent "
                        "order (see README)")


def _matches(key: str, args) -> bool:
    from almarules.engine.stages.imaging.job import split_key

    field, intent, spws, specmode = split_key(key)
    if args.field is not None and field != args.field:
        return False
    if args.intent is not None and intent != args.intent.upper():
        return False
    if args.specmode is not None and specmode != args.specmode:
        return False
    if args.spw is not None and sorted(spws) != sorted(_spw_ids(args.spw)):
        return False
    return True


def _spw_ids(text: str) -> list[int]:
    from almarules.engine.cli.common import UserError

    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--spw takes spw ids separated by commas, got {text!r}") from None


def _empty_list(stage) -> str:
    """Why the imaging list is empty, and what to do about it."""
    fields = stage.facts.fields or []
    if fields and not any(f.intents for f in fields):
        names = ", ".join(f.name for f in fields)
        return ("the imaging list is empty: the data declare no intents (no field is marked TARGET, PHASE, "
                f"BANDPASS, ...; fields: {names}). Declare them with --intents FILE, a YAML file mapping "
                "field name -> intents, e.g. 'N5921_2: [TARGET]' (examples/intents/ holds files for the "
                "shared VLA data: ngc5921.yaml, day2_TDEM0003.yaml)")
    return ("the imaging list is empty for this dataset: no field has an intent the rules image "
            "(see 'almarules plan' on it for the imaging list and why)")


def _choose(stage, args) -> list[str]:
    from almarules.engine.cli.common import UserError

    keys = stage.keys()
    if not keys:
        raise UserError(_empty_list(stage))
    filters = any(v is not None for v in (args.field, args.intent, args.spw, args.specmode))
    if args.image:
        missing = [k for k in args.image if k not in keys]
        if missing:
            raise UserError(f"no image {missing[0]!r} in the imaging list; it has: {', '.join(keys)}")
        return list(args.image)
    if not filters and not args.all:
        raise UserError("say which images: --all, --image KEY, or --field/--intent/--spw/--specmode; "
                        f"the imaging list has {len(keys)}: {', '.join(keys)}")
    chosen = [k for k in keys if _matches(k, args)]
    if not chosen:
        raise UserError(f"no image of the imaging list matches; it has: {', '.join(keys)}")
    return chosen


def _concerns(records) -> str:
    """One WARNING line per concern of an image whose status is not ok (empty if none)."""
    lines = [f"WARNING {r.key}: {c}" for r in records for c in r.concerns]
    return "".join(line + "\n" for line in lines)


def _summary(records) -> str:
    from tabulate import tabulate

    def num(s, fmt="{:.3g}"):
        return fmt.format(s.value) if s is not None and s.value is not None else "-"

    rows = []
    for r in records:
        w = r.weblog
        beam = (f"{w.beam_major.value:.3g} x {w.beam_minor.value:.3g} @ {w.beam_pa.value:.0f}"
                if w.beam_major and w.beam_major.value is not None else "-")
        rows.append([r.key, r.status, beam, num(w.sensitivity), num(w.dirty_dr), num(w.threshold), num(w.rms),
                     num(w.pbcor_max), (f"{w.qa_score.value:.2f} {w.qa_colour.value}"
                                        if w.qa_score and w.qa_score.value is not None else "-"),
                     r.clean.stopped_by if r.clean else (r.error or "-")])
    head = ["image", "status", "beam (arcsec, deg)", "sensitivity (mJy/beam)", "dirty DR", "threshold (mJy/beam)",
            "rms (mJy/beam)", "pbcor max (mJy/beam)", "score", "clean stopped by"]
    return tabulate(rows, head) + "\n"


def _read_contfile(path: str):
    """The cont.dat at `path`: a regular file of at most MAX_SUMMARY_BYTES (64 MiB) of UTF-8 (never
    a FIFO or a device); errors are one line naming the file."""
    from almarules.dsl.limits import MAX_SUMMARY_BYTES
    from almarules.engine.products.contdat import parse_contdat
    from almarules.engine.io import read_user_text

    return parse_contdat(read_user_text(path, MAX_SUMMARY_BYTES, "a cont.dat file"), source=str(path))


def cmd_image(args) -> int:
    from almarules.engine.cli.common import UserError, load_rules, read_dataset
    from almarules.engine.stages.imaging.stage import Stage, make_images
    from almarules.engine.ms.facts import is_ms
    from almarules.engine.ms import visibilities as msdata

    for d in args.dataset:
        if not Path(d).exists():
            raise UserError(f"no such dataset: {d}")
        if not is_ms(d):
            raise UserError(f"{d}: not a Measurement Set; imaging needs the visibilities (a summary has none)")
    if args.memory <= 0:
        raise UserError("--memory must be positive")
    if args.threads < 0:
        raise UserError("--threads must be 0 (all cores) or a positive number of threads")
    check_output_dir(Path(args.output))  # before any data are read: a read-only directory fails at once
    contdat = _read_contfile(args.contfile) if args.contfile else None  # before any slow work
    program = load_rules(args.rules)
    for d in args.dataset:
        msdata.data_column(d)  # one clear line, before any work, when an MS has no visibilities to image
    facts = read_dataset(args.dataset, args.intents)
    out = Path(args.output)

    def log(text: str) -> None:
        print(f"almarules image: {text}", file=sys.stderr, flush=True)

    with _exclusive(out):  # a second run in the same directory would take this one's temporaries for leftovers
        for note in clean_leftovers(out):
            log(note)
        stage = Stage(program, facts, [Path(d) for d in args.dataset], out, args.sets, args.mous, contdat,
                      args.extra_products, int(args.memory * 1e9), args.threads, log, args.data_calibrated)
        keys = _choose(stage, args)
        records = make_images(stage, keys)
    sys.stdout.write(_summary(records))
    sys.stdout.write(_concerns(records))
    print(_closing(records, out))
    return 2 if any(r.status == "failed" for r in records) else 0


def check_output_dir(out: Path) -> None:
    """Refuse, in one line, an output directory that is not a directory, cannot be created or
    cannot be written (a probe file is created there and removed)."""
    import tempfile

    from almarules.engine.cli.common import UserError

    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output directory {out}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".almarules-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write in the output directory {out}: {(exc.strerror or str(exc)).lower()}") from None


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out/.almarules-image.lock`` (refused in one line while another
    ``almarules image`` writes there), removed when the run ends; a killed run's lock is released
    by the kernel and its file reused."""
    from almarules.engine.cli.common import UserError
    from almarules.engine.io import Busy, exclusive

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive(out / ".almarules-image.lock", remove=True))
        except Busy:
            raise UserError(f"another 'almarules image' is writing in {out}; wait for it or choose another "
                            f"directory") from None
        except OSError as exc:
            raise UserError(f"cannot write in the output directory {out}: "
                            f"{(exc.strerror or str(exc)).lower()}") from None
        yield


def clean_leftovers(out: Path) -> list[str]:
    """Remove what killed runs left in `out` (see `engine.stages.imaging.writer.leftovers`); one note
    per file removed."""
    from almarules.engine.stages.imaging.writer import leftovers

    notes = []
    for path, why in leftovers(out):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        notes.append(f"removed {path.name}: {why}")
    return notes


def _closing(records, out: Path) -> str:
    """The last line: how many images were made, and how many are not ok, by status."""
    failed = [r for r in records if r.status == "failed"]
    text = f"{len(records) - len(failed)} of {len(records)} images made in {out}"
    flagged = {s: sum(r.status == s for r in records) for s in ("uncalibrated", "unscaled", "diverged")}
    text += "".join(f"; {n} {s} (see WARNING above)" for s, n in flagged.items() if n)
    return text + (f"; {len(failed)} failed (see their .record.json)" if failed else "")


COMMANDS = {"image": cmd_image}
