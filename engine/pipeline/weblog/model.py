"""The view models of the weblog's pages: plain dataclasses the templates draw, built from the
run state, the plan, the facts and the image records (`pages`, `attention`, `outcome`).

Conventions: `href` values are relative to ``WORKDIR/weblog/`` (a page in a subdirectory
prefixes them with its `root`, ``../``); `colour` is a QA colour word (red, yellow, blue, green)
or None; `css` is the class a row or badge is drawn with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from almarules.engine.pipeline.state import Command, RunState
from almarules.engine.stages.imaging.record import ImageRecord


@dataclass
class Link:
    text: str
    href: Optional[str] = None
    title: str = ""


@dataclass
class Reason:
    """One QA reason with the rule line that produced it."""

    text: str
    at: Optional[str] = None
    href: Optional[str] = None


@dataclass
class AttentionItem:
    """One thing a person must look at: its level, words, evidence page and the rule behind it."""

    level: str  # error, warning, notice
    text: str
    href: Optional[str] = None  # the page with the evidence
    links: list[Link] = field(default_factory=list)  # several items of one kind (images, stages)
    at: Optional[str] = None
    rule_href: Optional[str] = None


@dataclass
class Number:
    """A number of an image page: `text` is `fmt.number(value, unit)`, `source` shown on hover,
    `href` the rule line where the source is a rule."""

    key: str
    label: str
    value: object
    unit: Optional[str]
    text: str
    source: str
    href: Optional[str] = None


@dataclass
class Thumb:
    """A figure: PNG path (weblog-relative), its size in pixels, alt text and caption."""

    kind: str
    label: str
    src: Optional[str] = None
    width: int = 0
    height: int = 0
    alt: str = ""
    caption: str = ""
    missing: str = ""  # why there is no picture
    full: Optional[str] = None  # the full-size PNG when `src` is its thumbnail (weblog-relative)


@dataclass
class ImageItem:
    """A stage's image: key, page, status and the colour class it is drawn with."""

    key: str
    href: Optional[str]  # None: an item that is not an image (an MS)
    status: str
    css: str
    made: bool = False  # made by this stage (not only listed)


@dataclass
class StageView:
    index: int
    name: str
    label: str  # makeimages(cube)
    status: str
    page: str
    colour: Optional[str]
    css: str  # row class: qa-red, qa-green, st-not_implemented, ...
    score_text: str
    score_width: int  # % of the bar
    duration: str
    estimate: str
    folded: bool
    why: str
    condition: str
    at: str
    at_href: Optional[str]
    error: Optional[str]
    reasons: list[Reason]
    commands: list[Command]
    notes: list[str]
    items: list[ImageItem]
    kept: list[str]
    redone: dict[str, list[str]]
    started: str
    ended: str
    inputs_sha256: str
    log_path: Optional[str]
    log_text: Optional[str] = None
    log_note: str = ""
    score_source: str = ""  # where the score comes from (a value and its rule)
    score_href: Optional[str] = None  # the rule line of score_source
    figures: list[Thumb] = field(default_factory=list)  # pictures of its results (calpages)


@dataclass
class ImageView:
    key: str
    page: str
    status: str
    css: str  # badge class: never green unless the status is ok
    score_text: str
    colour: Optional[str]
    stage: Optional[Link]
    record: Optional[ImageRecord]
    error: Optional[str]
    numbers: list[Number]
    parameters: list[Number]
    reasons: list[Reason]
    thumbs: list[Thumb] = field(default_factory=list)
    cube_figures: list[Thumb] = field(default_factory=list)
    outcome: list["OutcomeCell"] = field(default_factory=list)
    files: list[Link] = field(default_factory=list)  # the record and the FITS products


@dataclass
class OutcomeCell:
    """One quantity of one image, planned and actual (in the base unit: s, GB, Jy/beam)."""

    quantity: str
    estimate: Optional[float]
    actual: Optional[float]
    estimate_text: str
    actual_text: str
    ratio: Optional[float]
    ratio_text: str


@dataclass
class OutcomeRow:
    key: str
    href: str
    status: str
    cells: list[OutcomeCell]


@dataclass
class OutcomeSummary:
    """The cost model's error over the run for one quantity: ratios actual/estimate."""

    quantity: str
    n: int
    median: Optional[float]
    worst: Optional[float]  # the ratio farthest from 1 (in log)
    worst_key: Optional[str]


@dataclass
class Site:
    """Everything the pages draw."""

    state: RunState
    title: str
    attention: list[AttentionItem]
    stages: list[StageView]
    images: list[ImageView]
    outcome_rows: list[OutcomeRow]
    outcome_summary: list[OutcomeSummary]
    outcome_svg: str
    overview: dict[str, object]
    rule_pages: list[dict[str, object]]
