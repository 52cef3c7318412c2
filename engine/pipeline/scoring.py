"""A stage's QA score as the rules give it: value, colour and reasons, each with its rule line."""

from __future__ import annotations

from typing import Optional, Union

from almarules.engine.evaluate.decisions import Decisions, LazyDecisions
from almarules.engine.pipeline.state import QAReason, StageScore


def rule_score(dec: Union[Decisions, LazyDecisions], score: str, colour: str) -> StageScore:
    """The score at path `score` with its colour and reasons (each with its rule line)."""
    try:
        v = dec.value(score)
    except KeyError:
        return StageScore(source=f"the rules define no {score}")
    col: Optional[str] = None
    try:
        c = dec.value(colour)
        col = c.value if c.status == "known" else None
    except KeyError:
        pass
    reasons = [QAReason(text=f"{r.sign}{r.amount:g} {r.reason}", at=r.at, ref=score) for r in v.reasons]
    value = float(v.value) if v.status == "known" and v.value is not None else None
    if value is None:
        reasons.append(QAReason(text=f"{score} is {v.status}: {v.text}", at=v.at, ref=score))
    return StageScore(value=value, colour=col, source=f"{score} ({v.at})", reasons=reasons)
