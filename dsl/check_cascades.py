"""Cascade checks: the 'until' condition, steps, and their actions (set, keep, drop, repeat, error)."""

from __future__ import annotations

from almarules.dsl import allowed
from almarules.dsl import ast as A
from almarules.dsl.cascade_bound import too_many_applications
from almarules.dsl.check_exprs import ExprChecker
from almarules.dsl.check_model import plural
from almarules.dsl.check_state import suggest
from almarules.dsl.disjoint import contradiction
from almarules.dsl.literals import literal_canonical, literal_text
from almarules.dsl.types import ANY, AnyT, BoolT, EnumT, NumT, StrT, compatible


def check_cascades(ck: ExprChecker) -> None:
    """Every cascade: an 'until', uniquely named steps, well-typed actions that can change something."""
    for c in ck.rs.cascades.values():
        scope = ck.entity_scope("dataset")
        ck.stack.append(("cascade", c.name))
        if c.until is None:
            ck.error(c.loc, "cascade-until", f"cascade {c.name!r} has no 'until' condition")
        else:
            ck.expect_bool(c.until, scope, "an 'until' condition")
        names: dict[str, A.Step] = {}
        for i, step in enumerate(c.steps):
            if step.name in names:
                ck.error(step.loc, "duplicate", f"cascade {c.name!r} has two steps named {step.name!r}")
            names[step.name] = step
            if step.when is not None:
                ck.expect_bool(step.when, scope, "a step's 'when' condition")
            for action in step.actions:
                _action(ck, action, step, c, i)
            _repeats_earlier(ck, c, step, i)
        if (big := too_many_applications(c)) is not None:
            ck.error(big[0].loc, "cascade-too-large", big[1], hint="repeat fewer steps, or fewer times")
        ck.stack.pop()


def _repeats_earlier(ck: ExprChecker, c: A.Cascade, step: A.Step, index: int) -> None:
    """A step with the same actions as an earlier unconditional step can never change anything."""
    for earlier in c.steps[:index]:
        if earlier.when is None and earlier.actions == step.actions:
            ck.error(step.loc, "step-never-applies",
                     f"step {step.name!r} can never change anything: it repeats step {earlier.name!r}")
            return


def _action(ck: ExprChecker, a: A.Action, step: A.Step, c: A.Cascade, index: int) -> None:
    if isinstance(a, A.SetAction):
        if a.kind is None:
            _set_param(ck, a, step)
        else:
            _set_attr(ck, a, step)
    elif isinstance(a, A.ErrorAction):
        if a.when is not None:
            ck.expect_bool(a.when, ck.entity_scope("dataset"), "an 'error' condition")
    elif isinstance(a, A.RepeatAction):
        _repeat_action(ck, a, step, c, index)
    else:
        _keep_or_drop(ck, a, step)


def _repeat_action(ck: ExprChecker, a: A.RepeatAction, step: A.Step, c: A.Cascade, index: int) -> None:
    """``repeat "x"`` names an earlier step of the same cascade (not itself, not a later one)."""
    earlier = [s.name for s in c.steps[:index]]
    later = [s.name for s in c.steps[index + 1:]]
    for name in a.steps:
        if name == step.name:
            ck.error(a.loc, "bad-repeat", f"step {step.name!r} cannot repeat itself")
        elif name in later and name not in earlier:
            ck.error(a.loc, "bad-repeat",
                     f"step {step.name!r} cannot repeat {name!r}, which comes after it",
                     hint="a step can repeat only the steps before it")
        elif name not in earlier:
            ck.error(a.loc, "unknown-name", f"step {step.name!r} repeats unknown step {name!r}",
                     hint=suggest(name, earlier))


def _set_param(ck: ExprChecker, a: A.SetAction, step: A.Step) -> None:
    """``set ppb = 3``: a declared parameter, a value of its type that it accepts, not its default."""
    if a.name not in ck.rs.params:
        ck.error(a.loc, "unknown-name", f"step {step.name!r} sets unknown parameter {a.name!r}",
                 hint=suggest(a.name, ck.rs.params))
        return
    t = ck.infer(a.value, ck.entity_scope("dataset"))
    pt = ck.param_types.get(a.name, ANY)
    if not compatible(t, pt):
        ck.error(a.value.loc, "unit-mismatch" if isinstance(t, NumT) else "type-mismatch",
                 f"parameter {a.name} is {pt.describe()}, the step sets {t.describe()}")
    if a.where is not None:
        ck.error(a.where.loc, "syntax", "'where' selects entities; a parameter has one value")
    decl = ck.rs.params[a.name]
    value = allowed.constant_value(a.value, ck.rs.params)
    if decl.allowed is not None and compatible(t, pt) and value is not None \
            and not allowed.accepts(decl.allowed, value):
        ck.error(a.value.loc, "out-of-range",
                 f"step {step.name!r} sets param {a.name} to a value it does not accept: "
                 f"it takes {allowed.describe(decl.allowed)} ({decl.allowed.loc})")
    default = literal_canonical(decl.value)
    if default is not None and default == literal_canonical(a.value):
        ck.error(a.loc, "step-never-applies",
                 f"step {step.name!r} can never change anything: {a.name} is already "
                 f"{literal_text(a.value)}")


def _set_attr(ck: ExprChecker, a: A.SetAction, step: A.Step) -> None:
    """``set image.nbin = 2 where ...``: a derived attribute, a value of its type, a satisfiable
    'where', and a value its only, unconditional rule does not already give."""
    if a.kind not in ck.schema.kinds:
        ck.error(a.loc, "unknown-kind", f"unknown kind {a.kind!r}", hint=suggest(a.kind, ck.schema.kinds))
        return
    info = ck.schema.kinds[a.kind].get(a.name)
    if info is None:
        ck.error(a.loc, "unknown-attribute", f"{a.kind} has no attribute {a.name!r}",
                 hint=suggest(a.name, ck.schema.kinds[a.kind]))
        return
    if info.origin != "derived":
        ck.error(a.loc, "derive-fact", f"a cascade can only set derived values; {a.kind}.{a.name} is a {info.origin} value")
        return
    scope = ck.entity_scope(a.kind)
    t = ck.infer(a.value, scope)
    at = ck.attr_type(a.kind, a.name)
    if not compatible(t, at):
        ck.error(a.value.loc, "unit-mismatch" if isinstance(t, NumT) else "type-mismatch",
                 f"{a.kind}.{a.name} is {at.describe()}, the step sets {t.describe()}")
    if a.where is not None:
        ck.expect_bool(a.where, scope, "a 'where' condition")
        if contradiction(a.where, ck.members()):
            ck.error(a.where.loc, "step-never-applies",
                     f"step {step.name!r}: no {a.kind} can satisfy this condition")
    rules = ck.rs.derives.get(f"{a.kind}.{a.name}", [])
    if len(rules) == 1 and rules[0].when is None and literal_canonical(rules[0].expr) is not None \
            and literal_canonical(rules[0].expr) == literal_canonical(a.value):
        ck.error(a.loc, "step-never-applies",
                 f"step {step.name!r} can never change anything: {a.kind}.{a.name} is always "
                 f"{literal_text(a.value)}")


def _keep_or_drop(ck: ExprChecker, a: A.KeepAction | A.DropAction, step: A.Step) -> None:
    kind = a.kind
    if kind not in ck.schema.kinds:
        ck.error(a.loc, "unknown-kind", f"unknown kind {kind!r}", hint=suggest(kind, ck.schema.kinds))
        return
    if plural(kind) not in ck.schema.collections:
        ck.error(a.loc, "type-mismatch", f"cannot keep or drop {kind}s: there is no collection {plural(kind)!r}")
        return
    scope = ck.entity_scope(kind)
    if isinstance(a, A.DropAction):
        ck.expect_bool(a.where, scope, "a 'where' condition")
        if contradiction(a.where, ck.members()):
            ck.error(a.where.loc, "step-never-applies", f"step {step.name!r}: no {kind} can satisfy this condition")
        return
    if a.where is not None:
        ck.expect_bool(a.where, scope, "a 'where' condition")
    if a.group is not None:
        ck.infer(a.group, scope)
    for key in a.rank_keys:
        rt = ck.infer(key, scope)
        if not isinstance(rt, (NumT, StrT, EnumT, AnyT, BoolT)):
            ck.error(key.loc, "type-mismatch", f"cannot rank by {rt.describe()}")
    if a.while_ is not None:  # sees the candidate group's first entity as `kind`
        ck.expect_bool(a.while_, scope, "a 'while' condition")
    if a.limit is not None:
        _keep_limit(ck, a)


def _keep_limit(ck: ExprChecker, a: A.KeepAction) -> None:
    """``limit N``: a plain number of groups (dataset scope); it replaces ``while``."""
    t = ck.infer(a.limit, ck.entity_scope("dataset"))
    if isinstance(t, NumT) and not t.dim.is_dimensionless:
        ck.error(a.limit.loc, "unit-mismatch",
                 f"a 'limit' is a number of groups, got a quantity in {t.dim.display_unit()}")
    elif not isinstance(t, (NumT, AnyT)):
        ck.error(a.limit.loc, "type-mismatch", f"a 'limit' is a number of groups, got {t.describe()}")
    if a.while_ is not None:
        ck.error(a.limit.loc, "conflicting-clauses",
                 "a keep takes 'limit' or 'while', not both",
                 hint="'limit N' keeps the first N groups; 'while C' keeps groups while C holds")
