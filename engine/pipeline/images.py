"""``makeimages`` in a run: each image a task (`engine.pipeline.tasks`), run where the executor
says, kept when its inputs did not change, made again (with the reasons) when they did.

The state is saved after every image, so a run killed at any moment resumes with the images it
finished. The stage's score is the lowest image score (the rules' ``image.qa_score``), with each
image that is not ok as a reason and an attention item.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Optional

from almarules.engine.evaluate.decisions import Decisions
from almarules.engine.pipeline import commands
from almarules.engine.pipeline.context import FACTS, PREDRAWN
from almarules.engine.pipeline.inputs import Closure, changes, digest, image_manifest
from almarules.engine.pipeline.progress import duration
from almarules.engine.pipeline.session import RunContext
from almarules.engine.pipeline.state import Attention, ImageEntry, QAReason, StageRun, StageScore
from almarules.engine.pipeline.tasks import ImageTask, TaskResult, kept_result, run_image
from almarules.engine.stages.imaging.job import ImagingError, setting, split_key
from almarules.engine.stages.imaging.record import ImageRecord

#: plan estimate name -> (value attribute, unit it is kept in)
ESTIMATES = {"run_time": ("run_time", "s"), "size": ("size", "GB"), "sensitivity": ("sensitivity", "Jy/beam"),
             "imsize": ("imsize", None), "cell": ("cell", "arcsec")}


def estimates(dec: Decisions, key: str) -> dict[str, Optional[float]]:
    """The plan's numbers for image `key` (None where unknown before the data are imaged)."""
    out: dict[str, Optional[float]] = {}
    for name, (attr, unit) in ESTIMATES.items():
        try:
            out[name] = float(setting(dec, f"image[{key}].{attr}", unit).value)
        except (ImagingError, TypeError, ValueError):
            out[name] = None
    return out


def _line(ctx: RunContext, key: str) -> bool:
    """A cube that reads the continuum-subtracted copies (uvcontsub ran)."""
    return bool(ctx.line_ms) and split_key(key)[3] == "cube"


def _manifest(ctx: RunContext, key: str) -> tuple[dict[str, str], dict[str, str]]:
    if "closure" not in ctx.cache:
        ctx.cache["closure"] = Closure(ctx.dec, ctx.program)
    flags = ctx.flagtemplate_text if ctx.flags_applied else None
    ms = ctx.line_digests if _line(ctx, key) else ctx.ms_digests
    return image_manifest(key, ctx.cache["closure"], ms, ctx.contdat, ctx.opts.switches(), flags, _line(ctx, key))


def _task(ctx: RunContext, key: str, parts: dict[str, str]) -> ImageTask:
    ms = ctx.line_ms if _line(ctx, key) else ctx.vis_ms or ctx.opts.ms
    return ImageTask(
        key=key, rules=ctx.opts.rules, sets=ctx.opts.sets, facts=str(ctx.wd.root / FACTS), ms=ms,
        out_dir=str(ctx.wd.images), mous=ctx.opts.mous, contfile=ctx.contfile or ctx.opts.contfile,
        extra_products=True,
        memory_limit=int(ctx.opts.memory_gb * 1e9), nthreads=ctx.executor.task_threads(),
        data_calibrated=ctx.opts.data_calibrated, unscaled=ctx.unscaled, started=ctx.state.created,
        inputs=digest(parts),
        pictures=str(ctx.wd.root / PREDRAWN) if ctx.opts.weblog else None)


def _tasks(ctx: RunContext, stage: StageRun, keys: list[str]) -> list[ImageTask]:
    tasks = []
    for key in keys:
        parts, words = _manifest(ctx, key)
        old = ctx.state.images.get(key)
        if old is not None and old.inputs and old.inputs != parts:
            stage.redone[key] = changes(old.inputs, parts, old.inputs_text, words)
        kept = {f: getattr(old, f) for f in ("record", "status", "worker", "seconds", "pictures_seconds")} if old else {}
        ctx.state.images[key] = ImageEntry(key=key, stage=stage.index, inputs=parts, inputs_text=words,
                                           plan=estimates(ctx.dec, key), **kept)
        tasks.append(_task(ctx, key, parts))
    return tasks


def _start_later_images(ctx: RunContext, stage: StageRun) -> None:
    """Submit the images of the later makeimages stages (`RunContext.later_images`) that are not
    kept, so the workers never wait for a stage boundary; each stage collects its own."""
    later = [k for index, keys in ctx.later_images.items() if index > stage.index for k in keys]
    ctx.later_images = {}
    tasks = [t for t in (_task(ctx, k, _manifest(ctx, k)[0]) for k in dict.fromkeys(later))
             if not (ctx.state.images.get(t.key) and ctx.state.images[t.key].record and kept_result(t))]
    ctx.executor.start(run_image, tasks)


def _read_record(path: Optional[str]) -> Optional[ImageRecord]:
    if not path:
        return None
    try:
        return ImageRecord.model_validate_json(Path(path).read_bytes())
    except (OSError, ValueError):
        return None


def _done(ctx: RunContext, stage: StageRun, task: ImageTask, res: Optional[TaskResult],
          exc: Optional[BaseException]) -> str:
    """Record one finished task; the progress text."""
    entry = ctx.state.images[task.key]
    if exc is not None or res is None:
        entry.status, entry.record = "failed", None
        text = f"{task.key}: failed: {type(exc).__name__}: {exc}"
        ctx.state.attention.append(Attention(level="error", stage=stage.index, image=task.key, text=text))
        stage.redone.pop(task.key, None)
        return text
    entry.record = ctx.wd.rel(Path(res.record)) if res.record else None
    entry.status = res.status
    if not res.kept or entry.seconds is None:  # a kept image keeps the times of the run that made it
        entry.worker, entry.seconds, entry.pictures_seconds = res.worker, res.seconds, res.pictures_seconds
    if res.kept:
        stage.kept.append(task.key)
        stage.redone.pop(task.key, None)
        return f"{task.key}: kept (inputs unchanged), {res.status}"
    return f"{task.key}: {res.status} in {duration(res.seconds)} on {res.worker}" + (
        f" ({res.error})" if res.error else "")


def _score(ctx: RunContext, stage: StageRun, records: dict[str, ImageRecord]) -> StageScore:
    """The lowest image score, with every image that is not ok (or not green) as a reason."""
    scored = [(r.weblog.qa_score.value, k, r) for k, r in records.items()
              if r.weblog.qa_score is not None and r.weblog.qa_score.value is not None]
    reasons = []
    for k, r in records.items():
        if r.status != "ok":
            concern = "; ".join(r.concerns or [f"{r.status}: {r.error or ''}"])
            at = r.weblog.qa_score.source if r.weblog.qa_score else None
            reasons.append(QAReason(text=f"{k}: {concern}", at=at, ref=f"image[{k}].qa_score"))
            ctx.state.attention.append(Attention(level="error" if r.status == "failed" else "warning",
                                                 stage=stage.index, image=k, text=f"{k}: {concern}", at=at))
        elif r.weblog.qa_colour and r.weblog.qa_colour.value in ("red", "yellow"):
            reasons.append(QAReason(text=f"{k}: score {r.weblog.qa_score.value:.2f} {r.weblog.qa_colour.value}: "
                                    + "; ".join(r.weblog.qa_reasons), at=r.weblog.qa_score.source,
                                    ref=f"image[{k}].qa_score"))
    if not scored:
        return StageScore(source="no image has a score", reasons=reasons)
    value, key, rec = min(scored)
    colour = rec.weblog.qa_colour.value if rec.weblog.qa_colour else None
    return StageScore(value=value, colour=colour, source=f"lowest image score: {key} (image.qa_score, "
                      f"{rec.weblog.qa_score.source})", reasons=reasons)


def make_images(ctx: RunContext, stage: StageRun, keys: list[str]) -> dict[str, ImageRecord]:
    """Make (or keep) the images `keys`; fills `stage` in; returns the records of those that have one."""
    tasks = _tasks(ctx, stage, keys)
    planned = [ctx.state.images[k].plan.get("run_time") for k in keys]
    estimate = sum(p for p in planned if p) or None
    stage.estimate = estimate
    ctx.progress.stage(f"[{stage.index}] makeimages", total=len(tasks), estimate=estimate)
    ctx.stage_log(stage, f"{len(tasks)} image(s) on {ctx.executor.describe()}")
    # an image can be kept only if an earlier run recorded it (a fresh run skips the check)
    kept = {t.key: r for t in tasks if ctx.state.images[t.key].record and (r := kept_result(t)) is not None}
    todo = [t for t in tasks if t.key not in kept]
    if todo and ctx.later_images and not ctx.executor.serial:
        _start_later_images(ctx, stage)
    finished = [(t, kept[t.key], None) for t in tasks if t.key in kept]
    for done, (task, res, exc) in enumerate(itertools.chain(finished, ctx.executor.map(run_image, todo)), 1):
        text = _done(ctx, stage, task, res, exc)
        ctx.stage_log(stage, text)
        ctx.progress.item(done, text)
        ctx.wd.save_state(ctx.state)
    records = {k: r for k in keys if (r := _read_record(_abs(ctx, ctx.state.images[k].record))) is not None}
    for key in keys:
        stage.commands += commands.image_commands(ctx.opts, key, records.get(key), ctx.contfile)
        for why in stage.redone.get(key, []):
            ctx.stage_log(stage, f"{key} made again: {why}")
    stage.score = _score(ctx, stage, records)
    made = len(keys) - len(stage.kept)
    stage.notes.append(f"{made} image(s) made, {len(stage.kept)} kept from an earlier run, on {ctx.executor.describe()}")
    ctx.progress.end(f"{made} made, {len(stage.kept)} kept" + (
        f"; score {stage.score.value:.2f} {stage.score.colour}" if stage.score.value is not None else ""))
    return records


def _abs(ctx: RunContext, rel: Optional[str]) -> Optional[str]:
    return str(ctx.wd.root / rel) if rel else None
