"""One evaluation of a compiled rule set on one dataset: values on demand, memoised, with provenance.

Order of one evaluation (`Evaluation.run`): the cascades (in `CheckResult.cascade_order`:
declaration order, except that a cascade whose rules read another cascade's outcome runs after
it; see `cascade.run_cascade` for their semantics), then the recipes' stages, then the warnings,
all on the state the cascades leave. Values are computed on demand and memoised until a cascade
changes something (`Evaluation.reset`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from almarules.dsl.checker import plural
from almarules.dsl.intervals import find_row
from almarules.dsl.types import NumT, T
from almarules.dsl.units import UnitError, format_quantity, parse_quantity
from almarules.engine.evaluate.cascade import run_cascade
from almarules.engine.evaluate.compile import Fn, binder_rows
from almarules.engine.evaluate.compile_program import CDerive, CEmit, CFor, CStage, CWarn
from almarules.engine.evaluate.params import UsageError, param_unit
from almarules.engine.evaluate.records import CascadeRecord, Provenance, StageRecord, WarningRecord
from almarules.engine.evaluate.values import ACTIVE, Entity, Unknown, key_text, merge_unknowns, waits_of
from almarules.engine.evaluate.world import World

if TYPE_CHECKING:
    from almarules.engine.evaluate.program import Program


class Evaluation:
    """One evaluation of a program on one dataset (memoised, with provenance)."""

    def __init__(self, program: Program, world: World, overrides: dict[str, float], origins: dict[str, str]):
        self.p = program
        self.world = world
        self.dataset = world.dataset
        self.params = dict(program.params)
        self.params.update(overrides)
        self.param_origins = origins
        self.param_overlay: dict[str, tuple[float, str]] = {}
        self.overlay: dict[tuple[str, str, str], tuple[Any, Provenance]] = {}
        self.dropped: set[tuple[str, str]] = set()
        self.cached: list[Entity] = []  # entities holding cached values (cleared by reset)
        self.indexes: dict[int, tuple] = {}  # id(collection) -> (collection, {key: entity}) for lookup()
        self.coll_memo: dict[str, Any] = {}
        self.frames: list[list[Any]] = []  # inputs read: (entity, attr) or "param:x"/"table:t:i"
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
        self.overlay[(kind, key, attr)] = (value, Provenance("assumed", note="assumed by the test"))

    # ------------------------------------------------------------ driver
    def run(self) -> None:
        for c in self.p.cascades:
            run_cascade(self, c)
        for name, stages in self.p.recipes.items():
            self.stages[name] = [self._stage(st, args)
                                 for st, args in zip(stages, self.p.recipe_args[name], strict=True)]
        self.warnings = [r for r in (self._warn(w) for w in self.p.warns) if r is not None]

    def reset(self) -> None:
        for ent in self.cached:
            ent.cache.clear()
            ent.prov.clear()
        self.cached.clear()
        self.coll_memo.clear()

    # ------------------------------------------------------------ values
    def attr(self, ent: Any, name: str) -> Any:
        if ent.__class__ is not Entity:
            if isinstance(ent, Unknown):
                return ent
            return Unknown(errors=[f"cannot take .{name} of {ent!r}"])
        frames = self.frames
        if frames:
            frames[-1].append((ent, name))
        cache = ent.cache
        if name in cache:
            value = cache[name]
            if value is ACTIVE:
                return Unknown(errors=[f"{ent.path}.{name} depends on itself"])
            return value
        origin = self.p.origins[ent.kind].get(name)
        if origin == "fact":
            value = self.world.fact(ent, name)
            if ent.kind == "dataset" and name in self.p.schema.collections and not isinstance(value, Unknown):
                value = tuple(e for e in value if (e.kind, e.key) not in self.dropped)
                for e in value:
                    self.entity_index.setdefault(e.path, e)
        elif origin == "builtin":
            value = ent.key
        elif origin == "created":
            if ent.kind == "dataset":
                value = self.entities(self.p.schema.collections[name])
            else:
                value = ent.created[name]
        elif origin == "derived":
            value = self._derived(ent, name)
        elif origin == "score":
            value = self._score(ent, name)
        elif origin == "outcome":
            value = self._outcome(ent, name)
        else:
            value = Unknown(errors=[f"{ent.kind} has no attribute {name!r}"])
        if not cache:
            self.cached.append(ent)
        cache[name] = value
        return value

    def push_frame(self) -> None:
        """Start recording the inputs read (for one value's provenance)."""
        self.frames.append([])

    def pop_frame(self) -> list[Any]:
        """Stop recording: the inputs read since the matching `push_frame`, in order."""
        return self.frames.pop()  # duplicates are removed when presented

    def _derived(self, ent: Entity, name: str) -> Any:
        if self.overlay:
            hit = self.overlay.get((ent.kind, ent.key, name))
            if hit is not None:
                ent.prov[name] = hit[1]
                return hit[0]
        cache = ent.cache
        if cache.get(name) is ACTIVE:
            return Unknown(errors=[f"{ent.path}.{name} depends on itself"])
        if not cache:
            self.cached.append(ent)
        cache[name] = ACTIVE
        frames = self.frames
        frames.append([])
        env = ent.env
        if env is None:
            env = ent.env = {"dataset": self.dataset, ent.kind: ent}
        value: Any = None
        used: Optional[CDerive] = None
        for rule in self.p.derives[ent.kind][name]:
            if rule.when is not None:
                cond = rule.when(self, env)
                if cond.__class__ is Unknown:
                    value = cond
                    used = rule
                    break
                if not cond:
                    continue
            value = rule.expr(self, env)
            used = rule
            self.coverage.add(rule.cov)
            break
        if used is None:
            value = Unknown(errors=[f"no rule for {ent.path}.{name} applies"])
        ent.prov[name] = Provenance("rule", used.decl if used is not None else None, frames.pop())
        return value

    def _score(self, ent: Entity, name: str) -> Any:
        key = (ent.kind, ent.key, name)
        if key in self.overlay:
            value, prov = self.overlay[key]
            ent.prov[name] = prov
            return value
        sc = self.p.scores[(ent.kind, name)]
        self.push_frame()
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
        inputs = self.pop_frame()
        ent.prov[name] = Provenance("score", sc.decl, inputs, tuple(reasons))
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
        self.push_frame()
        made: dict[str, Entity] = {}
        unknowns: list[Unknown] = []
        self._emit(kind, self.p.collections[kind], {"dataset": self.dataset}, made, unknowns)
        inputs = self.pop_frame()
        if unknowns:
            value: Any = merge_unknowns(unknowns)
        else:
            value = tuple(e for e in made.values() if (kind, e.key) not in self.dropped)
            for e in made.values():
                self.entity_index[e.path] = e
        self.coll_memo[kind] = value
        self.dataset.prov[plural(kind)] = Provenance("collection", self.p.rs.collections[kind], inputs)
        return value

    def _emit(self, kind: str, body: list, env: dict, made: dict, unknowns: list) -> None:
        for item in body:
            if isinstance(item, CEmit):
                values = {}
                for name, fn in item.assigns:
                    values[name] = fn(self, env)
                bad = merge_unknowns(values.values())
                if bad is not None:
                    unknowns.append(bad)
                    continue
                key = ".".join(key_text(v) for v in values.values())
                if key not in made:
                    made[key] = Entity(kind, key, None, values, order=len(made))
                    self.coverage.add(item.cov)
                continue
            self._emit_for(kind, item, env, made, unknowns)

    def _emit_for(self, kind: str, item: CFor, env: dict, made: dict, unknowns: list) -> None:
        """A ``for`` loop's body, emitted for each row of its variables (`binder_rows`)."""
        for inner in binder_rows(self, item.binders, env, unknowns):
            self._emit(kind, item.body, inner, made, unknowns)

    def derived_names(self) -> dict[str, list[str]]:
        """Kind -> its derived and scored attributes and cascade outcomes (sorted), dataset first."""
        out: dict[str, list[str]] = {}
        kinds = self.p.schema.kinds
        for kind in ["dataset"] + sorted(k for k in kinds if k != "dataset"):
            names = sorted(a for a, info in kinds[kind].items() if info.origin in ("derived", "score", "outcome"))
            if names:
                out[kind] = names
        return out

    def compute_all(self) -> list[tuple[Entity, str, Any]]:
        """Every derived value of every live entity: (entity, attribute, value), in report order."""
        out = []
        for kind, names in self.derived_names().items():
            ents = self.all_of(kind)
            if isinstance(ents, Unknown):
                continue
            for ent in ents:
                for name in names:
                    out.append((ent, name, self.attr(ent, name)))
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
