"""The equivalent commands of each stage: the ``almarules`` command that redoes it alone, and the
CASA call a CASA user would type (``tclean(vis=…, imsize=…, cell=…, threshold=…)``), with the
final parameters the rules gave (the threshold measured from the dirty image included).

Strings are quoted with `shlex.quote` (shell) and `repr` (Python), so both paste as they are.
"""

from __future__ import annotations

import shlex
from typing import Any, Optional, Sequence

from almarules.engine.facts.model import SPECMODES
from almarules.engine.pipeline.session import RunOptions
from almarules.engine.pipeline.state import Command
from almarules.engine.stages.imaging.record import ImageRecord


def shell(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _common(opts: RunOptions) -> list[str]:
    argv: list[str] = []
    for r in opts.rules:
        argv += ["--rules", r]
    for s in opts.sets:
        argv += ["--set", s]
    if opts.intents:
        argv += ["--intents", opts.intents]
    return argv


def run_argv(opts: RunOptions) -> list[str]:
    """The ``almarules run`` command line of `opts` (without --from/--until/--dry-run)."""
    argv = ["almarules", "run", *opts.ms, "-o", opts.workdir, *_common(opts)]
    for flag, value in (("--contfile", opts.contfile), ("--flagtemplate", opts.flagtemplate), ("--mous", opts.mous)):
        if value:
            argv += [flag, value]
    if opts.data_calibrated:
        argv.append("--data-calibrated")
    return argv


def facts_commands(opts: RunOptions) -> list[Command]:
    argv = ["almarules", "facts", *opts.ms] + (["--intents", opts.intents] if opts.intents else [])
    return [Command(tool="almarules", text=shell(argv)),
            Command(tool="casa", text=f"hifa_importdata(vis={opts.ms!r}, dbservice=False)",
                    note="the ALMA pipeline's task (CASA's own listobs shows the same metadata)")]


def imlist_commands(opts: RunOptions, args: Sequence[str]) -> list[Command]:
    argv = ["almarules", "plan", *opts.ms, *_common(opts)]
    intents = [a for a in args if a not in SPECMODES]
    specmodes = [a for a in args if a in SPECMODES]
    casa = "hif_makeimlist(" + ", ".join(
        ([f"intent={','.join(intents)!r}"] if intents else []) + ([f"specmode={specmodes[0]!r}"] if specmodes else [])
    ) + ")"
    return [Command(tool="almarules", text=shell(argv), note="the imaging list is the plan's"),
            Command(tool="casa", text=casa, note="the ALMA pipeline's task")]


def image_commands(opts: RunOptions, key: str, rec: Optional[ImageRecord], contfile: Optional[str] = None
                   ) -> list[Command]:
    """The commands that make image `key` again: on the Measurement Sets its record says it read
    (the run's calibrated working copies or line copies, not the raw inputs) and with the cont.dat
    the run used (`contfile`: the one findcont wrote, else --contfile)."""
    ms = list(rec.data.measurement_sets) if rec is not None and rec.data is not None else list(opts.ms)
    argv = ["almarules", "image", *ms, "-o", "images", "--image", key, *_common(opts), "--extra-products"]
    if contfile or opts.contfile:
        argv += ["--contfile", contfile or opts.contfile]
    if opts.data_calibrated:
        argv.append("--data-calibrated")
    out = [Command(tool="almarules", text=shell(argv))]
    if rec is not None and rec.parameters:
        out.append(Command(tool="casa", text=tclean_call(ms, rec), note=_tclean_note(rec)))
    return out


#: tclean takes these as integers (a float imsize or niter is refused)
_INTEGERS = ("imsize", "niter", "nbin", "nterms", "growiterations")


def _value(rec: ImageRecord, name: str) -> Any:
    s = rec.parameters.get(name)
    if s is None or s.value is None:
        return None
    return int(s.value) if name in _INTEGERS else s.value


def tclean_call(ms: Sequence[str], rec: ImageRecord) -> str:
    """The tclean call that makes `rec`'s image with its final parameters."""
    threshold = rec.weblog.threshold
    args: dict[str, Any] = {
        "vis": list(ms), "imagename": rec.key, "field": rec.field, "spw": ",".join(map(str, rec.spws)),
        "specmode": "cube" if rec.specmode == "cube" else "mfs",
        "imsize": [_value(rec, "imsize")] * 2, "cell": f"{_value(rec, 'cell')}arcsec",
        "weighting": "briggs", "robust": _value(rec, "robust"), "gridder": _value(rec, "gridder"),
        "deconvolver": _value(rec, "deconvolver"), "niter": _value(rec, "niter"), "gain": _value(rec, "gain"),
        "cyclefactor": _value(rec, "cycle_factor"), "pblimit": _value(rec, "pblimit"),
        "threshold": (f"{threshold.value:.6g}{threshold.unit.replace('/beam', '')}"
                      if threshold and threshold.value is not None and threshold.unit else "0.0mJy"),
    }
    if rec.specmode == "cube" and (_value(rec, "nbin") or 1) > 1:
        args["width"] = int(_value(rec, "nbin"))
    if _value(rec, "deconvolver") == "mtmfs":
        args["nterms"] = _value(rec, "nterms")
    if _value(rec, "mask_method") == "auto-multithresh":
        args["usemask"] = "auto-multithresh"
        for name in ("sidelobethreshold", "noisethreshold", "lownoisethreshold", "negativethreshold",
                     "minbeamfrac", "growiterations", "smoothfactor", "cutthreshold"):
            if name in rec.parameters:
                args[name] = _value(rec, name)
    else:
        args["usemask"], args["pbmask"] = "pb", _value(rec, "mask_pblimit")
    args.update(pbcor=True, interactive=False)
    if rec.data is not None:
        args["datacolumn"] = "corrected" if rec.data.column == "CORRECTED_DATA" else "data"
    return "tclean(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def _tclean_note(rec: ImageRecord) -> Optional[str]:
    if rec.specmode == "cont":
        return "a cont image: give spw the cont.dat channel ranges (e.g. spw='0:10~40;80~120')"
    return None
