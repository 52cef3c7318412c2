"""What one evaluation records: provenance, and the cascades', stages' and warnings' records.

While a value is computed, the inputs it read are recorded flat (`decode_reads`): an entity then
the attribute name read of it, or one string (``param:x``, ``table:t:i``), so that recording
allocates nothing. A derived value's provenance stays as recorded, its frame (`ProvMap`): made a
`Provenance` only when it is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from almarules.dsl import ast as A


@dataclass(slots=True)
class Provenance:
    """Where a value came from; `inputs` as read (entity, attr) pairs or "param:x"/"table:t:i"."""

    origin: str  # "rule", "score", "cascade", "fact", "param", "collection"
    decl: Any = None
    inputs: tuple[str, ...] = ()
    reasons: tuple[tuple[str, float, str, A.Loc], ...] = ()  # sign, amount, reason, loc
    note: str = ""


def decode_reads(reads: list, start: int = 0, stop: Optional[int] = None) -> list:
    """Recorded inputs (``reads[start:stop]``) as `Provenance.inputs`: (entity, attr) pairs and
    "param:x"/"table:t:i" strings. `reads` holds an entity followed by the attribute read of it,
    or a single string."""
    out: list = []
    it = iter(reads[start:stop])
    for item in it:
        out.append(item if item.__class__ is str else (item, next(it)))
    return out


_NONE = object()


class ProvMap(dict):
    """An entity's attribute -> `Provenance`. A derived value's, a score's and a collection's are
    stored as the frame recorded while it was computed, a list laid out ``[declaration, (a
    score's reasons,) inputs read...]`` (`decode_reads`), and become a `Provenance` when looked
    up. A value shared with another entity (`sharing`) is stored as (frame, that entity): its
    inputs read of that entity are this map's `owner`'s. `home` is the evaluation state the
    values belong to (`World.home`: its reset forgets them)."""

    __slots__ = ("home", "owner")  # (set by `Entity`, which makes each: no __init__ of its own to call)

    def _made(self, name: str, frame: Any) -> Provenance:
        src = None
        if frame.__class__ is tuple:
            frame, src = frame
        decl = frame[0]
        score = decl.__class__ is A.Score
        inputs = decode_reads(frame, 2 if score else 1)
        if src is not None and src is not self.owner:
            owner = self.owner
            inputs = [(owner, x[1]) if x.__class__ is tuple and x[0] is src else x for x in inputs]
        if score:
            prov = Provenance("score", decl, inputs, frame[1])
        else:
            prov = Provenance("collection" if decl.__class__ is A.Collection else "rule", decl, inputs)
        dict.__setitem__(self, name, prov)
        return prov

    def __getitem__(self, name: str) -> Any:
        v = dict.__getitem__(self, name)
        return self._made(name, v) if v.__class__ is list or v.__class__ is tuple else v

    def get(self, name: str, default: Any = None) -> Any:
        v = dict.get(self, name, _NONE)
        if v is _NONE:
            return default
        return self._made(name, v) if v.__class__ is list or v.__class__ is tuple else v

    def values(self) -> list:  # type: ignore[override]
        return [self[k] for k in self]

    def items(self) -> list:  # type: ignore[override]
        return [(k, self[k]) for k in self]

    def copy(self) -> dict:  # type: ignore[override]
        return dict(self.items())

    def __iter__(self) -> Iterator[str]:  # (so that dict(m) and {**m} read through __getitem__ too)
        return dict.__iter__(self)


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
