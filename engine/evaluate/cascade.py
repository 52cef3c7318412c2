"""Run a compiled cascade on one evaluation: its steps, their actions (set, drop, keep, error, repeat), its record."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

from almarules.dsl import ast as A
from almarules.dsl.checker import outcome_attr, plural
from almarules.dsl.limits import MAX_CASCADE_APPLICATIONS
from almarules.engine.evaluate.compile_program import CAction, CCascade, CStep, coverage_key
from almarules.engine.evaluate.records import CascadeRecord, Provenance, SkippedStep, StepRecord
from almarules.engine.evaluate.values import Entity, Unknown, key_text, waits_of

if TYPE_CHECKING:
    from almarules.engine.evaluate.evaluation import Evaluation


class _Stop(Exception):
    """Ends a cascade from inside a step: status "error" (an error action) or "unknown"."""

    def __init__(self, status: str, message: Optional[str] = None, waits: tuple[str, ...] = ()):
        super().__init__(status)
        self.status, self.message, self.waits = status, message, waits


def run_cascade(ev: Evaluation, c: CCascade) -> None:
    """Run one cascade and record it (`CascadeRecord`, appended to ``ev.cascades``); afterwards
    its outcome is known.

    Semantics (a vectorised evaluator must reproduce them exactly):

    1. ``until`` is evaluated. Unknown: status "unknown" (waits: its waits and errors), stop.
       True: status "not needed", stop.
    2. The steps are visited in order, each only while ``until`` is false:
       a. a step with ``when C`` (dataset scope): C unknown -> status "unknown" (waits: C's),
          stop; C false -> the step is recorded in `CascadeRecord.skipped` ("condition
          false") and the next step is visited; C true (or no ``when``) -> the step applies.
       b. an applied step runs its actions in order (`CascadeRun.run_actions`); every value is
          recomputed after each action. An error action that fires ends the cascade with
          status "error" and its message (`CascadeRecord.error`); an error condition or a
          keep limit that is unknown ends it with status "unknown". Either way the step is
          recorded as applied, with the changes made before it stopped.
       c. after an applied step, ``until`` is evaluated again: unknown -> "unknown", stop;
          true -> "mitigated", stop.
    3. Every step visited without ``until`` becoming true: "still exceeded".

    The outcome (the status) is set when the cascade finishes; read while it runs,
    ``dataset.NAME_outcome`` is an error value. Every action is followed by `Evaluation.reset`,
    so the values cached at the end are those of the state the cascade leaves; they are kept,
    unless one of them may have read the outcome (then every cached value is dropped).
    """
    cond, before = stop_condition(ev, c)
    record = CascadeRecord(c.decl.name, c.decl.loc, "not needed", before)
    ev.cascades.append(record)
    finished = False
    try:
        CascadeRun(ev, c, record).run(cond)
        finished = True
    finally:
        ev.outcomes[c.decl.name] = record.outcome
        if not finished or outcome_attr(c.decl.name) in ev.dataset.cache:
            ev.reset()


def stop_condition(ev: Evaluation, c: CCascade) -> tuple[Any, dict[str, Any]]:
    """The stop condition, and the dataset values it names (all of them, shown in reports)."""
    value = c.until(ev, {"dataset": ev.dataset})
    shown = {f"dataset.{name}": ev.attr(ev.dataset, name) for name in c.watched}
    return value, shown


class CascadeRun:
    """The steps of one cascade applied to an evaluation's state, counting step applications."""

    def __init__(self, ev: Evaluation, c: CCascade, record: CascadeRecord):
        self.ev, self.c, self.record = ev, c, record
        self.applications = 0

    def run(self, cond: Any) -> None:
        """Visit the steps while `cond` (the stop condition) is false; set the record's status."""
        record = self.record
        if isinstance(cond, Unknown):
            self.unknown(cond)
            return
        if cond:
            return
        for step in self.c.steps:
            if step.when is not None:
                applies = step.when(self.ev, {"dataset": self.ev.dataset})
                if isinstance(applies, Unknown):
                    self.unknown(applies)
                    return
                if not applies:
                    record.skipped.append(SkippedStep(step.decl.name, step.decl.loc, "condition false",
                                                      len(record.steps)))
                    continue
            stopped, cond = self.apply_step(step)
            if stopped:
                return
            if isinstance(cond, Unknown):
                self.unknown(cond)
                return
            if cond:
                record.status = "mitigated"
                return
        record.status = "still exceeded"

    def apply_step(self, step: CStep) -> tuple[bool, Any]:
        """Apply one step and record it: (whether an action stopped the cascade, the record then
        holding its status; the stop condition after the step)."""
        changes: list[str] = []
        stop: Optional[_Stop] = None
        try:
            self.run_actions(step, step, changes)
        except _Stop as exc:
            stop = exc
        self.ev.coverage.add(("step", self.c.decl.name, step.decl.name))
        cond, after = stop_condition(self.ev, self.c)
        self.record.steps.append(StepRecord(step.decl.name, step.decl.loc, changes, after))
        if stop is not None:
            self.record.status, self.record.error, self.record.waits = stop.status, stop.message, stop.waits
            return True, cond
        return False, cond

    def unknown(self, value: Unknown) -> None:
        """End with status "unknown", waiting for what `value` waits for."""
        self.record.status = "unknown"
        self.record.waits = waits_of(value)

    def run_actions(self, applied: CStep, step: CStep, changes: list[str]) -> None:
        """Apply `step`'s actions in order on behalf of the `applied` step (they differ inside a
        ``repeat``), forgetting after each action the values it can change (`Evaluation.reset`).

        ``repeat "a", "b"`` applies the actions of the named earlier steps in the order named,
        ignoring their ``when`` conditions; their changes are listed as ``repeat 'a': ...``.
        ``error "m" when C``: C unknown -> _Stop("unknown"); C true or absent -> _Stop("error", m).
        """
        self.applications += 1
        if self.applications > MAX_CASCADE_APPLICATIONS:
            raise _Stop("error", f"stopped after {MAX_CASCADE_APPLICATIONS} step applications (the limit"
                        " limits.MAX_CASCADE_APPLICATIONS): its repeats expand too far")
        note = f"cascade {self.c.decl.name}, step {applied.decl.name!r}"
        if step is not applied:
            note += f" (repeating {step.decl.name!r})"
        for action in step.actions:
            a = action.decl
            if isinstance(a, A.RepeatAction):
                for name in a.steps:
                    inner: list[str] = []
                    self.run_actions(applied, self.c.by_name[name], inner)
                    changes.extend(f"repeat {name!r}: {ch}" for ch in inner or ["no change"])
                continue
            if isinstance(a, A.ErrorAction):
                self.error_action(action, changes)
                continue
            changes.extend(self.apply(step, action, note))
            self.ev.reset(changed_names(a))

    def error_action(self, action: CAction, changes: list[str]) -> None:
        a: A.ErrorAction = action.decl  # type: ignore[assignment]
        if action.when is not None:
            fires = action.when(self.ev, {"dataset": self.ev.dataset})
            if isinstance(fires, Unknown):
                raise _Stop("unknown", waits=waits_of(fires))
            if not fires:
                return
        self.ev.coverage.add(coverage_key("error", a.loc))
        changes.append(f"error: {a.message}")
        raise _Stop("error", a.message)

    def apply(self, step: CStep, action: CAction, note: str) -> list[str]:
        """Apply a set, drop or keep action; the changes it made, as listed in reports."""
        a = action.decl
        if isinstance(a, A.SetAction) and a.kind is None:
            value = action.value(self.ev, {"dataset": self.ev.dataset})
            self.ev.set_param(a.name, value, note)
            return [f"{a.name} = {self.ev.show_param(a.name, value)}"]
        if isinstance(a, A.SetAction):
            return self.set_values(step, action, note)
        if isinstance(a, A.DropAction):
            gone = [ent for ent in live(self.ev, a.kind)
                    if action.where(self.ev, {"dataset": self.ev.dataset, a.kind: ent}) is True]
            for ent in gone:
                self.ev.dropped.add((ent.kind, ent.key))
            return [f"dropped {ent.path}" for ent in gone]
        return keep(self.ev, action)

    def set_values(self, step: CStep, action: CAction, note: str) -> list[str]:
        """``set KIND.NAME = V where W``: every value computed first, then all set at once."""
        ev = self.ev
        a: A.SetAction = action.decl  # type: ignore[assignment]
        todo = []
        for ent in live(ev, a.kind):
            env = {"dataset": ev.dataset, a.kind: ent}
            if action.where is not None and action.where(ev, env) is not True:
                continue
            ev.push_frame()
            value = action.value(ev, env)
            inputs = ev.pop_frame()  # as Provenance.inputs
            todo.append((ent, value, inputs))
        changes = []
        for ent, value, inputs in todo:
            ev.set_value(ent.kind, ent.key, a.name, value, Provenance("cascade", step.decl, inputs, note=note))
            changes.append(f"{ent.path}.{a.name} = {ev.show(ent.kind, a.name, value)}")
        return changes


def changed_names(a: Any) -> set[str]:
    """The names a set, drop or keep action changes: the parameter or attribute set, or the
    collection whose entities it drops."""
    if isinstance(a, A.SetAction):
        return {a.name}
    return {plural(a.kind)}


def live(ev: Evaluation, kind: str) -> list[Entity]:
    """The live entities of a kind (none while their collection is unknown)."""
    ents = ev.all_of(kind)
    return [] if isinstance(ents, Unknown) else list(ents)


# ---------------------------------------------------------------- keep
def keep(ev: Evaluation, action: CAction) -> list[str]:
    """``keep KIND where W group by G ranked by R1, R2 (while C | limit N)``.

    1. ``limit N`` (dataset scope) is evaluated first, once, before anything is dropped:
       unknown (or NaN) -> _Stop("unknown"); otherwise the first max(1, floor(N)) groups are
       kept (all of them when N is at least their number, e.g. inf).
    2. Live entities of KIND for which W is true (unknown counts as false) are grouped by
       G's key text (each entity its own group without ``group by``); groups keep first-seen
       order and are named by `_group_label`.
    3. Groups are sorted by their first entity's ranking keys, compared lexicographically,
       key by key: a known value sorts before an unknown one; numbers by value, false before
       true, strings (and enum members) by text. Ties keep first-seen order.
    4. Without ``limit``: the first group is always kept; the others are dropped, then
       restored one at a time in rank order while C is true, C seeing ``dataset`` and KIND
       bound to the first entity of the group being considered (values recomputed with that
       group restored). The first group for which C is not true (false or unknown) is
       dropped again, and so are all after it. Without ``while``, only the first group stays.
    Entities for which W is not true are left alone. With fewer than two groups nothing changes.
    """
    a: A.KeepAction = action.decl  # type: ignore[assignment]
    limit = _keep_limit(ev, action)
    groups, labels, ranks = _keep_groups(ev, action)
    first_seen = {gk: i for i, gk in enumerate(groups)}
    order = sorted(groups, key=lambda k: (ranks[k], first_seen[k]))
    if len(order) <= 1:
        return []
    if limit is not None:
        kept = order[:limit]
        for gk in order[limit:]:
            _drop_group(ev, groups[gk])
    else:
        kept = _keep_while(ev, action, order, groups)
    dropped = [gk for gk in order if gk not in kept]
    return [f"kept {labels[gk]}" for gk in kept] + [
        f"dropped {labels[gk]} ({len(groups[gk])} {a.kind}{'s' if len(groups[gk]) != 1 else ''})" for gk in dropped]


def _keep_groups(ev: Evaluation, action: CAction) -> tuple[dict[str, list[Entity]], dict[str, str], dict[str, tuple]]:
    """The candidate groups by key text (first-seen order), their labels and ranking keys."""
    a: A.KeepAction = action.decl  # type: ignore[assignment]
    groups: dict[str, list[Entity]] = {}
    labels: dict[str, str] = {}
    ranks: dict[str, tuple] = {}
    for ent in live(ev, a.kind):
        env = {"dataset": ev.dataset, a.kind: ent}
        if action.where is not None and action.where(ev, env) is not True:
            continue
        g = action.group(ev, env) if action.group is not None else ent
        gk = key_text(g)
        groups.setdefault(gk, []).append(ent)
        labels.setdefault(gk, _group_label(g, gk))
        if gk not in ranks:
            ranks[gk] = _rank_key(ev, action, env)
    return groups, labels, ranks


def _keep_limit(ev: Evaluation, action: CAction) -> Optional[int]:
    """max(1, floor(N)) groups to keep, or None without a ``limit``; huge N keeps all."""
    if action.limit is None:
        return None
    n = action.limit(ev, {"dataset": ev.dataset})
    if isinstance(n, Unknown):
        raise _Stop("unknown", waits=waits_of(n))
    if n != n:
        raise _Stop("unknown", waits=("keep limit is not a number",))
    return max(1, math.floor(max(-1e15, min(n, 1e15))))


def _rank_key(ev: Evaluation, action: CAction, env: dict) -> tuple:
    """One entity's ranking keys: (0, value) when known, (1, 0) when unknown (sorts last)."""
    out = []
    for fn in action.rank:
        v = fn(ev, env)
        out.append((1, 0) if isinstance(v, Unknown) else (0, v))
    return tuple(out)


def _drop_group(ev: Evaluation, ents: list[Entity]) -> None:
    for ent in ents:
        ev.dropped.add((ent.kind, ent.key))


def _keep_while(ev: Evaluation, action: CAction, order: list[str], groups: dict[str, list[Entity]]) -> list[str]:
    """Keep the first group, then further groups in rank order while the condition holds."""
    kind = action.decl.kind
    changed = {plural(kind)}
    for gk in order[1:]:
        _drop_group(ev, groups[gk])
    ev.reset(changed)
    kept = [order[0]]
    if action.while_ is None:
        return kept
    for gk in order[1:]:
        for ent in groups[gk]:
            ev.dropped.discard((ent.kind, ent.key))
        ev.reset(changed)
        if action.while_(ev, {"dataset": ev.dataset, kind: groups[gk][0]}) is True:
            kept.append(gk)
            continue
        _drop_group(ev, groups[gk])
        ev.reset(changed)
        break
    return kept


def _group_label(g: Any, gk: str) -> str:
    """How a kept or dropped group is named: an entity's path, entities' paths joined by '+'."""
    if isinstance(g, Entity):
        return g.path
    if isinstance(g, tuple) and g and all(isinstance(x, Entity) for x in g):
        return "+".join(x.path for x in g)
    return gk
