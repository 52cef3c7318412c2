"""What one evaluation records: provenance, and the cascades', stages' and warnings' records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from almarules.dsl import ast as A


@dataclass(slots=True)
class Provenance:
    """Where a value came from; `inputs` as read (entity, attr) pairs or "param:x"/"table:t:i"."""

    origin: str  # "rule", "score", "cascade", "fact", "param", "collection"
    decl: Any = None
    inputs: tuple[str, ...] = ()
    reasons: tuple[tuple[str, float, str, A.Loc], ...] = ()  # sign, amount, reason, loc
    note: str = ""


@dataclass
class StepRecord:
    """A cascade step applied: what it changed, and the stop condition's values after it."""

    name: str
    loc: A.Loc
    changes: list[str]
    after: dict[str, Any]


@dataclass
class SkippedStep:
    """A step passed over because its `when` condition was false."""

    name: str
    loc: A.Loc
    reason: str  # "condition false"
    position: int  # how many steps were applied before it (where a report lists it)


@dataclass
class CascadeRecord:
    """One cascade's run: its status, the watched values before it, its applied and skipped steps."""

    name: str
    loc: A.Loc
    # one of the checker's OUTCOMES ("not needed", "mitigated", "still exceeded", "error",
    # "unknown"): one vocabulary everywhere (reports, corpus rows, diffs, rule tests)
    status: str
    before: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)  # the steps applied, in order
    waits: tuple[str, ...] = ()
    skipped: list[SkippedStep] = field(default_factory=list)
    error: Optional[str] = None  # the message of the error action that stopped it

    @property
    def outcome(self) -> str:
        """The value of ``dataset.NAME_outcome``: the status."""
        return self.status


@dataclass
class WarningRecord:
    """A ``warn`` whose condition holds ("fires") or is unknown ("unknown": it may apply)."""

    message: str
    loc: A.Loc
    status: str  # "fires" or "unknown"
    waits: tuple[str, ...] = ()
    doc: Optional[str] = None


@dataclass
class StageRecord:
    """A recipe stage: its arguments' values and whether it runs (None: unknown, see `waits`)."""

    name: str
    args: list[Any]
    run: Optional[bool]
    loc: A.Loc
    waits: tuple[str, ...] = ()
