"""The one shape of every rule-driven stage (imaging now; calibration and continuum next):
parameters from the rules -> kernels -> products + a record with QA scores.

A stage evaluates the rules on the facts (`RuleStage.evaluate`), lists the work the rules give
(`keys`: images, calibration solutions, ...), reads each item's parameters from the decisions
into a job (`job`: every value with its unit and the rule that gave it, a `Setting`), and runs it
(`run`: pure kernels on the data, products written atomically, a record whose QA score comes from
the rules). A record is whole or absent: an interrupted run leaves no half-written products.
Measurements a stage makes go back into the facts, so later rules (thresholds, scores) see them.
"""

from __future__ import annotations

from typing import Optional, Protocol, TypeVar, Union, runtime_checkable

from pydantic import BaseModel

from almarules.engine.evaluate.decisions import Decisions

Scalar = Union[float, int, str, bool]


class Setting(BaseModel):
    """A number (or word) with its unit and where it came from (``rules/...:line:col`` or what
    measured it)."""

    value: Optional[Scalar]
    unit: Optional[str] = None
    source: str


@runtime_checkable
class StageJob(Protocol):
    """One item of a stage's work list with the parameters the rules give it."""

    key: str
    settings: dict[str, Setting]


@runtime_checkable
class StageRecord(Protocol):
    """What a stage did for one job: status, concerns, the rules and parameters used, timings; JSON."""

    key: str
    status: str
    error: Optional[str]
    concerns: list[str]
    warnings: list[str]
    rules: list[str]
    parameters: dict[str, Setting]
    timings: dict[str, float]

    def to_json(self) -> str: ...


J = TypeVar("J", bound=StageJob, covariant=True)
R = TypeVar("R", bound=StageRecord, covariant=True)


@runtime_checkable
class RuleStage(Protocol[J, R]):
    """A stage: rules -> jobs -> kernels -> products + records."""

    dec: Decisions

    def evaluate(self) -> Decisions:
        """The rules evaluated on the facts as they are now (with this stage's measurements)."""
        ...

    def keys(self) -> list[str]:
        """The work list the rules give (e.g. the imaging list)."""
        ...

    def job(self, key: str) -> J:
        """The parameters of one item, read from the decisions with their sources."""
        ...

    def run(self, key: str) -> R:
        """Make one item: kernels, products, the record (whole or absent)."""
        ...
