"""The state of a pipeline run, as kept in ``WORKDIR/run.json`` (pydantic models; what the
runner resumes from and what the weblog and the products are drawn from).

Times are UTC ISO 8601 strings; durations and estimates are seconds. A stage is identified by
its position in the recipe (``index``, from 1) because a recipe may call a stage more than once
(``makeimages`` runs for the calibrators, then for each target specmode).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from almarules import __version__

#: pending: not reached yet; running: started, not finished (a killed run leaves this);
#: done: finished (its items may still be flagged); skipped: its recipe condition is false;
#: not_implemented: the recipe names it but almarules has no implementation yet (never faked);
#: failed: it raised, `error` says why.
StageStatus = Literal["pending", "running", "done", "skipped", "not_implemented", "failed"]
Colour = Literal["red", "yellow", "blue", "green"]


class Command(BaseModel):
    """The equivalent of one step in another tool: ``almarules`` (our CLI) or ``casa`` (a task call)."""

    tool: Literal["almarules", "casa"]
    text: str
    note: Optional[str] = None  # what differs, e.g. "CASA has no equivalent of --data-calibrated"


class QAReason(BaseModel):
    """One term of a stage's QA score: why it is not 1 (or a note), and the rule it came from."""

    text: str
    at: Optional[str] = None  # rules file:line:column
    ref: Optional[str] = None  # the value path (e.g. image[...].qa_score)


class StageScore(BaseModel):
    """A stage's QA score, from the rules (None where the rules define no score for it)."""

    value: Optional[float] = None
    colour: Optional[Colour] = None
    source: str = ""  # "dataset.importdata_score (qa.rules:16:1)", "lowest image score: KEY"
    reasons: list[QAReason] = Field(default_factory=list)


class StageRun(BaseModel):
    """One stage of the recipe in this run."""

    index: int  # position in the recipe, from 1
    name: str  # "makeimages"
    args: list[str] = Field(default_factory=list)  # "PHASE", "mfs", ...
    at: str  # recipe file:line:column
    condition: str = ""  # why it runs or is skipped ("runs: dataset.has_flux", "skipped: ...")
    status: StageStatus = "pending"
    error: Optional[str] = None
    why: str = ""  # not implemented / skipped: said in words
    score: StageScore = Field(default_factory=StageScore)
    started: Optional[str] = None
    ended: Optional[str] = None
    duration: Optional[float] = None  # s
    estimate: Optional[float] = None  # s, from the plan's cost model (makeimages)
    items: list[str] = Field(default_factory=list)  # image keys (makeimlist, makeimages)
    kept: list[str] = Field(default_factory=list)  # items whose earlier results were kept
    redone: dict[str, list[str]] = Field(default_factory=dict)  # item -> why it was made again
    notes: list[str] = Field(default_factory=list)  # what the stage says a reviewer should know
    commands: list[Command] = Field(default_factory=list)
    numbers: dict[str, Any] = Field(default_factory=dict)  # what the stage measured (e.g. derived fluxes), for reports
    inputs_sha256: str = ""
    log: Optional[str] = None  # WORKDIR-relative path of its log


class ImageEntry(BaseModel):
    """One image of the run: where its record is, what the plan expected, what its inputs were."""

    key: str
    stage: int  # index of the makeimages stage that made it
    record: Optional[str] = None  # WORKDIR-relative path of its .record.json
    status: Optional[str] = None  # ok, uncalibrated, diverged, failed (from the record)
    worker: Optional[str] = None  # where it ran: "local" or a Dask worker address
    seconds: Optional[float] = None  # wall time of making (or keeping) the image
    pictures_seconds: Optional[float] = None  # wall time of drawing its weblog pictures on the worker
    inputs: dict[str, str] = Field(default_factory=dict)  # component -> digest (engine.pipeline.inputs)
    inputs_text: dict[str, str] = Field(default_factory=dict)  # component -> what it is, in words
    plan: dict[str, Optional[float]] = Field(default_factory=dict)  # estimates: run_time s, size GB, sensitivity Jy/beam


class StageFailed(RuntimeError):
    """A stage that cannot go on for a reason its message says in full (no calibrator, a broken
    cont.dat): recorded and shown without an exception class name."""


class Attention(BaseModel):
    """One thing a person must look at, most serious first; the weblog links it to its evidence
    through `stage`, `image` and `at`."""

    level: Literal["error", "warning", "notice"]
    text: str
    stage: Optional[int] = None
    image: Optional[str] = None
    at: Optional[str] = None  # rules file:line:column it comes from


class RunState(BaseModel):
    """Everything ``almarules run`` knows about one WORKDIR."""

    almarules: str = __version__
    created: str
    updated: str
    command: list[str]  # argv of the latest run, as given
    ms: list[str]  # absolute paths of the input Measurement Sets
    rules: list[str]
    rules_sha256: str
    recipe: str  # name of the recipe run
    sets: list[str] = Field(default_factory=list)
    intents: Optional[str] = None
    contfile: Optional[str] = None
    flagtemplate: Optional[str] = None
    data_calibrated: bool = False
    facts_inputs: str = ""  # digest of the MSs and the intents file facts.json was read from
    workers: str = ""  # "serial", "LocalCluster: 2 workers x 1 thread", "tcp://host:8786 (3 workers)"
    stages: list[StageRun] = Field(default_factory=list)
    images: dict[str, ImageEntry] = Field(default_factory=dict)
    attention: list[Attention] = Field(default_factory=list)
    finished: bool = False
    interrupted: bool = False

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
