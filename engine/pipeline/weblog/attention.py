"""What needs a human, most serious first: the run's own attention list, then what the weblog
finds in the state that it does not already cover (failed, red and yellow stages, stages not
implemented, images that are failed, uncalibrated, diverged or scored red/yellow, cascades that
gave up, a run interrupted). Each item links to its evidence; items of one kind are grouped
into one line so the list stays short."""

from __future__ import annotations

import re
from typing import Optional

from almarules.engine.pipeline.state import RunState
from almarules.engine.pipeline.weblog.links import RuleLinks, image_page, stage_page
from almarules.engine.pipeline.weblog.model import AttentionItem, ImageView, Link, StageView
from almarules.engine.plan.model import Plan

LEVELS = {"error": 0, "warning": 1, "notice": 2}
OUTCOME_PAGE = "outcome.html"


def _given(state: RunState, links: RuleLinks) -> list[AttentionItem]:
    """The run's own items; those about images that say the same thing (after the image key)
    become one line with a link per image."""
    out: list[AttentionItem] = []
    groups: dict[tuple[str, str, Optional[str]], AttentionItem] = {}
    for a in state.attention:
        stage = next((s for s in state.stages if s.index == a.stage), None) if a.stage is not None else None
        if a.image:
            rest = a.text.removeprefix(f"{a.image}: ")
            key = (a.level, rest, a.at)
            if key not in groups:
                groups[key] = AttentionItem(level=a.level, text=rest, at=a.at, rule_href=links.href(a.at))
                out.append(groups[key])
            groups[key].links.append(Link(a.image, image_page(a.image)))
            continue
        href = stage_page(stage.index, stage.name) if stage else links.href(a.at)
        out.append(AttentionItem(level=a.level, text=a.text, href=href, at=a.at, rule_href=links.href(a.at)))
    for item in groups.values():
        if len(item.links) == 1:
            item.text, item.href, item.links = f"{item.links[0].text}: {item.text}", item.links[0].href, []
        else:
            item.text = f"{len(item.links)} images: {item.text}"
    return out


def _not_implemented_links(items: list[AttentionItem], stages: list[StageView]) -> bool:
    """The run's item that names the stages not implemented (the one naming most of them) gets a
    link per stage in place of the names; True if there was one."""
    missing = [s for s in stages if s.status == "not_implemented"]
    best, named = None, 0
    for item in items:
        n = sum(1 for s in missing if re.search(rf"\b{re.escape(s.name)}\b", item.text))
        if "not implemented" in item.text and not item.links and n > named:
            best, named = item, n
    if best is None:
        return False
    head, sep, _names = best.text.partition(": ")
    best.text = head + ":" if sep and named > 1 else best.text
    best.links = [Link(f"{s.index}. {s.label}", s.page, s.why) for s in missing]
    return True


def _stage_items(stages: list[StageView], covered: set[int], missing_said: bool) -> list[AttentionItem]:
    out = []
    for s in stages:
        if s.index in covered:
            continue
        first = s.reasons[0] if s.reasons else None
        if s.status == "failed":
            out.append(AttentionItem("error", f"stage {s.index} {s.label} failed: {s.error or 'no reason given'}",
                                     s.page))
        elif s.colour in ("red", "yellow"):
            why = "; ".join(r.text for r in s.reasons) or "no reasons given"
            out.append(AttentionItem("error" if s.colour == "red" else "warning",
                                     f"stage {s.index} {s.label}: score {s.score_text}: {why}", s.page,
                                     at=first.at if first else None, rule_href=first.href if first else None))
    missing = [] if missing_said else [s for s in stages if s.status == "not_implemented" and s.index not in covered]
    if missing:
        out.append(AttentionItem(
            "warning", f"{len(missing)} stage{'s' if len(missing) > 1 else ''} of the recipe not implemented "
            "(their work was not done):", links=[Link(f"{s.index}. {s.label}", s.page, s.why) for s in missing]))
    return out


_IMAGE_GROUPS = (
    ("failed", "error", "could not be made"),
    ("uncalibrated", "warning", "made from uncalibrated data (DATA column)"),
    ("unscaled", "warning", "on a relative flux scale (the calibration has no flux scale)"),
    ("diverged", "warning", "cleaned with a diverged clean"),
)


def _image_items(images: list[ImageView], covered: set[str]) -> list[AttentionItem]:
    out = []
    for status, level, words in _IMAGE_GROUPS:
        group = [i for i in images if i.status == status and i.key not in covered]
        if group:
            out.append(AttentionItem(level, f"{len(group)} image{'s' if len(group) > 1 else ''} {words}:",
                                     links=[Link(i.key, i.page, i.error or "") for i in group]))
    for colour, level in (("red", "error"), ("yellow", "warning")):
        group = [i for i in images if i.status == "ok" and i.colour == colour and i.key not in covered]
        if group:
            out.append(AttentionItem(level, f"{len(group)} image{'s' if len(group) > 1 else ''} scored {colour}:",
                                     links=[Link(f"{i.key} ({i.score_text})", i.page) for i in group]))
    return out


def _plan_items(plan: Optional[Plan], links: RuleLinks) -> list[AttentionItem]:
    if plan is None:
        return []
    return [AttentionItem("error", f"cascade {c.name}: {c.outcome}" + (f" ({c.message})" if c.message else ""),
                          f"{OUTCOME_PAGE}#cascade-{c.name}", at=c.at, rule_href=links.href(c.at))
            for c in plan.cascades if c.outcome in ("still exceeded", "error")]


def _run_items(state: RunState) -> list[AttentionItem]:
    if state.interrupted:
        return [AttentionItem("warning", "the run was interrupted: later stages did not run", "index.html#stages")]
    if not state.finished:
        return [AttentionItem("notice", "the run has not finished (this weblog shows it so far)", "index.html#stages")]
    return []


def attention(state: RunState, stages: list[StageView], images: list[ImageView], plan: Optional[Plan],
              links: RuleLinks) -> list[AttentionItem]:
    """The attention list, most serious first (a stable sort: the run's order within a level)."""
    given = _given(state, links)
    stage_cov = {a.stage for a in state.attention if a.stage is not None}
    image_cov = {a.image for a in state.attention if a.image}
    cascade_cov = any("cascade" in a.text for a in state.attention)
    said = _not_implemented_links(given, stages)
    items = given + _stage_items(stages, stage_cov, said) + _image_items(images, image_cov)
    items += [] if cascade_cov else _plan_items(plan, links)
    items += _run_items(state)
    return sorted(items, key=lambda a: LEVELS.get(a.level, 3))
