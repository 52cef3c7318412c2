"""The dry-run plan of one dataset, as pydantic models (what the renderers draw).

A `Plan` holds what a pipeline scientist reads before anything runs: warnings
first, the recipe's stages, the imaging list with sizes and times, the
product-size cascade, QA scores, values that wait for data not yet produced
(`Residual`), and the run-time estimate. Every number is a `Cell` whose `ref`
names the value in `decisions.values` (its derivation: rule, file:line, formula,
inputs), so each renderer can link a number to where it came from.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

from almarules.engine.evaluate.decisions import Decisions

Status = Literal["known", "unknown", "error", "residual"]
Colour = Literal["red", "yellow", "blue", "green"]


class Cell(BaseModel):
    """One number (or word) shown in a plan."""

    text: str  # as shown, with its unit: "0.84 mJy/beam", "2880", "unknown"
    ref: Optional[str] = None  # path of its Value in decisions.values, or "param:NAME"
    status: Status = "known"
    colour: Optional[Colour] = None  # QA scores only


class Labelled(BaseModel):
    label: str
    cell: Cell


class Case(BaseModel):
    """One branch of a residual: the value it takes when the unknown is in a range."""

    condition: str  # "dirty_dr <= 20", "20 < dirty_dr <= 50", "dirty_dr > 150"
    text: str  # "0.84 mJy/beam", "0.84 - 1.26 mJy/beam", ">= 2.1 mJy/beam, rising"


class Residual(BaseModel):
    """A value that waits for data not yet produced, partially evaluated."""

    ref: str  # the value's path
    formula: str  # with knowns substituted: "4 x 0.21 mJy/beam x dr_correction(dirty_dr)"
    unknowns: list[str]  # the paths it waits for
    cases: list[Case] = Field(default_factory=list)
    summary: str  # one line: "0.84 mJy/beam if dirty_dr <= 20, up to 2.1 mJy/beam at 150, then rising"


class PlanWarning(BaseModel):
    level: Literal["error", "warning", "notice"]
    message: str
    ref: Optional[str] = None  # the value it is about
    at: Optional[str] = None  # rule file:line


class StagePlan(BaseModel):
    name: str
    run: Optional[bool]  # None: not known yet
    why: str  # "runs", "skipped: no Tsys calibration (dataset.has_tsys = false)", "waits for ..."
    at: str
    decisions: list[Labelled] = Field(default_factory=list)  # the values that steer it


class Column(BaseModel):
    key: str  # attribute name on image, or a synthetic key ("field", "spws")
    label: str
    unit: Optional[str] = None


class ImageRow(BaseModel):
    key: str  # the image entity's key, e.g. "Elias_29.TARGET.17.cube"
    ref: str  # "image[Elias_29.TARGET.17.cube]"
    cells: dict[str, Cell]  # column key -> cell


class ScorePlan(BaseModel):
    label: str
    cell: Cell  # with colour
    reasons: list[str] = Field(default_factory=list)  # "- 1.0 no phase calibrator (qa.rules:24)"


class CascadeStepPlan(BaseModel):
    name: str
    at: str
    status: str  # "applied", "skipped", "error"
    changes: list[str]
    after: dict[str, str]


class CascadePlan(BaseModel):
    name: str
    at: str
    outcome: str  # "not needed", "mitigated", "still exceeded", "error", "unknown"
    before: dict[str, str]
    steps: list[CascadeStepPlan]
    message: Optional[str] = None  # error message, or what it waits for


class RunTime(BaseModel):
    total: Cell  # estimated wall time of the imaging
    fits: Optional[bool]  # within the limit (None: unknown)
    limit: str  # "1 day"
    terms: list[Labelled] = Field(default_factory=list)  # cost-model constants and totals
    calibration: str  # how the constants were measured (machine kind, date)


class Plan(BaseModel):
    title: str
    source: str  # the facts: summary path or MS names
    rules: list[str]
    rules_sha256: str
    settings: list[str]  # --set assignments
    overview: list[Labelled]  # project, MOUS, array, EBs, spws, fields...
    warnings: list[PlanWarning]  # most important first
    recipe: list[StagePlan]
    columns: list[Column]
    images: list[ImageRow]
    totals: list[Labelled]
    cascades: list[CascadePlan]
    scores: list[ScorePlan]
    residuals: list[Residual]
    runtime: Optional[RunTime] = None
    decisions: Decisions
    # parameter name -> the values it accepts and where that is declared: '(0, 1]   [imaging.rules:9:5]'
    params_allowed: dict[str, str] = {}

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
