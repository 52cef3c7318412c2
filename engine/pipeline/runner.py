"""``almarules run``: the rule set's recipe, executed stage by stage.

Each stage name maps to an implementation in `STAGES` (rule files name stages, never Python); a
stage without one is recorded as *not implemented*, never skipped in silence or faked. A stage
whose recipe condition is false is skipped with the reason. The run's state is saved after every
stage and every image, so the same command resumes a killed run, redoing only what did not finish;
an edit (cont.dat, a parameter, a rule) redoes exactly the images whose inputs it changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from almarules.engine.evaluate.api import load_dataset, load_program
from almarules.engine.evaluate.decisions import Stage as RecipeStage
from almarules.engine.facts.model import Dataset
from almarules.engine.io import write_atomic
from almarules.engine.pipeline.context import FACTS, PLAN, Workdir, locked, now, prepare
from almarules.engine.pipeline.export import exportdata
from almarules.engine.pipeline.inputs import digest, ms_digests
from almarules.engine.io.parallel import Executor
from almarules.engine.pipeline.progress import Progress, file_logger
from almarules.engine.pipeline.session import RunContext, RunOptions
from almarules.engine.pipeline.state import Attention, RunState, StageFailed, StageRun
from almarules.engine.pipeline import calsteps, contsteps, steps
from almarules.engine.plan.build import build_plan
from almarules.engine.products.contdat import read_contdat

StageImpl = Callable[[RunContext, StageRun], None]

#: The stages almarules implements, by the name a recipe gives them.
STAGES: dict[str, StageImpl] = {
    "importdata": steps.importdata,
    "makeimlist": steps.makeimlist,
    "makeimages": steps.makeimages,
    "exportdata": exportdata,
    **calsteps.STAGES,
    **contsteps.STAGES,
}

#: What is still to come for the stages the recipe names and almarules does not implement yet.
_LATER = {name: "calibration" for name in ("rawflagchans", "tsyscal", "tsysflag", "gainflag")}
_LATER.update({name: "target preparation" for name in ("mstransform", "flagtargets")})


class RunError(Exception):
    """A run that cannot start (no recipe, an unknown --from stage, ...): one line for the user."""


def recipe_of(dec) -> tuple[str, list[RecipeStage]]:
    if not dec.recipes:
        raise RunError(f"the rule set ({', '.join(dec.rules)}) has no recipe: 'almarules run' executes a recipe "
                       f"(rules/alma/cycle4/recipe.rules is one)")
    name = next(iter(dec.recipes))
    return name, dec.recipes[name]


def _facts(wd: Workdir, opts: RunOptions, old: Optional[RunState], progress: Progress,
           ms: list[tuple[str, str]]) -> tuple[Dataset, str]:
    """The dataset facts, read from the MSs, or kept from facts.json when the MSs (`ms`: their
    identities) and the intents file are those of the earlier run."""
    intents = Path(opts.intents).read_bytes().decode("utf-8", "replace") if opts.intents else None
    key = digest({"ms": ms, "intents": intents})
    path = wd.root / FACTS
    if old is not None and old.facts_inputs == key and path.is_file():
        try:
            return Dataset.model_validate_json(path.read_bytes()), key
        except ValueError:
            pass
    progress.say(f"reading the facts of {', '.join(Path(m).name for m in opts.ms)}")
    facts = load_dataset(opts.ms, opts.intents)
    write_atomic(path, facts.model_dump_json(indent=1, exclude_none=True, exclude_computed_fields=True) + "\n")
    return facts, key


def _new_state(opts: RunOptions, argv: list[str], dec, recipe: str, old: Optional[RunState]) -> RunState:
    t = now()
    return RunState(created=t, updated=t, command=argv, ms=opts.ms, rules=opts.rules, rules_sha256=dec.rules_sha256,
                    recipe=recipe, sets=opts.sets, intents=opts.intents, contfile=opts.contfile,
                    flagtemplate=opts.flagtemplate, data_calibrated=opts.data_calibrated,
                    images=old.images if old else {})


def _window(names: list[str], opts: RunOptions) -> tuple[int, int]:
    """The 1-based indices of the first and last stage to run (--from, --until: a name or an index)."""
    def find(what: str, first: bool) -> int:
        if what.isdigit() and 1 <= int(what) <= len(names):
            return int(what)
        hits = [i for i, n in enumerate(names, 1) if n == what]
        if not hits:
            raise RunError(f"no stage {what!r} in the recipe; it has: {', '.join(dict.fromkeys(names))} "
                           f"(or give its number, 1 to {len(names)})")
        return hits[0] if first else hits[-1]
    lo = find(opts.from_stage, True) if opts.from_stage else 1
    if opts.until_stage == "calibration" and "calibration" not in names:  # almarules calibrate
        cal = [i for i, n in enumerate(names, 1) if n in calsteps.STAGES]
        if not cal or "applycal" not in names:
            raise RunError("the recipe has no calibration stages (no applycal): nothing to calibrate")
        hi = max(cal)
    else:
        hi = find(opts.until_stage, False) if opts.until_stage else len(names)
    if lo > hi:
        raise RunError(f"--from {opts.from_stage} comes after --until {opts.until_stage}")
    return lo, hi


def _run_stage(ctx: RunContext, stage: StageRun, rs: RecipeStage, inside: bool) -> None:
    if rs.run is False:
        stage.status, stage.why = "skipped", stage.condition.removeprefix("skipped: ")
        return
    impl = STAGES.get(stage.name)
    if impl is None:
        stage.status = "not_implemented"
        stage.why = f"a {_LATER[stage.name]} stage, not implemented yet" if stage.name in _LATER else (
            "almarules has no such stage")
        return
    if not inside:
        if stage.name == "makeimlist":  # cheap and pure: later stages need its list
            impl(ctx, stage)
        stage.status, stage.why = "pending", "outside --from/--until"
        return
    stage.status, stage.started = "running", now()
    ctx.wd.save_state(ctx.state)
    t0 = time.perf_counter()
    try:
        impl(ctx, stage)
        if stage.status == "running":  # an implementation may decide it has nothing to do (skipped)
            stage.status = "done"
    except (KeyboardInterrupt, SystemExit):
        stage.status, stage.error = "failed", "interrupted"
        raise
    except (OSError, ValueError, RuntimeError, ConnectionError) as exc:
        why = str(exc) if isinstance(exc, StageFailed) else f"{type(exc).__name__}: {exc}"
        stage.status, stage.error = "failed", why
        ctx.state.attention.append(Attention(level="error", stage=stage.index, text=f"{stage.name} failed: {exc}"))
        ctx.progress.say(f"ERROR [{stage.index}] {stage.name} failed: {exc}")
    finally:
        stage.ended, stage.duration = now(), time.perf_counter() - t0


def images_by_stage(recipe: list[RecipeStage], keys: list[str], lo: int, hi: int) -> dict[int, list[str]]:
    """The images each makeimages stage in the window will make (its preceding makeimlist's)."""
    out: dict[int, list[str]] = {}
    imlist: list[str] = []
    for i, rs in enumerate(recipe, 1):
        if rs.run is False:
            continue
        if rs.name == "makeimlist":
            imlist = steps.select_images(list(keys), [str(a) for a in rs.args])
        elif rs.name == "makeimages" and lo <= i <= hi:
            out[i] = list(imlist)
    return out


def _stage_line(stage: StageRun) -> str:
    """The line a finished stage leaves on the terminal."""
    label = f"[{stage.index}] {stage.name}" + (f"({', '.join(stage.args)})" if stage.args else "")
    if stage.status == "done":
        score = (f", score {stage.score.value:.2f} {stage.score.colour}" if stage.score.value is not None else "")
        return f"{label}: done in {stage.duration or 0:.1f} s{score}"
    if stage.status == "failed":
        return f"ERROR {label}: failed: {stage.error}"
    if stage.status == "not_implemented":
        return f"{label}: not implemented ({stage.why})"
    return f"{label}: {stage.status}" + (f" ({stage.why})" if stage.why else "")


def _attention_summary(state: RunState) -> None:
    """The run-level attention items: stages not implemented (one line), the data uncalibrated or
    without a flux scale."""
    missing = [s for s in state.stages if s.status == "not_implemented"]
    if missing:
        names = ", ".join(dict.fromkeys(s.name for s in missing))
        state.attention.insert(0, Attention(level="warning", stage=missing[0].index,
                                            text=f"{len(missing)} stage(s) of the recipe are not implemented yet "
                                                 f"and did not run: {names}"))
    applied = [s for s in state.stages if s.name == "applycal"]
    raw = sorted(k for k, e in state.images.items() if e.status == "uncalibrated")
    unscaled = sorted(k for k, e in state.images.items() if e.status == "unscaled")
    if unscaled:
        state.attention.insert(0, Attention(level="error", stage=applied[0].index if applied else None,
                                            text=f"{len(unscaled)} image(s) on a relative flux scale (the "
                                                 f"calibration has no flux scale: see gfluxscale): "
                                                 f"{', '.join(unscaled)}"))
    if raw:
        why = ("applycal " + applied[0].status + (f": {applied[0].error}" if applied[0].error else "")
               if applied else "the recipe has no applycal")
        state.attention.insert(0, Attention(level="error", stage=applied[0].index if applied else None,
                                            text=f"{len(raw)} image(s) made from uncalibrated data (raw DATA; "
                                                 f"{why}): {', '.join(raw)}"))
    elif state.images and not state.data_calibrated and not any(s.status == "done" for s in applied):
        state.attention.append(Attention(level="notice", stage=applied[0].index if applied else None,
                                         text="the images use the CORRECTED_DATA already in the MS: calibrated "
                                              "outside this run (its applycal did not run here)"))
    for st in state.stages:
        sc = st.score
        if st.status == "done" and st.name != "makeimages" and sc.colour in ("red", "yellow"):
            why = "; ".join(r.text for r in sc.reasons) or sc.source
            state.attention.append(Attention(level="error" if sc.colour == "red" else "warning", stage=st.index,
                                             at=sc.reasons[0].at if sc.reasons else None,
                                             text=f"{st.name} score {sc.value:.2f} ({sc.colour}): {why}"))
    flagging = [s for s in state.stages if s.name in ("flagdata", "flagtargets")]
    if state.flagtemplate and not any(s.status == "done" for s in flagging):
        state.attention.append(Attention(level="warning", stage=flagging[0].index if flagging else None,
                                         text=f"the flag template {Path(state.flagtemplate).name} was not applied "
                                              f"(flagdata did not run): it is only delivered with the products"))
    rank = {"error": 0, "warning": 1, "notice": 2}
    state.attention.sort(key=lambda a: rank[a.level])


def run(opts: RunOptions, argv: list[str], stream=None) -> RunState:
    """Execute the recipe (module docstring); returns the final state."""
    import sys

    wd = prepare(Path(opts.workdir))
    with locked(wd):
        progress = Progress(file_logger(wd.logs / "run.log"), quiet=opts.quiet, stream=stream or sys.stderr)
        if any(wd.images.iterdir()):  # the imaging modules (and astropy.io.fits) only when there are images
            from almarules.engine.stages.imaging.writer import leftovers

            for path, why in leftovers(wd.images):
                path.unlink(missing_ok=True)
                progress.say(f"removed {path.name}: {why}")
        old = wd.load_state()
        program = load_program(opts.rules)
        ms = ms_digests([Path(m) for m in opts.ms])
        facts, facts_key = _facts(wd, opts, old, progress, ms)
        plan = build_plan(program, facts, ", ".join(opts.ms), opts.sets)
        write_atomic(wd.root / PLAN, plan.to_json())
        name, recipe = recipe_of(plan.decisions)
        state = _new_state(opts, argv, plan.decisions, name, old)
        state.facts_inputs = facts_key
        listed = set(plan.decisions.entities.get("image", []))
        state.images = {k: e for k, e in state.images.items() if k in listed}  # dropped by an edit: gone
        executor = Executor(opts.workers, opts.scheduler, int(opts.memory_gb * 1e9), opts.threads)
        state.workers = executor.describe()
        ctx = RunContext(opts, wd, state, program, facts, plan, executor, progress,
                         contdat=read_contdat(opts.contfile) if opts.contfile else None,
                         flagtemplate_text=Path(opts.flagtemplate).read_text() if opts.flagtemplate else None,
                         ms_digests=ms)
        lo, hi = _window([s.name for s in recipe], opts)
        ctx.later_images = images_by_stage(recipe, plan.decisions.entities.get("image", []), lo, hi)
        try:
            for i, (rs, sp) in enumerate(zip(recipe, plan.recipe, strict=True), 1):
                stage = StageRun(index=i, name=rs.name, args=[str(a) for a in rs.args], at=rs.at, condition=sp.why)
                state.stages.append(stage)
                _run_stage(ctx, stage, rs, lo <= i <= hi)
                progress.say(_stage_line(stage))
                wd.save_state(state)
            state.finished = hi == len(recipe)
            state.workers = executor.describe()
        except KeyboardInterrupt:
            state.interrupted = True
            raise
        finally:
            executor.close()
            _attention_summary(state)
            wd.save_state(state)
        if opts.weblog:  # still under the lock: a second run never sees a weblog half swapped
            from almarules.engine.pipeline.weblog.render import write_weblog

            write_weblog(wd.root, state, progress=None if opts.quiet else progress.say)
    return state


__all__ = ["run", "RunError", "STAGES", "recipe_of", "images_by_stage"]
