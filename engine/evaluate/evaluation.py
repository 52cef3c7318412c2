"""One evaluation of a compiled rule set on one dataset: values on demand, memoised, with provenance.

Order of one evaluation (`Evaluation.run`): the cascades (in `CheckResult.cascade_order`:
declaration order, except that a cascade whose rules read another cascade's outcome runs after
it; see `cascade.run_cascade` for their semantics), then the recipes' stages, then the warnings,
all on the state the cascades leave. Values are computed on demand and memoised until a cascade
changes something (`Evaluation.reset`).

Each attribute's value comes from its getter (`attribute_getters`, one per kind and attribute,
made once per program): a fact, a key, a created collection, a derived value (the generated
function of its rules, `codegen.derive_function`), a score or a cascade outcome.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from almarules.dsl.checker import plural
from almarules.dsl.intervals import find_row
from almarules.dsl.types import NumT, T
from almarules.dsl.units import UnitError, format_quantity, parse_quantity
from almarules.engine.evaluate.cascade import run_cascade
from almarules.engine.evaluate.compile import Fn, binder_rows
from almarules.engine.evaluate.compile_program import FROM_ENV, FROM_FN, CEmit, CFor, CStage, CWarn, Getter
from almarules.engine.evaluate.params import UsageError, param_unit
from almarules.engine.evaluate.records import CascadeRecord, Provenance, StageRecord, WarningRecord, decode_reads
from almarules.engine.evaluate.runtime import emit_entity
from almarules.engine.evaluate.values import ACTIVE, Entity, Unknown, merge_unknowns, waits_of
from almarules.engine.evaluate.stale import Stale
from almarules.engine.evaluate.world import World

if TYPE_CHECKING:
    from almarules.engine.evaluate.program import Program

R = TypeVar("R")


class Evaluation:
    """One evaluation of a program on one dataset (memoised, with provenance)."""

    def __init__(self, program: Program, world: World, overrides: dict[str, float], origins: dict[str, str]):
        self.p = program
        self.world = world
        self.dataset = world.dataset
        self.home = world.home
        self.param_origins = origins
        self.param_overlay: dict[str, tuple[float, str]] = {}  # name -> (value, note) set by a cascade
        #: name -> its value now: a cascade's (param_overlay), else the caller's (overrides), else the default
        self.param_values = {**program.params, **overrides}
        self.overlay: dict[tuple[str, str, str], tuple[Any, Provenance]] = {}
        self.dropped: set[tuple[str, str]] = set()
        self.cached: list[Entity] = []  # other entities given values (cleared by reset, as the world's)
        self.indexes: dict[Any, tuple] = {}  # id(collection) (and join attributes) -> (collection, index)
        self.coll_memo: dict[str, Any] = {}  # kind -> its live entities made by its collection rule
        self.coll_made: dict[str, tuple[Entity, ...]] = {}  # kind -> every entity that rule made
        self.interned: dict[tuple, tuple] = {}  # the tuples given to entities made in this state
        self.overlaid: frozenset[tuple[str, str]] = frozenset()  # (kind, attribute) of the overlay's entries
        self.unshared: frozenset[int] = frozenset()  # keyed memo keys not to use now (Program.unshared)
        self.memo: dict[int, tuple] = {}  # aggregates of the dataset only (codegen) -> (value, inputs read)
        self.cycles = 0  # values met that depend on themselves (a memoised aggregate must meet none)
        self.getters = program.getters
        self.frames: list[list[Any]] = []  # inputs read, flat: entity, attr, ... or "param:x"/"table:t:i"
        self.coverage: set[tuple] = set()
        self.cascades: list[CascadeRecord] = []
        self.outcomes: dict[str, str] = {}  # cascade name -> outcome, once it has finished
        self.stages: dict[str, list[StageRecord]] = {}
        self.warnings: list[WarningRecord] = []
        self.entity_index: dict[str, Entity] = {}

    def assume(self, path: str, text: Any) -> None:
        """Pin a derived value (rule tests): ``dataset.importdata_score`` = 0.33."""
        ent_path, _, attr = path.rpartition(".")
        kind, _, rest = ent_path.partition("[")
        key = "dataset" if kind == "dataset" else rest[:-1]
        if self.p.origins.get(kind, {}).get(attr) not in ("derived", "score"):
            raise UsageError(f"cannot assume {path}: only derived values and scores can be assumed")
        t = self.value_type(kind, attr)
        if isinstance(text, bool) or isinstance(t, NumT) is False:
            value: Any = text
        else:
            try:
                value, dim = parse_quantity(str(text))
            except UnitError as exc:
                raise UsageError(f"cannot assume {path} = {text!r}: {exc}") from None
            if dim != t.dim:
                raise UsageError(f"cannot assume {path} = {text!r}: it is in "
                                 f"{t.dim.display_unit() or 'plain numbers'}")
        self.set_value(kind, key, attr, value, Provenance("assumed", note="assumed by the test"))

    def set_param(self, name: str, value: float | str, note: str) -> None:
        """Give a parameter a new value (a cascade's ``set``), `note` saying why."""
        self.param_overlay[name] = (value, note)
        self.param_values[name] = value

    def set_value(self, kind: str, key: str, attr: str, value: Any, prov: Provenance) -> None:
        """Give one entity's attribute a value of its own (a cascade's ``set``, a test's assumption);
        values shared across entities that read it are no longer shared (`Program.unshared`)."""
        self.overlay[(kind, key, attr)] = (value, prov)
        if (kind, attr) not in self.overlaid:
            self.overlaid = self.overlaid | {(kind, attr)}
            self.unshared = self.p.unshared(self.overlaid)

    # ------------------------------------------------------------ driver
    def run(self) -> None:
        """The cascades, then the recipes' stages and the warnings (see the module's docstring)."""
        collector_paused(Evaluation._run, self)

    def _run(self) -> None:
        for c in self.p.cascades:
            run_cascade(self, c)
        for name, stages in self.p.recipes.items():
            self.stages[name] = [self._stage(st, args)
                                 for st, args in zip(stages, self.p.recipe_args[name], strict=True)]
        self.warnings = [r for r in (self._warn(w) for w in self.p.warns) if r is not None]

    def reset(self, changed: Optional[set[str]] = None) -> None:
        """Forget the cached values a change can make stale (`stale.StaleValues`): those that can
        read the `changed` names; without them (or after a value met itself), every value."""
        if changed is not None and not self.cycles:
            stale = self.p.stale.of(frozenset(changed))
            if not stale.remake:
                self._forget(stale)
                return
        for ents in (*self.world.by_kind.values(), *self.coll_made.values(), self.cached):
            for ent in ents:
                ent.cache.clear()
                ent.prov.clear()
        self.cached.clear()
        self.coll_memo.clear()
        self.coll_made.clear()
        self.interned.clear()
        self.memo.clear()

    def _forget(self, stale: Stale) -> None:
        cached = self.cached
        for kind, names in stale.attrs.items():
            if not names:
                continue
            for ents in (self.world.by_kind.get(kind, ()), self.coll_made.get(kind, ()),
                         [e for e in cached if e.kind == kind] if cached else ()):
                for ent in ents:
                    cache, prov = ent.cache, ent.prov
                    for name in names:
                        if name in cache:
                            del cache[name]
                            prov.pop(name, None)
        for kind in stale.refiltered:  # the same entities, minus those dropped now
            if kind in self.coll_made and not isinstance(self.coll_memo[kind], Unknown):
                self.coll_memo[kind] = tuple(e for e in self.coll_made[kind] if (kind, e.key) not in self.dropped)
        self.memo.clear()

    # ------------------------------------------------------------ values
    def attr(self, ent: Any, name: str) -> Any:
        """``ent.name``, computed once per evaluation state, recorded as an input of the value
        being computed (if any)."""
        frames = self.frames
        if frames and ent.__class__ is Entity:
            frame = frames[-1]
            frame.append(ent)
            frame.append(name)
        return self.value(ent, name)

    def value(self, ent: Any, name: str) -> Any:
        """`attr` without recording the read (generated code records its reads itself)."""
        if ent.__class__ is not Entity:
            if isinstance(ent, Unknown):
                return ent
            return Unknown(errors=[f"cannot take .{name} of {ent!r}"])
        cache = ent.cache
        if name in cache:
            value = cache[name]
            if value is ACTIVE:
                return self.cycle(ent, name)
            return value
        if ent.prov.home is not self.home:  # not one of this evaluation's (World.by_kind, coll_made)
            self._adopt(ent)
        getter = self.getters[ent.kind].get(name)
        if getter is None:
            value = Unknown(errors=[f"{ent.kind} has no attribute {name!r}"])
        else:
            value = getter(self, ent, name)
        cache[name] = value
        return value

    def _adopt(self, ent: Entity) -> None:
        """An entity made elsewhere: reset clears its values too from now on."""
        ent.prov.home = self.home
        self.cached.append(ent)

    def cycle(self, ent: Entity, name: str) -> Unknown:
        """The error value of ``ent.name`` read while it is being computed."""
        self.cycles += 1
        return Unknown(errors=[f"{ent.path}.{name} depends on itself"])

    def push_frame(self) -> None:
        """Start recording the inputs read (for one value's provenance)."""
        self.frames.append([])

    def pop_frame(self) -> list[Any]:
        """Stop recording: the inputs read since the matching `push_frame`, in order, as
        `Provenance.inputs` ((entity, attr) pairs and strings)."""
        return decode_reads(self.frames.pop())  # duplicates are removed when presented

    def _score(self, ent: Entity, name: str) -> Any:
        """A score's value: its start plus the terms that apply, clamped; with its reasons."""
        key = (ent.kind, ent.key, name)
        if key in self.overlay:
            value, prov = self.overlay[key]
            ent.prov[name] = prov
            return value
        sc = self.p.scores[(ent.kind, name)]
        frame: list[Any] = [sc.decl, ()]  # (records.ProvMap)
        self.frames.append(frame)
        env = {"dataset": self.dataset, ent.kind: ent}
        value: Any
        reasons = []
        if sc.when is not None and (w := sc.when(self, env)) is not True:
            value = w if isinstance(w, Unknown) else Unknown(errors=[f"score {sc.decl.target} does not apply"])
        else:
            value = sc.start(self, env)
            pending = []
            for term in sc.terms:
                cond = term.when(self, env)
                if isinstance(cond, Unknown):
                    pending.append(cond)
                    continue
                if cond:
                    amount = term.amount(self, env)
                    if isinstance(amount, Unknown):
                        pending.append(amount)
                        continue
                    self.coverage.add(("term", sc.decl.target, term.decl.reason))
                    reasons.append((term.decl.sign, amount, term.decl.reason, term.decl.loc))
                    if not isinstance(value, Unknown):
                        value = value + term.sign * amount
            if pending:
                value = merge_unknowns(pending + ([value] if isinstance(value, Unknown) else []))
            elif sc.clamp is not None and not isinstance(value, Unknown):
                lo, hi = sc.clamp[0](self, env), sc.clamp[1](self, env)
                value = min(max(value, lo), hi)
        self.frames.pop()
        frame[1] = tuple(reasons)
        ent.prov[name] = frame
        return value

    def lookup(self, what: str, name: str, x: float) -> Any:
        t = self.p.tables[name]
        i = find_row(t.spans, x)
        if i < 0:
            dim = self.p.check.table_dims.get(name)
            shown = format_quantity(x, dim) if dim is not None else f"{x:g}"
            return Unknown(errors=[f"{shown} is outside {what} {name}'s domain {t.decl.domain}"])
        key = t.keys[i]
        self.coverage.add(key)
        if self.frames:
            self.frames[-1].append(key[3])
        if what == "band":
            return t.labels[i]
        return t.rows[i](self, {t.decl.arg: x})

    # ------------------------------------------------------------ collections
    def entities(self, kind: str) -> Any:
        """The entities a collection rule creates (minus those a cascade dropped)."""
        if kind in self.coll_memo:
            return self.coll_memo[kind]
        decl = self.p.rs.collections[kind]
        frame: list[Any] = [decl]  # (records.ProvMap)
        self.frames.append(frame)
        made: dict[str, Entity] = {}
        unknowns: list[Unknown] = []
        run = self.p.collection_fns.get(kind)
        if run is not None:  # (codegen.collection_function)
            run(self, made, unknowns)
        else:
            self._emit(kind, self.p.collections[kind], {"dataset": self.dataset}, made, unknowns)
        self.frames.pop()
        if unknowns:
            value: Any = merge_unknowns(unknowns)
        else:
            value = tuple(e for e in made.values() if (kind, e.key) not in self.dropped)
            for e in made.values():
                self.entity_index[e.path] = e
        self.coll_made[kind] = tuple(made.values())
        self.coll_memo[kind] = value
        self.dataset.prov[plural(kind)] = frame
        return value

    def _emit(self, kind: str, body: list, env: dict, made: dict, unknowns: list) -> None:
        """A collection rule's body run by its closures (the rule too deep for `codegen`)."""
        for item in body:
            if isinstance(item, CEmit):
                values = tuple(what(self, env) if how == FROM_FN else env[what] if how == FROM_ENV else what
                               for _, how, what in item.assigns)
                emit_entity(self, kind, made, unknowns, item.cov, item.names, values)
                continue
            self._emit_for(kind, item, env, made, unknowns)

    def _emit_for(self, kind: str, item: CFor, env: dict, made: dict, unknowns: list) -> None:
        """A ``for`` loop's body, emitted for each row of its variables (`binder_rows`)."""
        for inner in binder_rows(self, item.binders, env, unknowns):
            self._emit(kind, item.body, inner, made, unknowns)

    def derived_names(self) -> dict[str, list[str]]:
        """Kind -> its derived and scored attributes and cascade outcomes (sorted), dataset first."""
        return {kind: list(names) for kind, names in self.p.derived_names}

    def compute_all(self) -> list[tuple[Entity, str, Any]]:
        """Every derived value of every live entity: (entity, attribute, value), in report order."""
        return collector_paused(Evaluation._compute_all, self)

    def _compute_all(self) -> list[tuple[Entity, str, Any]]:
        out: list[tuple[Entity, str, Any]] = []
        if self.frames:  # (not while a value is computed: its reads are recorded through attr)
            for kind, names in self.p.derived_names:
                ents = self.all_of(kind)
                if not isinstance(ents, Unknown):
                    out.extend((ent, name, self.attr(ent, name)) for ent in ents for name in names)
            return out
        for kind, every in self.p.compute_every:
            ents = self.all_of(kind)
            if not isinstance(ents, Unknown):
                every(self, ents, out)
        return out

    def all_of(self, kind: str) -> Any:
        """Every live entity of a kind (facts or created)."""
        if kind == "dataset":
            return (self.dataset,)
        coll = plural(kind)
        if coll not in self.p.schema.collections:
            return ()
        return self.attr(self.dataset, coll)

    # ------------------------------------------------------------ cascade outcomes
    def _outcome(self, ent: Entity, name: str) -> Any:
        """``dataset.NAME_outcome``: the finished cascade's outcome (one of OUTCOMES), else an error."""
        cascade = self.p.outcome_of[name]
        ent.prov[name] = Provenance("cascade", self.p.rs.cascades[cascade], note=f"outcome of cascade {cascade}")
        if cascade in self.outcomes:
            return self.outcomes[cascade]
        return Unknown(errors=[f"dataset.{name} is not known until cascade {cascade} has finished"])

    # ------------------------------------------------------------ warnings and stages
    def _warn(self, w: CWarn) -> Optional[WarningRecord]:
        """A warning fires when its condition is true; an unknown condition "may apply"."""
        cond = w.when(self, {"dataset": self.dataset})
        if isinstance(cond, Unknown):
            return WarningRecord(w.decl.message, w.decl.loc, "unknown", waits_of(cond), w.decl.doc)
        if not cond:
            return None
        self.coverage.add(w.cov)
        return WarningRecord(w.decl.message, w.decl.loc, "fires", (), w.decl.doc)

    def _stage(self, st: CStage, args: list[Fn]) -> StageRecord:
        """A recipe stage: its arguments' values, and whether it runs (None while unknown)."""
        env = {"dataset": self.dataset}
        values = [fn(self, env) for fn in args]
        run: Optional[bool] = True
        waits: tuple[str, ...] = ()
        if st.when is not None:
            cond = st.when(self, env)
            if isinstance(cond, Unknown):
                run, waits = None, waits_of(cond)
            else:
                run = bool(cond)
        return StageRecord(st.decl.name, values, run, st.decl.loc, waits)

    # ------------------------------------------------------------ display
    def value_type(self, kind: str, name: str) -> T:
        return self.p.schema.kinds[kind][name].type

    def display_unit(self, kind: str, name: str) -> Optional[str]:
        """A derived value's declared unit; facts in their dimension's readable unit (GHz, not Hz)."""
        info = self.p.schema.kinds[kind][name]
        if info.origin == "fact":
            return None
        return info.unit or None

    def show(self, kind: str, name: str, value: Any) -> str:
        """A value of ``KIND.NAME`` as reports show it (readable unit)."""
        from almarules.engine.evaluate.present import show_value

        return show_value(value, self.value_type(kind, name), self.display_unit(kind, name))

    def show_param(self, name: str, value: Any) -> str:
        """A value of parameter `name`, in the unit its default is written in."""
        from almarules.engine.evaluate.present import show_value

        return show_value(value, self.p.param_type(name), param_unit(self.p.rs.params[name]))

    def resolve(self, path: str) -> tuple[Entity, str]:
        """``image[X.TARGET.0.cube].threshold`` -> (entity, attr)."""
        ent_path, _, attr = path.rpartition(".")
        while ent_path.count("[") != ent_path.count("]"):  # a '.' inside the key
            head, _, tail = ent_path.rpartition(".")
            ent_path, attr = head, f"{tail}.{attr}"
        if ent_path == "dataset":
            return self.dataset, attr
        if ent_path not in self.entity_index:
            kind = ent_path.split("[", 1)[0]
            self.all_of(kind)
        ent = self.entity_index.get(ent_path)
        if ent is None:
            raise UsageError(f"no entity {ent_path!r} in this dataset")
        return ent, attr


def collector_paused(method: Callable[[Evaluation], R], ev: Evaluation) -> R:
    """``method(ev)`` with Python's cyclic garbage collector paused.

    An evaluation allocates thousands of containers (values, entities, their provenance) that live
    until it ends; each collection pass would traverse them, and the whole heap besides, only to
    find nothing to free (the passes cost more than the evaluation itself when the caller holds
    many datasets). Collection resumes afterwards, as it was (not at all if it was disabled). Nothing
    is allocated before the pause: no collection comes between `Evaluation.run` and `compute_all`,
    so an evaluation dropped by then is freed by the next young-generation pass."""
    if not gc.isenabled():
        return method(ev)
    gc.disable()
    try:
        return method(ev)
    finally:
        gc.enable()


# ---------------------------------------------------------------- getters
def _fact(ev: Evaluation, ent: Entity, name: str) -> Any:
    value = ev.world.fact(ent, name)
    if ent.kind == "dataset" and name in ev.p.schema.collections and not isinstance(value, Unknown):
        value = tuple(e for e in value if (e.kind, e.key) not in ev.dropped)
        for e in value:
            ev.entity_index.setdefault(e.path, e)
    return value


def _created(ev: Evaluation, ent: Entity, name: str) -> Any:
    if ent.kind == "dataset":
        return ev.entities(ev.p.schema.collections[name])
    return ent.created[name]


_BY_ORIGIN: dict[str, Getter] = {
    "fact": _fact, "builtin": lambda ev, ent, name: ent.key, "created": _created,
    "score": lambda ev, ent, name: ev._score(ent, name), "outcome": lambda ev, ent, name: ev._outcome(ent, name),
}


def attribute_getters(origins: dict[str, dict[str, str]], derived: dict[str, dict[str, Getter]]
                      ) -> dict[str, dict[str, Getter]]:
    """Kind -> attribute -> how its value is computed: by its origin; a derived value by the
    function of its rules (in `derived`)."""
    out: dict[str, dict[str, Getter]] = {}
    for kind, attrs in origins.items():
        getters = out[kind] = {}
        for name, origin in attrs.items():
            if origin == "derived":
                if name in derived.get(kind, {}):
                    getters[name] = derived[kind][name]
            elif origin in _BY_ORIGIN:
                getters[name] = _BY_ORIGIN[origin]
    return out
