"""The options of one ``almarules run`` and what its stages share while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from pydantic import BaseModel

from almarules.engine.evaluate.decisions import Decisions
from almarules.engine.evaluate.program import Program
from almarules.engine.facts.model import Dataset
from almarules.engine.pipeline.context import Workdir
from almarules.engine.io.parallel import Executor
from almarules.engine.pipeline.progress import Progress
from almarules.engine.pipeline.state import RunState, StageRun
from almarules.engine.plan.model import Plan
from almarules.engine.products.contdat import ContDat


class RunOptions(BaseModel):
    """The command line of a run, with paths made absolute."""

    ms: list[str]
    workdir: str
    rules: list[str]
    sets: list[str] = []
    intents: Optional[str] = None
    contfile: Optional[str] = None
    flagtemplate: Optional[str] = None
    fluxfile: Optional[str] = None
    mous: Optional[str] = None
    data_calibrated: bool = False
    workers: Optional[int] = None
    scheduler: Optional[str] = None
    memory_gb: float = 4.0
    threads: int = 0
    from_stage: Optional[str] = None
    until_stage: Optional[str] = None
    dry_run: bool = False
    quiet: bool = False
    weblog: bool = True

    def switches(self) -> dict[str, object]:
        """The options every image depends on (part of its input manifest)."""
        return {"data_calibrated": self.data_calibrated, "extra_products": True, "mous": self.mous}


@dataclass
class RunContext:
    """The run as its stages see it: options, WORKDIR, the rules, the facts, the plan's decisions,
    the executor, progress, and the imaging list of the latest ``makeimlist``."""

    opts: RunOptions
    wd: Workdir
    state: RunState
    program: Program
    facts: Dataset
    plan: Plan
    executor: Executor
    progress: Progress
    contdat: Optional[ContDat] = None
    flagtemplate_text: Optional[str] = None
    ms_digests: list[tuple[str, str]] = field(default_factory=list)  # (path, identity) of each MS, read once
    flags_applied: bool = False  # a stage applied the flag template (flagtargets): then an input of every image
    imlist: list[str] = field(default_factory=list)
    vis_ms: Optional[list[str]] = None  # the MSs the images read: the calibrated working copies after applycal
    unscaled: Optional[str] = None  # why the calibration of vis_ms has no flux scale (None: it has one)
    contfile: Optional[str] = None  # the cont.dat the images read when findcont wrote one (else --contfile)
    line_ms: Optional[list[str]] = None  # the continuum-subtracted copies the cubes read (uvcontsub)
    line_digests: list[tuple[str, str]] = field(default_factory=list)  # (path, identity) of each line copy
    later_images: dict[int, list[str]] = field(default_factory=dict)  # makeimages stage index -> its images
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def dec(self) -> Decisions:
        return self.plan.decisions

    def stage_log(self, stage: StageRun, text: str) -> None:
        """One line into the stage's log (and the run log)."""
        from almarules.engine.pipeline.progress import file_logger

        path = self.wd.stage_log(stage)
        stage.log = self.wd.rel(path)
        file_logger(path)(text)
