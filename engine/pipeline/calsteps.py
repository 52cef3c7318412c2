"""The calibration stages of a run (`engine.stages.calibration`), as recipe stages: flagdata,
lowgainflag, refant, setjy, bandpass, spwphaseup, gfluxscale, timegaincal, applycal,
correctedampflag; and the checks that are real but have nothing to do on data without what they
need (fluxcalflag, antpos, wvrgcalflag).

The first calibration stage of a run makes the working copies of the input MSs in
WORKDIR/calibrated (the inputs are never written) and restores their input flags; the stages then
share one `CalSession`. After applycal, the images read the working copies' CORRECTED_DATA, and
a digest of the calibration (solutions and flags) joins every image's inputs: a re-run whose
calibration comes out the same keeps the images.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from almarules.engine.io import write_atomic
from almarules.engine.pipeline import calcommands
from almarules.engine.pipeline.session import RunContext
from almarules.engine.pipeline.state import Attention, StageFailed, StageRun
from almarules.engine.pipeline.scoring import rule_score
from almarules.engine.stages.calibration import apply_stages, flag_stages, solve_stages
from almarules.engine.stages.calibration.session import CalibrationError, CalSession, Outcome, read_ms_info
from almarules.engine.stages.calibration.visdata import CalDataError
from almarules.engine.stages.calibration.workcopy import copy_path, make_copy

SESSION = "calibration"
DONE = "calibrated/calibration.json"


def session(ctx: RunContext) -> CalSession:
    """The run's calibration session, made (with the working copies) on first use."""
    s = ctx.cache.get(SESSION)
    if s is None:
        facts = ctx.facts.model_copy(deep=True)
        s = CalSession(ctx.program, facts, ctx.opts.sets, ctx.wd.root, workers=ctx.executor.local_threads())
        for src, (_, identity) in zip(ctx.opts.ms, ctx.ms_digests, strict=True):
            ctx.progress.say(f"working copy of {Path(src).name} in {ctx.wd.rel(copy_path(ctx.wd.root, Path(src)).parent)}/")
            dest = make_copy(Path(src), copy_path(ctx.wd.root, Path(src)), identity)
            s.ms.append(read_ms_info(Path(src), dest))
        ctx.cache[SESSION] = s
    return s


def _record(ctx: RunContext, stage: StageRun, out: Outcome, s: CalSession) -> None:
    stage.items = out.items
    stage.notes.extend(out.notes)
    if out.tables:
        out.numbers["tables"] = [ctx.wd.rel(Path(t)) for t in out.tables]
    stage.numbers = json.loads(json.dumps(out.numbers, default=float))
    if out.tables:
        stage.notes.append("calibration tables (CASA format): " + ", ".join(ctx.wd.rel(Path(t)) for t in out.tables))
    for w in out.warnings:
        stage.notes.append(f"warning: {w}")
        ctx.state.attention.append(Attention(level="warning", stage=stage.index, text=f"{stage.name}: {w}"))
    if out.score:
        stage.score = rule_score(s.dec, out.score, out.colour or "")
        for path in out.reasons_from:  # a score that is the lowest of others: their reasons
            for r in rule_score(s.dec, path, "").reasons:
                r.text = f"{path.split('].')[0].split('[')[1]}: {r.text}"
                stage.score.reasons.append(r)
    tables = ctx.cache.setdefault("cal_tables", [])
    tables.extend(t for t in out.tables if t not in tables)
    stage.commands = calcommands.commands(stage.name, s, tables, ctx.opts.fluxfile)
    ctx.cache.setdefault("cal_products", {}).update(out.products)
    for line in stage.notes:
        ctx.stage_log(stage, line)


def _stage(fn: Callable[[CalSession, RunContext], Outcome]) -> Callable[[RunContext, StageRun], None]:
    def impl(ctx: RunContext, stage: StageRun) -> None:
        if ctx.opts.data_calibrated:
            stage.status, stage.why = "skipped", "--data-calibrated: the DATA column holds calibrated visibilities"
            return
        s = session(ctx)
        try:
            out = fn(s, ctx)
        except (CalibrationError, CalDataError) as exc:
            raise StageFailed(str(exc)) from None
        _record(ctx, stage, out, s)
        if out.skipped:
            stage.status, stage.why = "skipped", out.skipped
    impl.__name__ = fn.__name__
    impl.__doc__ = fn.__doc__
    return impl


def _epoch(ctx: RunContext) -> float:
    starts = [e.start for e in ctx.facts.ebs or [] if e.start is not None]
    return min(starts) / 86400.0 if starts else 0.0


@_stage
def flagdata(s: CalSession, ctx: RunContext) -> Outcome:
    """Deterministic flagging and the user's flag template (flag_stages.flagdata)."""
    out = flag_stages.flagdata(s, ctx.flagtemplate_text, ctx.opts.flagtemplate)
    ctx.flags_applied = bool(ctx.opts.flagtemplate)
    if ctx.opts.fluxfile:
        out.products[ctx.opts.fluxfile] = "flux.csv"
    return out


@_stage
def setjy(s: CalSession, ctx: RunContext) -> Outcome:
    return apply_stages.setjy(s, ctx.opts.fluxfile, _epoch(ctx))


#: the stages that need nothing of the run but the session
_SESSION_ONLY = {"lowgainflag": flag_stages.lowgainflag, "refant": solve_stages.refant,
                 "bandpass": solve_stages.bandpass, "spwphaseup": solve_stages.spwphaseup,
                 "gfluxscale": solve_stages.gfluxscale, "timegaincal": solve_stages.timegaincal}


def _session_only(fn: Callable[[CalSession], Outcome]) -> Callable[[RunContext, StageRun], None]:
    def call(s: CalSession, ctx: RunContext) -> Outcome:
        return fn(s)
    call.__name__, call.__doc__ = fn.__name__, fn.__doc__
    return _stage(call)


@_stage
def applycal(s: CalSession, ctx: RunContext) -> Outcome:
    """Apply, then point the images at the working copies (with the calibration's digest)."""
    out = apply_stages.applycal(s)
    inputs, digest, unscaled = list(ctx.ms_digests), calibration_digest(s), s.unscaled()
    use_calibrated(ctx, [str(i.path) for i in s.ms], digest, unscaled)
    write_atomic(ctx.wd.root / DONE, json.dumps({"ms": [str(i.path) for i in s.ms], "sources": ctx.opts.ms,
                                                 "identities": inputs, "digest": digest, "unscaled": unscaled}) + "\n")
    if unscaled:
        out.warnings.append(f"{unscaled}: every image will be on a relative flux scale (shown as unscaled)")
    return out


@_stage
def correctedampflag(s: CalSession, ctx: RunContext) -> Outcome:
    return flag_stages.correctedampflag(s, ctx.wd.root / "calibrated")


@_stage
def fluxcalflag(s: CalSession, ctx: RunContext) -> Outcome:
    """Lines of solar-system flux calibrators (none among catalogue calibrators) are flagged;
    almarules supports no solar-system calibrator, so there is never anything to flag."""
    from almarules.engine.stages.calibration.fluxmodels import is_solar_system

    out = Outcome(items=s.fields_with("AMPLITUDE"))
    planets = [f for f in out.items if is_solar_system(f)]
    if planets:
        out.warnings.append(f"solar-system flux calibrator(s) {', '.join(planets)}: their line flagging is not "
                            f"supported")
    else:
        out.notes.append(f"no solar-system flux calibrator ({', '.join(out.items) or 'none'}): no lines to flag")
    return out


@_stage
def wvrgcalflag(s: CalSession, ctx: RunContext) -> Outcome:
    """The WVR correction needs water-vapour radiometer data (4-channel WVR windows)."""
    out = Outcome()
    for info in s.ms:
        wvr = [spw for spw, st in info.setups.items() if st.freq.size == 4 and 180e9 < st.centre < 200e9]
        if wvr:
            out.warnings.append(f"{info.source.name}: WVR data in spw {wvr}: the WVR correction is not implemented; "
                                f"the phases are not corrected for water vapour")
        out.items.append(info.source.name)
    if not out.warnings:
        out.skipped = "no WVR spectral window (4 channels near 183 GHz) in the data"
    return out


@_stage
def antpos(s: CalSession, ctx: RunContext) -> Outcome:
    """Antenna position corrections come from a file the observatory gives; without one there is
    nothing to correct."""
    return Outcome(items=[i.source.name for i in s.ms], skipped="no antenna position corrections given; almarules "
                   "takes none yet, so the ANTENNA tables' positions are used")


def calibration_digest(s: CalSession) -> str:
    """SHA-256 (first 16 hex) of every solution, model and the reference antennas (the solves
    are bit-reproducible: the same inputs give the same digest)."""
    h = hashlib.sha256()
    for key in sorted(s.solutions):
        sol = s.solutions[key]
        h.update(repr(key).encode())
        arrays = ([sol.bandpass.solution] if sol.bandpass else []) + [
            t.gains for d in (sol.phase_int, sol.amp_scan, sol.phase_scan) for _, t in sorted(d.items())]
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(sorted((f"{k}", v[:3]) for k, v in s.models.items()), default=str).encode())
    h.update(json.dumps(s.refants).encode())
    return h.hexdigest()[:16]


def use_calibrated(ctx: RunContext, copies: list[str], cal_digest: str, unscaled: Optional[str] = None) -> None:
    """Point the images at the calibrated working copies; their identity carries the calibration
    (`unscaled`: why it has no flux scale)."""
    ctx.vis_ms, ctx.unscaled = copies, unscaled
    ctx.ms_digests = [(c, f"{ident}+cal:{cal_digest}") for c, (_, ident) in zip(copies, ctx.ms_digests, strict=True)]
    ctx.cache.pop("closure", None)


def adopt_earlier(ctx: RunContext, stage: StageRun) -> None:
    """Before images, when this run did not calibrate (its calibration stages are outside
    --from/--until): image the working copies an earlier run of this WORKDIR calibrated, when
    they are for these inputs."""
    if ctx.vis_ms is not None or SESSION in ctx.cache:
        return
    done = earlier_calibration(ctx)
    if done is not None:
        use_calibrated(ctx, done["ms"], done["digest"], done.get("unscaled"))
        stage.notes.append("the working copies calibrated by an earlier run of this WORKDIR are used")


def earlier_calibration(ctx: RunContext) -> Optional[dict]:
    """The calibration an earlier run finished in this WORKDIR for these inputs (used when the
    calibration stages are outside --from/--until), or None."""
    try:
        done = json.loads((ctx.wd.root / DONE).read_text())
    except (OSError, ValueError):
        return None
    if done.get("sources") != ctx.opts.ms or [list(x) for x in done.get("identities", [])] != [list(x) for x in ctx.ms_digests]:
        return None
    if not all(Path(m).is_dir() for m in done.get("ms", [])):
        return None
    return done


STAGES: dict[str, Callable[[RunContext, StageRun], None]] = {
    "flagdata": flagdata, "setjy": setjy, "applycal": applycal, "correctedampflag": correctedampflag,
    "fluxcalflag": fluxcalflag, "wvrgcalflag": wvrgcalflag, "antpos": antpos,
    **{name: _session_only(fn) for name, fn in _SESSION_ONLY.items()},
}
