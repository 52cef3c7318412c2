"""Evaluate a checked rule set against a dataset's facts.

`Program` compiles a rule set once; `Program.run(dataset)` returns an
`Evaluation`: every derived value, memoised, each with its provenance (the rule,
the inputs it read), the cascades' applied steps, the recipe's stages, the
warnings that fire, and which rule items were exercised (for test coverage).

Order of one evaluation: the cascades (in `CheckResult.cascade_order`: declaration
order, except that a cascade whose rules read another cascade's outcome runs after
it), then the recipes' stages, then the warnings, all on the state the cascades
leave. Values are computed on demand and memoised until a cascade changes
something (see `Evaluation._cascade` for the cascade semantics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from almarules.dsl import allowed as allowed_values
from almarules.dsl import ast as A
from almarules.dsl.checker import CheckResult, outcome_attr, plural
from almarules.dsl.errors import Finding, RuleError
from almarules.dsl.intervals import Span, find_row, span_of
from almarules.dsl.limits import MAX_CASCADE_APPLICATIONS
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import NumT, StrT, T
from almarules.dsl.units import UnitError, format_quantity, parse_quantity, parse_unit
from almarules.engine.evaluate.compile import Fn, Names, compile_expr
from almarules.engine.facts.model import Dataset
from almarules.engine.evaluate.values import ACTIVE, Entity, Unknown, key_text, merge_unknowns
from almarules.engine.evaluate.world import World


class UsageError(Exception):
    """A mistake in how the engine was asked to run (bad --set, unknown value path)."""


# ---------------------------------------------------------------- compiled rules
@dataclass
class CDerive:
    decl: A.Derive
    when: Optional[Fn]
    expr: Fn
    cov: tuple = ()  # coverage key, hashed once


@dataclass
class CTerm:
    decl: A.ScoreTerm
    sign: float
    amount: Fn
    when: Fn


@dataclass
class CScore:
    decl: A.Score
    start: Fn
    terms: list[CTerm]
    clamp: Optional[tuple[Fn, Fn]]
    when: Optional[Fn]


@dataclass
class CTable:
    decl: Any  # A.Table or A.Bands
    domain: Span
    spans: list[Span]
    rows: list[Fn]  # tables: row formulas; bands: empty
    labels: list[str]  # bands: labels
    keys: list[tuple] = field(default_factory=list)  # per row: (what, name, i, "what:name:i")


@dataclass
class CEmit:
    decl: A.Emit
    assigns: list[tuple[str, Fn]]
    cov: tuple = ()


@dataclass
class CFor:
    decl: A.EmitFor
    binders: list[tuple[str, Fn, Optional[Fn]]]
    body: list[Any]


@dataclass
class CAction:
    decl: A.Action
    value: Optional[Fn] = None
    where: Optional[Fn] = None
    group: Optional[Fn] = None
    rank: list[Fn] = field(default_factory=list)  # ranking keys, lexicographic
    while_: Optional[Fn] = None  # sees `dataset` and the keep's kind (the candidate group's first entity)
    limit: Optional[Fn] = None  # dataset scope
    when: Optional[Fn] = None  # an error action's condition (dataset scope)


@dataclass
class CStep:
    decl: A.Step
    actions: list[CAction]
    when: Optional[Fn] = None  # dataset scope


@dataclass
class CCascade:
    decl: A.Cascade
    until: Fn
    steps: list[CStep]
    watched: list[str]  # dataset attributes the stop condition names
    by_name: dict[str, CStep] = field(default_factory=dict)


@dataclass
class CWarn:
    decl: A.Warn
    when: Fn
    cov: tuple = ()


@dataclass
class CStage:
    decl: A.Stage
    when: Optional[Fn]


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


class _Stop(Exception):
    """Ends a cascade from inside a step: status "error" (an error action) or "unknown"."""

    def __init__(self, status: str, message: Optional[str] = None, waits: tuple[str, ...] = ()):
        super().__init__(status)
        self.status, self.message, self.waits = status, message, waits


@dataclass
class StageRecord:
    name: str
    args: list[Any]
    run: Optional[bool]
    loc: A.Loc
    waits: tuple[str, ...] = ()


class Program:
    """A checked rule set compiled to closures; evaluate it on any number of datasets."""

    def __init__(self, rs: RuleSet, check: CheckResult):
        if check.findings:
            raise RuleError(check.findings, rs.sources)
        self.rs = rs
        self.check = check
        self.schema = check.schema
        enum_members = {m for e in self.schema.enums.values() for m in e.members}
        self.names = Names(set(rs.params), enum_members, set(rs.tables), set(rs.bands),
                           set(self.schema.collections))
        self.origins: dict[str, dict[str, str]] = {
            k: {a: info.origin for a, info in attrs.items()} for k, attrs in self.schema.kinds.items()}
        self.params: dict[str, float] = {}
        for name, p in rs.params.items():
            value = compile_expr(p.value, self.names, frozenset())(None, {})
            self.params[name] = value
        self._check_defaults()
        # kind -> attribute -> its rules, highest priority first
        self.derives: dict[str, dict[str, list[CDerive]]] = {}
        for target, rules in rs.derives.items():
            kind, attr = target.split(".", 1)
            local = frozenset({"dataset", kind})
            ordered = sorted(rules, key=lambda r: -(r.priority or 0))
            self.derives.setdefault(kind, {})[attr] = [
                CDerive(r, self._c(r.when, local), self._c(r.expr, local), coverage_key("derive", r.loc))
                for r in ordered]
        self.scores: dict[tuple[str, str], CScore] = {}
        for s in rs.scores.values():
            local = frozenset({"dataset", s.kind})
            terms = [CTerm(t, 1.0 if t.sign == "+" else -1.0, self._c(t.amount, local), self._c(t.when, local))
                     for t in s.terms]
            clamp = (self._c(s.clamp[0], local), self._c(s.clamp[1], local)) if s.clamp else None
            self.scores[(s.kind, s.attr)] = CScore(s, self._c(s.start, local), terms, clamp, self._c(s.when, local))
        self.tables: dict[str, CTable] = {}
        scale = lambda unit: 1.0 if unit is None else parse_unit(unit)[0]  # noqa: E731
        for t in rs.tables.values():
            local = frozenset({t.arg})
            self.tables[t.name] = CTable(t, span_of(t.domain, scale), [span_of(r.interval, scale) for r in t.rows],
                                         [self._c(r.expr, local) for r in t.rows], [])
        for b in rs.bands.values():
            self.tables[b.name] = CTable(b, span_of(b.domain, scale), [span_of(r.interval, scale) for r in b.rows],
                                         [], [r.label for r in b.rows])
        for name, t in self.tables.items():
            what = "table" if isinstance(t.decl, A.Table) else "band"
            t.keys = [(what, name, i, f"{what}:{name}:{i}") for i in range(len(t.spans))]
        self.param_keys = {name: f"param:{name}" for name in rs.params}
        self.collections = {kind: self._c_body(c.body, frozenset({"dataset"})) for kind, c in rs.collections.items()}
        order = check.cascade_order or list(rs.cascades)
        self.cascades = [self._c_cascade(rs.cascades[name]) for name in order]
        self.outcome_of = {outcome_attr(name): name for name in rs.cascades}
        self.warns = [CWarn(w, self._c(w.when, frozenset({"dataset"})), coverage_key("warn", w.loc))
                      for w in rs.warns.values()]
        self.recipes = {name: [CStage(st, self._c(st.when, frozenset({"dataset"}))) for st in r.stages]
                        for name, r in rs.recipes.items()}
        self.recipe_args = {name: [[self._c(a, frozenset({"dataset"})) for a in st.args] for st in r.stages]
                            for name, r in rs.recipes.items()}

    def _check_defaults(self) -> None:
        """A default the checker could not evaluate (it calls a function) must satisfy its ``in``."""
        bad = [Finding(p.value.loc, "out-of-range", f"the default of param {name} is not "
                                                    f"{allowed_values.describe(p.allowed)}")
               for name, p in self.rs.params.items()
               if p.allowed is not None and not allowed_values.accepts(p.allowed, self.params[name])]
        if bad:
            raise RuleError(bad, self.rs.sources)

    def _c(self, e: Optional[A.Expr], local: frozenset[str]) -> Optional[Fn]:
        return None if e is None else compile_expr(e, self.names, local)

    def _c_body(self, body, local: frozenset[str]) -> list:
        out = []
        for item in body:
            if isinstance(item, A.Emit):
                out.append(CEmit(item, [(n, self._c(x, local)) for n, x in item.assigns], coverage_key("emit", item.loc)))
            else:
                scope = set(local)
                binders = []
                for b in item.binders:
                    src = self._c(b.source, frozenset(scope))
                    scope.add(b.var)
                    binders.append((b.var, src, self._c(b.where, frozenset(scope))))
                out.append(CFor(item, binders, self._c_body(item.body, frozenset(scope))))
        return out

    def _c_cascade(self, c: A.Cascade) -> CCascade:
        ds = frozenset({"dataset"})
        steps = [CStep(st, [self._c_action(a) for a in st.actions], self._c(st.when, ds)) for st in c.steps]
        watched = list(dict.fromkeys(dataset_attrs(c.until)))
        return CCascade(c, self._c(c.until, ds), steps, watched, {st.decl.name: st for st in steps})

    def _c_action(self, a: A.Action) -> CAction:
        ds = frozenset({"dataset"})
        if isinstance(a, A.SetAction):
            local = ds if a.kind is None else frozenset({"dataset", a.kind})
            return CAction(a, value=self._c(a.value, local), where=self._c(a.where, local))
        if isinstance(a, A.DropAction):
            return CAction(a, where=self._c(a.where, frozenset({"dataset", a.kind})))
        if isinstance(a, A.ErrorAction):
            return CAction(a, when=self._c(a.when, ds))
        if isinstance(a, A.RepeatAction):
            return CAction(a)
        local = frozenset({"dataset", a.kind})
        return CAction(a, where=self._c(a.where, local), group=self._c(a.group, local),
                       rank=[self._c(k, local) for k in a.rank_keys], while_=self._c(a.while_, local),
                       limit=self._c(a.limit, ds))

    # ------------------------------------------------------------ parameters
    def param_type(self, name: str) -> T:
        return self.check.param_types[name]

    def resolve_set(self, assignment: str) -> tuple[str, float | str]:
        """``imaging.max_cube_size=40GB`` -> ("max_cube_size", canonical value)."""
        if "=" not in assignment:
            raise UsageError(f"--set needs name=value, got {assignment!r}")
        name, text = (s.strip() for s in assignment.split("=", 1))
        stem = None
        if "." in name:
            stem, name = name.rsplit(".", 1)
        if name not in self.rs.params:
            import difflib

            close = difflib.get_close_matches(name, list(self.rs.params), n=1)
            raise UsageError(f"--set {assignment}: no parameter {name!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        if stem is not None and self.rs.param_modules.get(name) != stem:
            raise UsageError(f"--set {assignment}: parameter {name!r} is declared in "
                             f"{self.rs.param_modules.get(name)!r}, not {stem!r}")
        value = self._set_value(name, text, assignment)
        self._check_allowed(name, value, text, assignment)
        return name, value

    def _set_value(self, name: str, text: str, assignment: str) -> float | str:
        """The canonical value of ``--set`` text for parameter `name` (of the parameter's type)."""
        want = self.param_type(name)
        if isinstance(want, StrT):
            return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text
        if text.lower() in ("true", "false"):
            raise UsageError(f"--set {assignment}: parameters are numbers or strings")
        try:
            value, dim = parse_quantity(text)
        except UnitError as exc:
            raise UsageError(f"--set {assignment}: {exc}") from None
        if isinstance(want, NumT) and want.dim != dim:
            raise UsageError(f"--set {assignment}: {name} is in {want.dim.display_unit() or 'plain numbers'}, "
                             f"got {dim.display_unit() or 'a plain number'}")
        if math.isnan(value):
            raise UsageError(f"--set {assignment}: {name} needs a number")
        return value

    def _check_allowed(self, name: str, value: float | str, text: str, assignment: str) -> None:
        """Refuse a value outside the parameter's ``in`` clause: one line naming the parameter,
        the value, what it accepts and where that is declared."""
        clause = self.rs.params[name].allowed
        if clause is None or allowed_values.accepts(clause, value):
            return
        hint = ""
        if clause.values and isinstance(value, str):
            import difflib

            close = difflib.get_close_matches(value, list(clause.values), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"--set {assignment}: param {name} does not accept {text}: it takes "
                         f"{allowed_values.describe(clause)} (declared at {clause.loc}){hint}")

    def run(self, dataset: Dataset, params: Optional[dict[str, float]] = None,
            source: str = "<facts>", param_origins: Optional[dict[str, str]] = None,
            assume: Optional[dict[str, str]] = None) -> "Evaluation":
        ev = Evaluation(self, World(dataset, self.schema, source), params or {}, param_origins or {})
        for path, text in (assume or {}).items():
            ev.assume(path, text)
        ev.run()
        return ev


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
            self._cascade(c)
        for name, stages in self.p.recipes.items():
            self.stages[name] = [self._stage(st, args) for st, args in zip(stages, self.p.recipe_args[name])]
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

    def _push(self) -> None:
        self.frames.append([])

    def _pop(self) -> list[Any]:
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
        self._push()
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
        inputs = self._pop()
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
        self._push()
        made: dict[str, Entity] = {}
        unknowns: list[Unknown] = []
        self._emit(kind, self.p.collections[kind], {"dataset": self.dataset}, made, unknowns)
        inputs = self._pop()
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
            self._for(kind, item, 0, env, made, unknowns)

    def _for(self, kind: str, item: CFor, i: int, env: dict, made: dict, unknowns: list) -> None:
        if i == len(item.binders):
            self._emit(kind, item.body, env, made, unknowns)
            return
        var, src, where = item.binders[i]
        coll = src(self, env)
        if isinstance(coll, Unknown):
            unknowns.append(coll)
            return
        for element in coll:
            inner = dict(env)
            inner[var] = element
            if where is not None:
                keep = where(self, inner)
                if isinstance(keep, Unknown):
                    unknowns.append(keep)
                    continue
                if not keep:
                    continue
            self._for(kind, item, i + 1, inner, made, unknowns)

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

    # ------------------------------------------------------------ cascades
    def _until(self, c: CCascade) -> tuple[Any, dict[str, Any]]:
        """The stop condition, and the dataset values it names (all of them, shown in reports)."""
        value = c.until(self, {"dataset": self.dataset})
        shown = {f"dataset.{name}": self.attr(self.dataset, name) for name in c.watched}
        return value, shown

    def _outcome(self, ent: Entity, name: str) -> Any:
        """``dataset.NAME_outcome``: the finished cascade's outcome (one of OUTCOMES), else an error."""
        cascade = self.p.outcome_of[name]
        ent.prov[name] = Provenance("cascade", self.p.rs.cascades[cascade], note=f"outcome of cascade {cascade}")
        if cascade in self.outcomes:
            return self.outcomes[cascade]
        return Unknown(errors=[f"dataset.{name} is not known until cascade {cascade} has finished"])

    def _cascade(self, c: CCascade) -> None:
        """Run one cascade and record it (`CascadeRecord`); afterwards its outcome is known.

        Semantics (a vectorised evaluator must reproduce them exactly):

        1. ``until`` is evaluated. Unknown: status "unknown" (waits: its waits and errors), stop.
           True: status "not needed", stop.
        2. The steps are visited in order, each only while ``until`` is false:
           a. a step with ``when C`` (dataset scope): C unknown -> status "unknown" (waits: C's),
              stop; C false -> the step is recorded in `CascadeRecord.skipped` ("condition
              false") and the next step is visited; C true (or no ``when``) -> the step applies.
           b. an applied step runs its actions in order (`_run_actions`); every value is
              recomputed after each action. An error action that fires ends the cascade with
              status "error" and its message (`CascadeRecord.error`); an error condition or a
              keep limit that is unknown ends it with status "unknown". Either way the step is
              recorded as applied, with the changes made before it stopped.
           c. after an applied step, ``until`` is evaluated again: unknown -> "unknown", stop;
              true -> "mitigated", stop.
        3. Every step visited without ``until`` becoming true: "still exceeded".

        The outcome (the status) is set when the cascade finishes; read while it runs,
        ``dataset.NAME_outcome`` is an error value. Every cached value is dropped at the end, so
        no value computed during the cascade outlives it.
        """
        cond, before = self._until(c)
        record = CascadeRecord(c.decl.name, c.decl.loc, "not needed", before)
        self.cascades.append(record)
        try:
            self._run_cascade(c, record, cond)
        finally:
            self.outcomes[c.decl.name] = record.outcome
            self.reset()

    def _run_cascade(self, c: CCascade, record: CascadeRecord, cond: Any) -> None:
        if isinstance(cond, Unknown):
            self._unknown(record, cond)
            return
        if cond:
            return
        env, self.applications = {"dataset": self.dataset}, 0
        for step in c.steps:
            if step.when is not None:
                applies = step.when(self, env)
                if isinstance(applies, Unknown):
                    self._unknown(record, applies)
                    return
                if not applies:
                    record.skipped.append(SkippedStep(step.decl.name, step.decl.loc, "condition false",
                                                      len(record.steps)))
                    continue
            changes: list[str] = []
            stop: Optional[_Stop] = None
            try:
                self._run_actions(c, step, step, changes)
            except _Stop as exc:
                stop = exc
            self.coverage.add(("step", c.decl.name, step.decl.name))
            cond, after = self._until(c)
            record.steps.append(StepRecord(step.decl.name, step.decl.loc, changes, after))
            if stop is not None:
                record.status, record.error, record.waits = stop.status, stop.message, stop.waits
                return
            if isinstance(cond, Unknown):
                self._unknown(record, cond)
                return
            if cond:
                record.status = "mitigated"
                return
        record.status = "still exceeded"

    @staticmethod
    def _unknown(record: CascadeRecord, value: Unknown) -> None:
        record.status = "unknown"
        record.waits = _waits(value)

    def _run_actions(self, c: CCascade, applied: CStep, step: CStep, changes: list[str]) -> None:
        """Apply `step`'s actions in order on behalf of the `applied` step (they differ inside a
        ``repeat``), recomputing every value after each action.

        ``repeat "a", "b"`` applies the actions of the named earlier steps in the order named,
        ignoring their ``when`` conditions; their changes are listed as ``repeat 'a': ...``.
        ``error "m" when C``: C unknown -> _Stop("unknown"); C true or absent -> _Stop("error", m).
        """
        self.applications += 1
        if self.applications > MAX_CASCADE_APPLICATIONS:
            raise _Stop("error", f"stopped after {MAX_CASCADE_APPLICATIONS} step applications (the limit"
                        " limits.MAX_CASCADE_APPLICATIONS): its repeats expand too far")
        note = f"cascade {c.decl.name}, step {applied.decl.name!r}"
        if step is not applied:
            note += f" (repeating {step.decl.name!r})"
        for action in step.actions:
            a = action.decl
            if isinstance(a, A.RepeatAction):
                for name in a.steps:
                    inner: list[str] = []
                    self._run_actions(c, applied, c.by_name[name], inner)
                    changes.extend(f"repeat {name!r}: {ch}" for ch in inner or ["no change"])
                continue
            if isinstance(a, A.ErrorAction):
                self._error_action(action, changes)
                continue
            changes.extend(self._apply(c, step, action, note))
            self.reset()

    def _error_action(self, action: CAction, changes: list[str]) -> None:
        a: A.ErrorAction = action.decl  # type: ignore[assignment]
        if action.when is not None:
            fires = action.when(self, {"dataset": self.dataset})
            if isinstance(fires, Unknown):
                raise _Stop("unknown", waits=_waits(fires))
            if not fires:
                return
        self.coverage.add(coverage_key("error", a.loc))
        changes.append(f"error: {a.message}")
        raise _Stop("error", a.message)

    def _apply(self, c: CCascade, step: CStep, action: CAction, note: str) -> list[str]:
        a = action.decl
        if isinstance(a, A.SetAction) and a.kind is None:
            value = action.value(self, {"dataset": self.dataset})
            self.param_overlay[a.name] = (value, note)
            return [f"{a.name} = {self._show_param(a.name, value)}"]
        if isinstance(a, A.SetAction):
            todo = []
            for ent in self._live(a.kind):
                env = {"dataset": self.dataset, a.kind: ent}
                if action.where is not None and action.where(self, env) is not True:
                    continue
                self._push()
                value = action.value(self, env)
                inputs = self._pop()
                todo.append((ent, value, inputs))
            changes = []
            for ent, value, inputs in todo:
                key = (ent.kind, ent.key, a.name)
                self.overlay[key] = (value, Provenance("cascade", step.decl, inputs, note=note))
                changes.append(f"{ent.path}.{a.name} = {self._show(ent.kind, a.name, value)}")
            return changes
        if isinstance(a, A.DropAction):
            gone = []
            for ent in self._live(a.kind):
                if action.where(self, {"dataset": self.dataset, a.kind: ent}) is True:
                    gone.append(ent)
            for ent in gone:
                self.dropped.add((ent.kind, ent.key))
            return [f"dropped {ent.path}" for ent in gone]
        return self._keep(action)

    def _live(self, kind: str) -> list[Entity]:
        ents = self.all_of(kind)
        return [] if isinstance(ents, Unknown) else list(ents)

    def _keep(self, action: CAction) -> list[str]:
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
        limit = self._keep_limit(action)
        groups: dict[str, list[Entity]] = {}
        labels: dict[str, str] = {}
        ranks: dict[str, tuple] = {}
        for ent in self._live(a.kind):
            env = {"dataset": self.dataset, a.kind: ent}
            if action.where is not None and action.where(self, env) is not True:
                continue
            g = action.group(self, env) if action.group is not None else ent
            gk = key_text(g)
            groups.setdefault(gk, []).append(ent)
            labels.setdefault(gk, _group_label(g, gk))
            if gk not in ranks:
                ranks[gk] = self._rank_key(action, env)
        first_seen = {gk: i for i, gk in enumerate(groups)}
        order = sorted(groups, key=lambda k: (ranks[k], first_seen[k]))
        if len(order) <= 1:
            return []
        if limit is not None:
            kept = order[:limit]
            for gk in order[limit:]:
                self._drop_group(groups[gk])
        else:
            kept = self._keep_while(action, order, groups)
        dropped = [gk for gk in order if gk not in kept]
        return [f"kept {labels[gk]}" for gk in kept] + [
            f"dropped {labels[gk]} ({len(groups[gk])} {a.kind}{'s' if len(groups[gk]) != 1 else ''})" for gk in dropped]

    def _keep_limit(self, action: CAction) -> Optional[int]:
        """max(1, floor(N)) groups to keep, or None without a ``limit``; huge N keeps all."""
        if action.limit is None:
            return None
        n = action.limit(self, {"dataset": self.dataset})
        if isinstance(n, Unknown):
            raise _Stop("unknown", waits=_waits(n))
        if n != n:
            raise _Stop("unknown", waits=("keep limit is not a number",))
        return max(1, math.floor(max(-1e15, min(n, 1e15))))

    def _rank_key(self, action: CAction, env: dict) -> tuple:
        """One entity's ranking keys: (0, value) when known, (1, 0) when unknown (sorts last)."""
        out = []
        for fn in action.rank:
            v = fn(self, env)
            out.append((1, 0) if isinstance(v, Unknown) else (0, v))
        return tuple(out)

    def _drop_group(self, ents: list[Entity]) -> None:
        for ent in ents:
            self.dropped.add((ent.kind, ent.key))

    def _keep_while(self, action: CAction, order: list[str], groups: dict[str, list[Entity]]) -> list[str]:
        """Keep the first group, then further groups in rank order while the condition holds."""
        kind = action.decl.kind
        for gk in order[1:]:
            self._drop_group(groups[gk])
        self.reset()
        kept = [order[0]]
        if action.while_ is None:
            return kept
        for gk in order[1:]:
            for ent in groups[gk]:
                self.dropped.discard((ent.kind, ent.key))
            self.reset()
            if action.while_(self, {"dataset": self.dataset, kind: groups[gk][0]}) is True:
                kept.append(gk)
                continue
            self._drop_group(groups[gk])
            self.reset()
            break
        return kept

    # ------------------------------------------------------------ warnings
    def _warn(self, w: CWarn) -> Optional[WarningRecord]:
        """A warning fires when its condition is true; an unknown condition "may apply"."""
        cond = w.when(self, {"dataset": self.dataset})
        if isinstance(cond, Unknown):
            return WarningRecord(w.decl.message, w.decl.loc, "unknown", _waits(cond), w.decl.doc)
        if not cond:
            return None
        self.coverage.add(w.cov)
        return WarningRecord(w.decl.message, w.decl.loc, "fires", (), w.decl.doc)

    def _stage(self, st: CStage, args: list[Fn]) -> StageRecord:
        env = {"dataset": self.dataset}
        values = [fn(self, env) for fn in args]
        run: Optional[bool] = True
        waits: tuple[str, ...] = ()
        if st.when is not None:
            cond = st.when(self, env)
            if isinstance(cond, Unknown):
                run, waits = None, tuple(sorted(cond.waits | cond.errors))
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

    def _show(self, kind: str, name: str, value: Any) -> str:
        from almarules.engine.evaluate.present import show_value

        return show_value(value, self.value_type(kind, name), self.display_unit(kind, name))

    def _show_param(self, name: str, value: Any) -> str:
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


def param_unit(p: A.Param) -> Optional[str]:
    e = p.value
    if isinstance(e, A.Unary):
        e = e.operand
    return e.unit if isinstance(e, A.Num) else None


def dataset_attrs(e: Any) -> list[str]:
    """Names X of every ``dataset.X`` in an expression, in order."""
    out: list[str] = []
    if isinstance(e, A.Attr) and isinstance(e.obj, A.Name) and e.obj.id == "dataset":
        return [e.name]
    if isinstance(e, tuple):
        for item in e:
            out.extend(dataset_attrs(item))
        return out
    if hasattr(e, "__dataclass_fields__"):
        for name in e.__dataclass_fields__:
            if name != "loc":
                out.extend(dataset_attrs(getattr(e, name)))
    return out


def coverage_key(what: str, loc: A.Loc) -> tuple:
    """A cheap-to-hash coverage key for a rule item at `loc`."""
    return (what, f"{loc.file}:{loc.line}:{loc.column}")


def _group_label(g: Any, gk: str) -> str:
    """How a kept or dropped group is named: an entity's path, entities' paths joined by '+'."""
    if isinstance(g, Entity):
        return g.path
    if isinstance(g, tuple) and g and all(isinstance(x, Entity) for x in g):
        return "+".join(x.path for x in g)
    return gk


def _waits(value: Unknown) -> tuple[str, ...]:
    """What an unknown control condition waits for: its missing facts and its errors."""
    return tuple(sorted(value.waits | value.errors))


def language_coverage_items(program: Program) -> dict[tuple, str]:
    """Coverage items of the cascade and warning extensions, beyond `tester.coverage_items`:
    each ``warn`` (exercised when it fires) and each ``error`` action (when it fires)."""
    items: dict[tuple, str] = {}
    for w in program.rs.warns.values():
        items[coverage_key("warn", w.loc)] = f"warn {w.message!r}   [{w.loc}]"
    for c in program.rs.cascades.values():
        for st in c.steps:
            for a in st.actions:
                if isinstance(a, A.ErrorAction):
                    items[coverage_key("error", a.loc)] = (
                        f"cascade {c.name}: step {st.name!r}: error {a.message!r}   [{a.loc}]")
    return items
