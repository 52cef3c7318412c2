"""The static size of a cascade: how many step applications its ``repeat`` actions expand to.

A step applied once counts 1, plus, for each ``repeat "a", ...`` among its actions, the
applications of every step it names (which may repeat others in turn). The count is computed
bottom-up over the steps, never by expanding the repeats, so it is linear in the rule text even
when the expansion is exponential.
"""

from __future__ import annotations

from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.limits import MAX_CASCADE_APPLICATIONS


def step_applications(c: A.Cascade) -> list[int]:
    """For each step of `c`, in order, the applications that applying it once makes."""
    seen: dict[str, int] = {}
    out = []
    for step in c.steps:
        n = 1
        for a in step.actions:
            if isinstance(a, A.RepeatAction):
                n += sum(seen.get(name, 0) for name in a.steps)  # bad names are reported elsewhere
        seen.setdefault(step.name, n)
        out.append(n)
    return out


def too_many_applications(c: A.Cascade) -> Optional[tuple[A.Step, str]]:
    """The first step at which applying every step of `c` once exceeds
    `limits.MAX_CASCADE_APPLICATIONS` (10,000), with the message; None within the bound."""
    total = 0
    for step, n in zip(c.steps, step_applications(c), strict=True):
        total += n
        if total > MAX_CASCADE_APPLICATIONS:
            return step, (f"cascade {c.name!r} can make {sum(step_applications(c))} step applications"
                          f" (its repeats expand), more than the limit of {MAX_CASCADE_APPLICATIONS}:"
                          f" step {step.name!r} reaches it")
    return None
