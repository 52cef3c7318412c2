"""The stages almarules implements, as the recipe names them: ``importdata``, ``makeimlist`` and
``makeimages`` (``exportdata`` is in `engine.pipeline.export`, the calibration stages in
`engine.pipeline.calsteps`). Each takes the run's context and
its `StageRun` and fills in the record: items, score (from the rules), notes, commands.
"""

from __future__ import annotations

from almarules.engine.facts.model import SPECMODES
from almarules.engine.pipeline import calsteps, commands, contsteps
from almarules.engine.pipeline.images import make_images
from almarules.engine.pipeline.scoring import rule_score
from almarules.engine.pipeline.session import RunContext
from almarules.engine.pipeline.state import Attention, StageRun
from almarules.engine.stages.imaging.job import split_key



def importdata(ctx: RunContext, stage: StageRun) -> None:
    """The facts of the dataset (read once per run, before the stages) and the importdata score."""
    f = ctx.facts
    stage.items = [str(m) for m in ctx.opts.ms]
    stage.score = rule_score(ctx.dec, "dataset.importdata_score", "dataset.importdata_colour")
    stage.notes.append(f"{len(f.ebs or [])} execution block(s), {len(f.fields or [])} field(s), "
                       f"{len(f.spws or [])} spw(s), {len(f.antennas or [])} antennas, {len(f.scans or [])} scans")
    if ctx.opts.intents:
        stage.notes.append(f"intents declared by {ctx.opts.intents} (the MS has none of its own)")
    stage.notes.append("the input Measurement Sets are read, never modified")
    stage.commands = commands.facts_commands(ctx.opts)
    ctx.stage_log(stage, stage.notes[0])


def select_images(keys: list[str], args: list[str]) -> list[str]:
    """The images of a ``makeimlist(ARGS)``: intents (``PHASE, BANDPASS, CHECK``) pick those
    intents' images; specmodes (``mfs``, ``cont``, ``cube``) pick the TARGET images of that
    specmode; no arguments, every image."""
    if not args:
        return list(keys)
    modes = [a for a in args if a in SPECMODES]
    intents = [a for a in args if a not in SPECMODES]
    chosen = []
    for k in keys:
        _f, intent, _s, specmode = split_key(k)
        if intent in intents or (modes and intent == "TARGET" and specmode in modes):
            chosen.append(k)
    return chosen


def makeimlist(ctx: RunContext, stage: StageRun) -> None:
    """The images of this part of the recipe, from the imaging list the rules give after the
    product-size cascade."""
    keys = list(ctx.dec.entities.get("image", []))
    ctx.imlist = select_images(keys, stage.args)
    stage.items = list(ctx.imlist)
    what = ", ".join(stage.args) or "all"
    stage.notes.append(f"{len(ctx.imlist)} image(s) for {what}: " + (", ".join(ctx.imlist) or "none"))
    for c in ctx.dec.cascades:
        if c.status == "still exceeded":
            stage.notes.append(f"cascade {c.name} gave up: limits still exceeded after every step ({c.at})")
            ctx.state.attention.append(Attention(level="error", stage=stage.index, at=c.at,
                                                 text=f"cascade {c.name}: limits still exceeded after every step"))
    stage.commands = commands.imlist_commands(ctx.opts, stage.args)
    ctx.stage_log(stage, stage.notes[0])


def makeimages(ctx: RunContext, stage: StageRun) -> None:
    """The images of the latest ``makeimlist``, as tasks (`engine.pipeline.images`)."""
    keys = list(ctx.imlist)
    stage.items = keys
    calsteps.adopt_earlier(ctx, stage)
    contsteps.adopt_earlier(ctx, stage)
    if not keys:
        stage.notes.append("no images: the preceding makeimlist selected none")
        ctx.stage_log(stage, stage.notes[0])
        return
    contsteps.check_continuum_model(ctx, stage, make_images(ctx, stage, keys))
