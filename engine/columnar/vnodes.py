"""The compiled pieces of a `VProgram`: rules, scores, tables, emits and cascades as vectorised closures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from almarules.dsl import ast as A
from almarules.dsl.intervals import Span
from almarules.engine.columnar.vcompile import VFn


@dataclass
class VRule:
    """One derive rule: its condition (None: always) and its value."""

    when: Optional[VFn]
    expr: VFn


@dataclass
class VScore:
    """A score: start value, terms ``(sign ±1.0, amount, condition)``, optional clamp ``(lo, hi)``
    and the condition under which it is known at all."""

    start: VFn
    terms: list[tuple[float, VFn, Optional[VFn]]]
    clamp: Optional[tuple[VFn, VFn]]
    when: Optional[VFn]


@dataclass
class VTable:
    """A table (row formulas of `arg`) or a band (label codes), looked up by the span holding x."""

    spans: list[Span]
    rows: list[VFn]  # tables: row formulas
    labels: Optional[np.ndarray]  # bands: label codes
    arg: str


@dataclass
class VEmit:
    """``emit``: the created entity's attributes, by name."""

    assigns: list[tuple[str, VFn]]


@dataclass
class VFor:
    """``for`` in a collection body: compiled binders and the body they scope."""

    binders: list
    body: list


@dataclass
class VAction:
    """One cascade action and its compiled parts (those the action's kind has)."""

    decl: A.Action
    value: Optional[VFn] = None
    where: Optional[VFn] = None
    group: Optional[VFn] = None
    rank: list[VFn] = field(default_factory=list)  # ranking keys, lexicographic
    while_: Optional[VFn] = None  # sees dataset and the keep's kind (the candidate group's first entity)
    limit: Optional[VFn] = None
    when: Optional[VFn] = None  # an error action's condition


@dataclass
class VStep:
    """A cascade step: its actions and its condition."""

    decl: A.Step
    actions: list[VAction]
    when: Optional[VFn] = None


@dataclass
class VCascade:
    """A cascade: stop condition, steps in order, and steps by name (for ``repeat``)."""

    decl: A.Cascade
    until: VFn
    steps: list[VStep]
    by_name: dict[str, VStep] = field(default_factory=dict)
