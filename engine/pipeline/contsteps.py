"""The continuum stages of a run (issue 15): findcont (line-free channels per field and spw of the
target cubes, written as WORKDIR/cont.dat), uvcontfit (done by uvcontsub, in the same pass) and
uvcontsub (the continuum-subtracted copies WORKDIR/line/<ms> that the cubes read).

findcont takes a field/spw's ranges, in this order, from the user's ``--contfile``, from an
earlier WORKDIR/cont.dat (a user may have edited it: the edit stands), and only otherwise searches
a coarse dirty cube (`engine.stages.continuum`). The merged selection is written to
WORKDIR/cont.dat (only when it changed) and is the cont.dat every later image of the run reads,
so an image depends on exactly its field/spw's ranges (`engine.pipeline.inputs`): an edit redoes
those images and no other. To search a field/spw again, delete its block (or the file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from almarules.engine.evaluate import api
from almarules.engine.evaluate.decisions import LazyDecisions
from almarules.engine.facts.model import ContinuumFacts
from almarules.engine.pipeline import calsteps
from almarules.engine.pipeline.scoring import rule_score
from almarules.engine.pipeline.session import RunContext
from almarules.engine.pipeline.state import Attention, Command, StageFailed, StageRun
from almarules.engine.products.contdat import (
    ContDat, ContDatError, format_contdat, lookup, read_contdat, write_contdat)
from almarules.engine.stages.calibration.workcopy import current_copy
from almarules.engine.stages.imaging.job import ImagingError, setting, split_key

if TYPE_CHECKING:  # the continuum stages' modules (and the imaging ones they use) load when they run
    from almarules.engine.stages.continuum.cube import CoarseSetup
    from almarules.engine.stages.continuum.findcont import SearchParams

CONTDAT = "cont.dat"
SPECTRA = "findcont"  # WORKDIR/findcont/<field>.spw<N>.json: the weblog's spectra


def cube_pairs(ctx: RunContext) -> dict[tuple[str, int], str]:
    """(field, spw) of each target cube of the imaging list -> the first such image's key."""
    out: dict[tuple[str, int], str] = {}
    for key in ctx.dec.entities.get("image", []):
        field, intent, spws, specmode = split_key(key)
        if intent == "TARGET" and specmode == "cube":
            for spw in spws:
                out.setdefault((field, int(spw)), key)
    return out


def findcont_setup(dec, key: str) -> tuple[CoarseSetup, SearchParams]:
    """The coarse cube's set-up and the search's thresholds of image `key` (rules: image.findcont_*,
    continuum.rules; the dish from dataset.dish_min)."""
    from almarules.engine.stages.continuum.cube import CoarseSetup
    from almarules.engine.stages.continuum.findcont import SearchParams

    p = f"image[{key}]"

    def num(name: str, unit: Optional[str] = None) -> float:
        return float(setting(dec, f"{p}.{name}", unit).value)

    try:
        dish: Optional[float] = float(setting(dec, "dataset.dish_min", "m").value)
    except ImagingError:
        dish = None
    setup = CoarseSetup(cell_arcsec=num("findcont_cell", "arcsec"), imsize=int(num("findcont_imsize")),
                        robust=num("findcont_robust"), taper_arcsec=num("findcont_taper", "arcsec"),
                        pb_model=str(setting(dec, f"{p}.pb_model").value), dish_m=dish,
                        smearing=num("findcont_smearing"))
    params = SearchParams(*(num(f"findcont_{n}") for n in ("mom0_mad", "peak_mad", "min_island", "pb_fallback",
                                                            "quiet_fraction", "lower_factor", "trim", "allcont",
                                                            "lowbandwidth", "peak_factor")))
    return setup, params


def _earlier(ctx: RunContext) -> Optional[ContDat]:
    path = ctx.wd.root / CONTDAT
    if not path.exists():
        return None
    try:
        return read_contdat(path)
    except ContDatError as exc:  # an edit that broke the file is the user's to fix: say where
        raise StageFailed(str(exc)) from None


def findcont(ctx: RunContext, stage: StageRun) -> None:
    """Continuum ranges of every target cube's field and spw (module doc)."""
    from almarules.engine.stages.continuum.findcont import save_spectrum, search

    calsteps.adopt_earlier(ctx, stage)  # run alone (--from findcont): the data an earlier run calibrated
    pairs = cube_pairs(ctx)
    given, earlier = read_contdat(ctx.opts.contfile) if ctx.opts.contfile else None, _earlier(ctx)
    merged: dict[str, dict[int, object]] = {}
    counts = dict(searched=0, with_ranges=0, allcont=0, lowbandwidth=0)
    say: Callable[[str], None] = ctx.progress.say
    for (field, spw), key in pairs.items():
        counts["searched"] += 1
        sel, where = None, ""
        for source, name in ((given, ctx.opts.contfile), (earlier, f"{CONTDAT} of an earlier run (edits stand)")):
            sel = lookup(source, field, spw) if source is not None else None
            if sel is not None:
                where = f"from {name}"
                break
        if sel is None:
            setup, params = findcont_setup(ctx.dec, key)
            found = search(ctx.vis_ms or ctx.opts.ms, field, spw, setup, params,
                           nthreads=ctx.executor.task_threads(), memory_limit=int(ctx.opts.memory_gb * 1e9), say=say)
            sel = found.selection
            (ctx.wd.root / SPECTRA).mkdir(exist_ok=True)
            save_spectrum(ctx.wd.root / SPECTRA / f"{field}.spw{spw}.json", found)
            stage.notes.append(found.summary() + f" (coarse cube {setup.imsize} pixels of {setup.cell_arcsec:.3g} "
                               f"arcsec, taper {setup.taper_arcsec:.3g} arcsec; {ctx.dec.value(f'image[{key}].findcont_cell').at})")
            where = "found"
        else:
            stage.notes.append(f"{field} spw {spw}: {len(sel.ranges)} range(s) {where}")
        merged.setdefault(field, {})[spw] = sel
        counts["with_ranges"] += int(bool(sel.ranges))
        counts["allcont"] += int("ALLCONT" in sel.flags)
        counts["lowbandwidth"] += int("LOWBANDWIDTH" in sel.flags)
        stage.items.append(f"{field} spw {spw}")
        if not sel.ranges:
            ctx.state.attention.append(Attention(level="warning", stage=stage.index,
                                                 text=f"findcont: {field} spw {spw} has no line-free channel ({where})"))
    contdat = _merge(given, earlier, merged)
    path = ctx.wd.root / CONTDAT
    text = format_contdat(contdat)
    if not path.exists() or path.read_text() != text:
        write_contdat(path, contdat)
        stage.notes.append(f"wrote {CONTDAT} ({len(pairs)} field/spw pair(s)); edit it and run again to change "
                           f"the ranges: only the images of the edited field/spw are made again")
    ctx.contdat, ctx.contfile = contdat, str(path)
    facts = ctx.facts.model_copy(deep=True)
    facts.continuum = ContinuumFacts(**counts)
    stage.numbers = {"pairs": counts, "contdat": ctx.wd.rel(path)}
    stage.score = rule_score(LazyDecisions(api.run(ctx.program, facts, list(ctx.opts.sets), "findcont")),
                             "dataset.findcont_score", "dataset.findcont_colour")
    for line in stage.notes:
        ctx.stage_log(stage, line)


def adopt_earlier(ctx: RunContext, stage: StageRun) -> None:
    """Before images, for what this run's continuum stages did not do (outside --from/--until):
    the WORKDIR/cont.dat an earlier findcont wrote (when no --contfile is given), and the line
    copies an earlier uvcontsub made (`adopt_line`)."""
    path = ctx.wd.root / CONTDAT
    if ctx.contfile is None and not ctx.opts.contfile and path.exists():
        ctx.contdat, ctx.contfile = _earlier(ctx), str(path)
        stage.notes.append(f"the images read {CONTDAT}, written by an earlier run's findcont (edits stand)")
    adopt_line(ctx, stage)


def _merge(given: Optional[ContDat], earlier: Optional[ContDat], merged: dict) -> ContDat:
    """The run's cont.dat: every block of the given and earlier files (the given first), with the
    searched pairs' selections."""
    fields: dict[str, dict] = {}
    for source in (given, earlier):
        for name, spws in (source.fields.items() if source is not None else ()):
            for spw, sel in spws.items():
                fields.setdefault(name, {}).setdefault(spw, sel)
    for name, spws in merged.items():
        for spw, sel in spws.items():
            fields.setdefault(name, {})[spw] = sel
    return ContDat(fields=fields)


LINE = "line"  # WORKDIR/line/<ms>: the continuum-subtracted copies


def uvcontfit(ctx: RunContext, stage: StageRun) -> None:
    """The fit is made by uvcontsub, in the same pass over the data as the subtraction."""
    stage.status, stage.why = "skipped", "uvcontsub fits and subtracts the continuum in one pass over the data"


def uvcontsub(ctx: RunContext, stage: StageRun) -> None:
    """The line copies of the target cubes' MSs (`engine.stages.continuum.contsub`)."""
    from almarules.engine.stages.continuum.contsub import line_copy

    pairs = cube_pairs(ctx)
    fields = list(dict.fromkeys(f for f, _ in pairs))
    if not fields:
        stage.status, stage.why = "skipped", "no target cube in the imaging list"
        return
    calsteps.adopt_earlier(ctx, stage)  # run alone (--from uvcontsub): the data an earlier run calibrated
    adopt_earlier(ctx, stage)
    if ctx.contdat is None:
        stage.status, stage.why = "skipped", "no cont.dat (findcont did not run and none was given): cubes keep their continuum"
        ctx.state.attention.append(Attention(level="warning", stage=stage.index,
                                             text="uvcontsub: no cont.dat: the cubes hold the continuum"))
        return
    order = uvcontsub_order(ctx.dec)
    copies = line_copies(ctx.wd.root, ctx.vis_ms or list(ctx.opts.ms), ctx.ms_digests, ctx.contdat, pairs, order)
    for src, dest, identity, view in copies:
        rep = line_copy(Path(src), Path(dest), identity, fields, ctx.contdat, order, ctx.executor.local_threads())
        if rep.column:
            stage.notes += [f"{rep.ms}: {d} ({rep.column}, order {order})" for d in rep.done]
            if rep.failed:
                stage.notes.append(f"{rep.ms}: {rep.failed} row/correlation pairs had too few fit channels: flagged")
            for w in rep.without_ranges:
                text = f"{rep.ms} {w}: no cont.dat ranges: its cube keeps the continuum"
                stage.notes.append(text)
                ctx.state.attention.append(Attention(level="warning", stage=stage.index, text=f"uvcontsub: {text}"))
        else:
            stage.notes.append(f"{rep.ms}: line copy {ctx.wd.rel(Path(dest))} already up to date (same calibration, "
                               f"cont.dat ranges and order)")
        stage.items.append(rep.ms)
        stage.commands += [Command(tool="casa", text=f"uvcontsub(vis={str(src)!r}, outputvis={str(dest)!r}, "
                                   f"field={name!r}, fitspec={spec!r}, fitorder={order}, datacolumn='corrected')",
                                   note="CASA writes the line data to DATA of a new MS; almarules to a copy's "
                                        "CORRECTED_DATA. Rows with too few fit channels: CASA lowers the order "
                                        "(none left: unsubtracted), almarules flags them")
                           for name, spec in rep.fitspec.items()]
    _use_line(ctx, copies)
    stage.notes.append(f"the cubes read the continuum-subtracted copies in {LINE}/ ({dataset_rule(ctx)})")
    unsubtracted = [f"{f} spw {s}" for f, s in pairs if not getattr(lookup(ctx.contdat, f, s), "ranges", None)]
    facts = ctx.facts.model_copy(deep=True)
    facts.continuum = ContinuumFacts(unsubtracted=len(unsubtracted))
    stage.numbers = {"unsubtracted": unsubtracted, "line_ms": [ctx.wd.rel(Path(m)) for m in ctx.line_ms]}
    stage.score = rule_score(LazyDecisions(api.run(ctx.program, facts, list(ctx.opts.sets), "uvcontsub")),
                             "dataset.uvcontsub_score", "dataset.uvcontsub_colour")
    for line in stage.notes:
        ctx.stage_log(stage, line)


def uvcontsub_order(dec) -> int:
    """The polynomial order of uvcontsub (rules: dataset.uvcontsub_order)."""
    return int(setting(dec, "dataset.uvcontsub_order").value)


def line_copies(workdir: Path, sources: list[str], digests: list[tuple[str, str]], contdat: ContDat,
                pairs: dict[tuple[str, int], str], order: int) -> list[tuple[str, str, str, str]]:
    """(source, line copy path, the copy's identity, the images' view of it) per MS: the copy's
    identity carries the calibrated MS's identity, every target pair's cont.dat ranges and the
    order (any change makes the copy again); the view, which enters the cubes' inputs, carries
    the MS and the order only (each cube adds its own field/spw's ranges: inputs.image_manifest)."""
    ranges = {f"{f}.{s}": (lookup(contdat, f, s).model_dump(mode="json") if lookup(contdat, f, s) else None)
              for f, s in pairs}
    key = hashlib.sha256(json.dumps({"ranges": ranges, "order": order}, sort_keys=True).encode()).hexdigest()[:16]
    return [(src, str(Path(workdir) / LINE / Path(src).name), f"{ident}+contsub:{key}", f"{ident}+contsub:order {order}")
            for src, (_, ident) in zip(sources, digests, strict=True)]


def adopt_line(ctx: RunContext, stage: StageRun) -> None:
    """Before images, when this run's uvcontsub did not run: the line copies an earlier run made
    for the same calibrated data, cont.dat ranges and order."""
    pairs = cube_pairs(ctx)
    if ctx.line_ms is not None or ctx.contdat is None or not pairs:
        return
    copies = line_copies(ctx.wd.root, ctx.vis_ms or list(ctx.opts.ms), ctx.ms_digests, ctx.contdat, pairs,
                         uvcontsub_order(ctx.dec))
    if all(current_copy(Path(dest), Path(src), identity) for src, dest, identity, _ in copies):
        _use_line(ctx, copies)
        stage.notes.append(f"the cubes read the continuum-subtracted copies an earlier run made in {LINE}/")


def _use_line(ctx: RunContext, copies: list[tuple[str, str, str, str]]) -> None:
    """The cubes read these line copies (`line_copies`), with their views as their identities."""
    ctx.line_ms, ctx.line_digests = [c[1] for c in copies], [(c[1], c[3]) for c in copies]


def check_continuum_model(ctx: RunContext, stage: StageRun, records: dict) -> None:
    """After target cont images: the continuum uvcontsub subtracted from a field (the model kept in
    the line copies, `contsub.kept_model`) against the cont image's clean components, both seen
    through the same sampling -- natural-weight dirty images at the cont image's grid of the kept
    model's visibilities and of the components predicted at the same rows (`kernels.gridding`) --
    at the components' brightest pixel. They differ by what the clean left there (at most its
    threshold) and the noise; by more than dataset.contmodel_tolerance of the value plus the
    threshold plus 3 sigma, the cubes' continuum and the cont image disagree (a warning)."""
    if not ctx.line_ms:
        return
    try:
        tolerance = float(setting(ctx.dec, "dataset.contmodel_tolerance").value)
    except ImagingError:
        return
    checked = {}
    for key, record in records.items():
        field, intent, _, specmode = split_key(key)
        model_fits = next((p.file for p in record.products if p.kind in ("model", "model.tt0")), None)
        if intent != "TARGET" or specmode != "cont" or model_fits is None or record.status not in ("ok", "unscaled"):
            continue
        if record.data is not None and record.data.pointings > 1:
            stage.notes.append(f"{key}: a mosaic; the continuum-model check (made per pointing's sampling of one "
                               f"phase centre) is not made for mosaics")
            continue
        folder = (ctx.wd.root / str(ctx.state.images[key].record)).parent
        seen = _seen_at_peak(ctx.line_ms, field, folder / Path(model_fits).name)
        if seen is None:
            continue
        subtracted, imaged, sigma, pixel = seen
        threshold = float(record.weblog.threshold.value) / 1e3 if record.weblog.threshold else 0.0
        agree = abs(imaged - subtracted) <= tolerance * abs(subtracted) + threshold + 3 * sigma
        checked[key] = {"subtracted_jy_per_beam": subtracted, "cont_image_jy_per_beam": imaged, "sigma": sigma,
                        "threshold": threshold, "pixel": list(pixel), "agree": agree}
        text = (f"{key}: at its brightest clean component (pixel {pixel[0]}, {pixel[1]}) the continuum uvcontsub "
                f"subtracted reads {subtracted * 1e3:.4g} mJy/beam, the cont image's clean components "
                f"{imaged * 1e3:.4g} mJy/beam (natural-weight dirty images of both, sigma {sigma * 1e3:.2g}): "
                + ("consistent" if agree else f"they differ by more than {tolerance:.0%} + the clean threshold "
                                              f"+ 3 sigma: the cubes' continuum and the cont image disagree"))
        stage.notes.append(f"{text} (tolerance from {ctx.dec.value('dataset.contmodel_tolerance').at})")
        ctx.stage_log(stage, text)
        if not agree:
            ctx.state.attention.append(Attention(level="warning", stage=stage.index, text=f"continuum model: {text}"))
    if checked:
        stage.numbers = {**(stage.numbers or {}), "continuum_model": checked}


def _seen_at_peak(line_ms: list[str], field: str, model_fits: Path
                  ) -> Optional[tuple[float, float, float, tuple[int, int]]]:
    """(kept model, clean components, sigma: Jy/beam; pixel) at the components' brightest pixel of
    their natural-weight dirty image over the kept rows (module doc of check_continuum_model)."""
    from almarules.engine.products.fits import read_image
    from almarules.engine.stages.continuum.contsub import kept_model
    from almarules.kernels.gridding import dirty_image, predict

    parts = [p for m in line_ms for p in kept_model(Path(m), field)]
    if not parts:
        return None
    components, header, _ = read_image(model_fits)
    cc = components[0]
    n, cell = cc.shape[0], abs(float(header["CDELT2"])) * 3600.0
    kept, seen, wsum = np.zeros(cc.shape), np.zeros(cc.shape), 0.0
    for p in parts:
        freq, w = np.array([p.freq]), p.weight[:, None]
        s = float(w.sum())
        kept += s * dirty_image(p.uvw, freq, p.model[:, None], w, n, cc.shape[1], cell)
        seen += s * dirty_image(p.uvw, freq, predict(p.uvw, freq, cc, cell), w, n, cc.shape[1], cell)
        wsum += s
    pixel = tuple(int(i) for i in np.unravel_index(np.argmax(seen), seen.shape))
    return float(kept[pixel] / wsum), float(seen[pixel] / wsum), wsum ** -0.5, pixel


def dataset_rule(ctx: RunContext) -> str:
    """Where the fit order comes from (rules file:line:col)."""
    try:
        return f"order from {ctx.dec.value('dataset.uvcontsub_order').at}"
    except KeyError:
        return "order: the rules give none"


STAGES = {"findcont": findcont, "uvcontfit": uvcontfit, "uvcontsub": uvcontsub}
