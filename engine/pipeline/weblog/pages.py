"""Stage and image views: what the stage list, the stage pages and the image pages show, built
from the run state and the image records (numbers formatted by `fmt.number`, every source linked
to its rule line where it is one)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from almarules.engine.pipeline.state import ImageEntry, RunState, StageRun
from almarules.engine.pipeline.weblog import fmt
from almarules.engine.pipeline.weblog.links import RuleLinks, image_page, stage_page
from almarules.engine.pipeline.weblog.model import ImageItem, ImageView, Link, Number, Reason, StageView
from almarules.engine.stages.base import Setting
from almarules.engine.stages.imaging.record import ImageRecord

LOG_LIMIT = 400_000  # characters of a stage log shown inline (its end)

#: the numbers of an image page, in order (pipeline.md, "The weblog"): record field -> label
IMAGE_NUMBERS = (
    ("centre_frequency", "Centre frequency"), ("beam_major", "Beam major"), ("beam_minor", "Beam minor"),
    ("beam_pa", "Beam PA"), ("sensitivity", "Theoretical sensitivity"), ("threshold", "Cleaning threshold"),
    ("dirty_dr", "Dirty dynamic range"), ("dr_correction", "DR correction"), ("rms", "Non-pbcor rms"),
    ("pbcor_max", "Pbcor max"), ("pbcor_min", "Pbcor min"), ("fractional_bandwidth", "Fractional bandwidth"),
    ("aggregate_bandwidth", "Aggregate bandwidth"), ("qa_score", "QA score"),
)
BAD_STATUS = ("failed", "uncalibrated", "unscaled", "diverged")
QUIET = ("done", "skipped", "pending")


def image_css(status: Optional[str], colour: Optional[str]) -> str:
    """The colour class of an image: its QA colour when ok; never green or blue otherwise."""
    if status == "ok":
        return colour or "none"
    if status == "failed" or colour == "red":
        return "red"
    return "yellow"


def stage_css(stage: StageRun, items: list[ImageItem]) -> str:
    """The row class of a stage: failed red; its QA colour; a flagged image makes it yellow at best."""
    if stage.status == "failed":
        return "red"
    colour = stage.score.colour
    if any(i.made and i.status in BAD_STATUS for i in items) and colour not in ("red",):
        return "yellow"
    return colour or "none"


def setting_number(key: str, label: str, s: Setting, links: RuleLinks) -> Number:
    return Number(key=key, label=label, value=s.value, unit=s.unit or None, text=fmt.number(s.value, s.unit or None),
                  source=s.source, href=links.href(s.source))


def _items(stage: StageRun, state: RunState) -> list[ImageItem]:
    out = []
    for key in stage.items:
        entry = state.images.get(key)
        if entry is None:  # not an image (importdata: an MS)
            out.append(ImageItem(key=key, href=None, status="", css="none"))
            continue
        status = entry.status or "pending"
        made = entry.stage == stage.index  # a makeimlist lists images; the makeimages stage makes them
        out.append(ImageItem(key=key, href=image_page(key), status=status, css=image_css(status, None), made=made))
    return out


def _log(stage: StageRun, workdir: Path) -> tuple[Optional[str], str]:
    """The stage's log text (its end when long) and a note on what is shown."""
    if not stage.log:
        return None, "no log"
    path = workdir / stage.log
    if not path.is_file():
        return None, f"log {stage.log} not found"
    text = path.read_text(errors="replace")
    if len(text) > LOG_LIMIT:
        return text[-LOG_LIMIT:], f"last {LOG_LIMIT:,} of {len(text):,} characters of {stage.log}"
    return text, stage.log


def stage_view(stage: StageRun, state: RunState, links: RuleLinks, workdir: Path, with_log: bool) -> StageView:
    """The view of one stage (`with_log`: read its log, for its own page)."""
    items = _items(stage, state)
    css = stage_css(stage, items)
    score = stage.score
    reasons = [Reason(r.text, r.at, links.href(r.at)) for r in score.reasons]
    label = f"{stage.name}({', '.join(stage.args)})" if stage.args else stage.name
    folded = stage.status in QUIET and css in ("green", "blue", "none")
    log_text, log_note = _log(stage, workdir) if with_log else (None, "")
    return StageView(
        index=stage.index, name=stage.name, label=label, status=stage.status,
        page=stage_page(stage.index, stage.name), colour=score.colour, css=css,
        score_text=fmt.number(score.value) + (f" {score.colour}" if score.colour else "") if score.value is not None else "",
        score_width=int(round(100 * min(max(score.value or 0.0, 0.0), 1.0))),
        duration=fmt.duration(stage.duration), estimate=fmt.duration(stage.estimate), folded=folded,
        why=stage.why or stage.condition, condition=stage.condition, at=stage.at, at_href=links.href(stage.at),
        error=stage.error, reasons=reasons, commands=list(stage.commands), notes=list(stage.notes),
        items=items, kept=list(stage.kept), redone=dict(stage.redone), started=stage.started or "",
        ended=stage.ended or "", inputs_sha256=stage.inputs_sha256, log_path=stage.log,
        log_text=log_text, log_note=log_note, score_source=score.source,
        score_href=links.href(score.source))


def _numbers(record: ImageRecord, links: RuleLinks) -> list[Number]:
    out = []
    for key, label in IMAGE_NUMBERS:
        s = getattr(record.weblog, key)
        if s is not None:
            out.append(setting_number(key, label, s, links))
    return out


def _score(record: Optional[ImageRecord]) -> tuple[str, Optional[str]]:
    if record is None or record.weblog.qa_score is None:
        return "", None
    colour = record.weblog.qa_colour.value if record.weblog.qa_colour else None
    return fmt.number(record.weblog.qa_score.value), str(colour) if colour else None


def image_view(key: str, entry: ImageEntry, record: Optional[ImageRecord], state: RunState,
               links: RuleLinks) -> ImageView:
    """The view of one image (without figures and outcome; `render` adds those)."""
    status = (record.status if record else None) or entry.status or "pending"
    score_text, colour = _score(record)
    stage = next((s for s in state.stages if s.index == entry.stage), None)
    stage_link = Link(f"{stage.index}. {stage.name}", stage_page(stage.index, stage.name)) if stage else None
    reasons: list[Reason] = []
    if record is not None:
        src = record.weblog.qa_score.source if record.weblog.qa_score else None
        reasons = [Reason(text, src, links.href(src)) for text in record.weblog.qa_reasons]
    params = [setting_number(k, k, s, links) for k, s in sorted(record.parameters.items())] if record else []
    return ImageView(
        key=key, page=image_page(key), status=status, css=image_css(status, colour), score_text=score_text,
        colour=colour, stage=stage_link, record=record, error=record.error if record else None,
        numbers=_numbers(record, links) if record else [], parameters=params, reasons=reasons)


def load_record(workdir: Path, entry: ImageEntry) -> tuple[Optional[ImageRecord], Optional[str]]:
    """The record of an image, or None and why not."""
    if not entry.record:
        return None, "no record"
    path = workdir / entry.record
    if not path.is_file():
        return None, f"record {entry.record} not found"
    try:
        return ImageRecord.model_validate_json(path.read_text()), None
    except ValueError as exc:
        return None, f"record {entry.record} unreadable: {exc}"
