"""Compile a checked rule set's declarations (rules, scores, tables, collections, cascades, ...) to closures.

Expressions are compiled by `almarules.engine.evaluate.compile`; this module compiles what holds
them, each expression in the scope its declaration gives it (``dataset``, the rule's kind, a
table's argument, the variables of an emit's ``for``). Evaluation is `evaluation.Evaluation`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Container, Optional, Union

from almarules.dsl import allowed as allowed_values
from almarules.dsl import ast as A
from almarules.dsl.checker import CheckResult
from almarules.dsl.errors import Finding, RuleError
from almarules.dsl.intervals import Span, span_of
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import Schema
from almarules.dsl.units import parse_unit
from almarules.engine.evaluate import codegen, codegen_scores
from almarules.engine.evaluate.compile import CBinder, Fn, Names, closure_expr, compile_binders, compile_expr, constant
from almarules.engine.evaluate.runtime import foldable
from almarules.engine.evaluate.world import FactReaders
from almarules.engine.evaluate.sharing import Keys, shared
from almarules.engine.evaluate.values import ACTIVE, Entity, Unknown

DATASET = frozenset({"dataset"})  # the scope of dataset-level expressions


# ---------------------------------------------------------------- compiled declarations
@dataclass
class CDerive:
    decl: A.Derive
    cov: tuple = ()  # coverage key, hashed once


Getter = Callable[[Any, Entity, str], Any]  # (evaluation, entity, attribute) -> its value, not yet cached


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
    assigns: list[tuple[str, int, Any]]  # (attribute, how, what): FROM_FN fn(ev, env), FROM_ENV name, CONSTANT value
    cov: tuple = ()
    names: tuple[str, ...] = ()  # the attributes assigned, in order


FROM_FN, FROM_ENV, CONSTANT = 0, 1, 2  # how an emitted attribute's value is had (`CEmit.assigns`)


@dataclass
class CFor:
    decl: A.EmitFor
    binders: list[CBinder]
    body: list[Union[CEmit, "CFor"]]


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


# ---------------------------------------------------------------- helpers
def coverage_key(what: str, loc: A.Loc) -> tuple:
    """A cheap-to-hash coverage key for a rule item at `loc`."""
    return (what, f"{loc.file}:{loc.line}:{loc.column}")


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


def compile_optional(e: Optional[A.Expr], names: Names, local: frozenset[str]) -> Optional[Fn]:
    """`compile_expr`, or None for an absent expression (no ``when``, no ``where``)."""
    return None if e is None else compile_expr(e, names, local)


# ---------------------------------------------------------------- names and parameters
def rule_names(rs: RuleSet, schema: Schema) -> Names:
    """What bare names mean in `rs`: its parameters, enum members, tables, bands, collections."""
    enum_members = {m for e in schema.enums.values() for m in e.members}
    return Names(set(rs.params), enum_members, set(rs.tables), set(rs.bands), set(schema.collections), schema.kinds,
                 FactReaders(schema))


def attribute_origins(schema: Schema) -> dict[str, dict[str, str]]:
    """Kind -> attribute -> where its value comes from ("fact", "derived", "score", ...)."""
    return {k: {a: info.origin for a, info in attrs.items()} for k, attrs in schema.kinds.items()}


def compile_params(rs: RuleSet, names: Names) -> dict[str, float]:
    """Each parameter's default value (canonical units); `RuleError` for a default outside its
    ``in`` clause (one the checker could not evaluate because it calls a function)."""
    params = {name: compile_expr(p.value, names, frozenset())(None, {}) for name, p in rs.params.items()}
    bad = [Finding(p.value.loc, "out-of-range", f"the default of param {name} is not "
                                                f"{allowed_values.describe(p.allowed)}")
           for name, p in rs.params.items()
           if p.allowed is not None and not allowed_values.accepts(p.allowed, params[name])]
    if bad:
        raise RuleError(bad, rs.sources)
    return params


# ---------------------------------------------------------------- rules, scores, tables
def compile_derives(rs: RuleSet, names: Names) -> dict[str, dict[str, list[CDerive]]]:
    """Kind -> attribute -> its rules, highest priority first (declaration order among equals)."""
    derives: dict[str, dict[str, list[CDerive]]] = {}
    for target, rules in rs.derives.items():
        kind, attr = target.split(".", 1)
        ordered = sorted(rules, key=lambda r: -(r.priority or 0))
        derives.setdefault(kind, {})[attr] = [CDerive(r, coverage_key("derive", r.loc)) for r in ordered]
        names.functions[(kind, attr)] = f"d{len(names.functions)}"  # (bound by compile_derive_functions)
    return derives


def compile_derive_functions(derives: dict[str, dict[str, list[CDerive]]], names: Names,
                             made: set[str]) -> dict[str, dict[str, Getter]]:
    """Kind -> attribute -> the function computing it by its rules (`codegen.derive_function`;
    `_closure_derive` for rules nested too deeply for Python's compiler). The values alike for
    entities of their kind (`sharing`; `made`: the kinds made by collection rules) get their memo
    keys in ``names.shared`` and ``names.keyed``."""
    decls = {kind: {attr: [r.decl for r in rules] for attr, rules in attrs.items()} for kind, attrs in derives.items()}
    keys = Keys(decls, names.kinds, made)
    for kind, attrs in decls.items():
        for attr, rules in attrs.items():
            if shared(rules, kind):  # (not shared while an entity has a value of its own: Program.unshared)
                names.shared[(kind, attr)] = codegen.memo_key(names)
                names.key_reads[names.shared[(kind, attr)]] = (kind, frozenset({attr}))
            elif (given := keys.key_attrs(kind, attr)) is not None:
                names.keyed[(kind, attr)] = (codegen.memo_key(names), given)
                names.key_reads[names.keyed[(kind, attr)][0]] = (kind, keys.reads(kind, attr))
    out: dict[str, dict[str, Getter]] = {}
    for kind, attrs in derives.items():
        for attr, rules in attrs.items():
            pairs = [(r.decl, r.cov) for r in rules]
            try:
                fn = codegen.derive_function(kind, attr, pairs, names, partial(constant, names=names))
            except codegen.TooDeep:
                fn = _closure_derive(kind, pairs, names)
            names.ns[names.functions[(kind, attr)]] = fn
            out.setdefault(kind, {})[attr] = fn
    return out


def _closure_derive(kind: str, rules: list[tuple[A.Derive, tuple]], names: Names) -> Getter:
    """`codegen.derive_function`'s function, its rules compiled to closures."""
    local = frozenset({"dataset", kind})
    compiled = [(decl, cov, None if decl.when is None else closure_expr(decl.when, names, local),
                 closure_expr(decl.expr, names, local)) for decl, cov in rules]

    def derive(ev: Any, ent: Entity, name: str) -> Any:
        if ev.overlay and (hit := ev.overlay.get((ent.kind, ent.key, name))) is not None:
            ent.prov[name] = hit[1]
            return hit[0]
        ent.cache[name] = ACTIVE  # (not in it before: see Evaluation.value)
        frame: list[Any] = [None]  # the rule used, then the inputs read (records.ProvMap)
        frames = ev.frames
        frames.append(frame)
        env = {"dataset": ev.dataset, kind: ent}
        for decl, cov, when, expr in compiled:
            if when is not None:
                cond = when(ev, env)
                if cond.__class__ is Unknown:
                    value, frame[0] = cond, decl
                    break
                if not cond:
                    continue
            frame[0] = decl
            value = expr(ev, env)
            ev.coverage.add(cov)
            break
        else:
            value = Unknown(errors=[f"no rule for {ent.path}.{name} applies"])
        frames.pop()
        ent.prov[name] = frame
        return value
    return derive


def compile_scores(rs: RuleSet, names: Names, skip: Container = ()) -> dict[tuple[str, str], CScore]:
    """(kind, attribute) -> its score compiled to closures (`Evaluation._score`): start, signed
    terms, optional clamp and ``when``; not those in `skip` (generated: `compile_score_functions`)."""
    scores: dict[tuple[str, str], CScore] = {}
    for s in rs.scores.values():
        if (s.kind, s.attr) in skip:
            continue
        local = frozenset({"dataset", s.kind})
        terms = [CTerm(t, 1.0 if t.sign == "+" else -1.0, compile_expr(t.amount, names, local),
                       compile_expr(t.when, names, local))
                 for t in s.terms]
        clamp = (compile_expr(s.clamp[0], names, local), compile_expr(s.clamp[1], names, local)) if s.clamp else None
        scores[(s.kind, s.attr)] = CScore(s, compile_optional(s.start, names, local), terms, clamp,
                                          compile_optional(s.when, names, local))
    return scores


def compile_score_functions(rs: RuleSet, names: Names) -> dict[tuple[str, str], Getter]:
    """(kind, attribute) -> the generated function of its score (`codegen_scores.score_function`);
    a score nested too deeply for Python's compiler is left to `Evaluation._score`."""
    out = {}
    for s in rs.scores.values():
        try:
            out[(s.kind, s.attr)] = codegen_scores.score_function(s, names, partial(constant, names=names))
        except codegen.TooDeep:
            pass
    return out


def _unit_scale(unit: Optional[str]) -> float:
    return 1.0 if unit is None else parse_unit(unit)[0]


def compile_tables(rs: RuleSet, names: Names) -> dict[str, CTable]:
    """Table and band name -> its rows: spans in canonical units, a formula (tables) or a label
    (bands) per row, and each row's coverage key."""
    tables: dict[str, CTable] = {}
    for t in rs.tables.values():
        local = frozenset({t.arg})
        tables[t.name] = CTable(t, span_of(t.domain, _unit_scale), [span_of(r.interval, _unit_scale) for r in t.rows],
                                [compile_expr(r.expr, names, local) for r in t.rows], [])
    for b in rs.bands.values():
        tables[b.name] = CTable(b, span_of(b.domain, _unit_scale), [span_of(r.interval, _unit_scale) for r in b.rows],
                                [], [r.label for r in b.rows])
    for name, t in tables.items():
        what = "table" if isinstance(t.decl, A.Table) else "band"
        t.keys = [(what, name, i, f"{what}:{name}:{i}") for i in range(len(t.spans))]
    return tables


# ---------------------------------------------------------------- collections
def compile_collections(rs: RuleSet, names: Names, skip: Container = ()) -> dict[str, list[Union[CEmit, CFor]]]:
    """Kind -> the body of the collection rule that creates its entities (dataset scope), compiled
    to closures (`Evaluation._emit`); not those in `skip` (generated: `compile_collection_functions`)."""
    return {kind: compile_body(c.body, names, DATASET) for kind, c in rs.collections.items() if kind not in skip}


def compile_collection_functions(rs: RuleSet, names: Names) -> dict[str, Callable[[Any, dict, list], None]]:
    """Kind -> the generated function running its collection rule (`codegen.collection_function`);
    a rule nested too deeply for Python's compiler is left to its closures (`compile_collections`)."""
    out = {}
    for kind, c in rs.collections.items():
        try:
            out[kind] = codegen.collection_function(kind, c.body, names, partial(constant, names=names),
                                                    lambda item: coverage_key("emit", item.loc))
        except codegen.TooDeep:
            pass
    return out


def compile_body(body: tuple, names: Names, local: frozenset[str]) -> list[Union[CEmit, CFor]]:
    """A collection body: ``emit`` items, and ``for`` loops whose body sees their variables."""
    out: list[Union[CEmit, CFor]] = []
    for item in body:
        if isinstance(item, A.Emit):
            assigns = [_assign(n, x, names, local) for n, x in item.assigns]
            out.append(CEmit(item, assigns, coverage_key("emit", item.loc), tuple(n for n, _ in item.assigns)))
        else:
            binders, scope = compile_binders(item.binders, names, local, compile_fn=compile_expr)
            out.append(CFor(item, binders, compile_body(item.body, names, scope)))
    return out


def _assign(name: str, x: A.Expr, names: Names, local: frozenset[str]) -> tuple[str, int, Any]:
    """How an emit's ``name = x`` is computed: a loop variable read from the environment and a
    constant taken as it is (neither reads anything to record), anything else by its function."""
    if isinstance(x, A.Name) and x.id in local:
        return name, FROM_ENV, x.id
    if foldable(x, names, local):
        return name, CONSTANT, constant(x, names)
    return name, FROM_FN, compile_expr(x, names, local)


# ---------------------------------------------------------------- cascades, warnings, recipes
def compile_cascades(rs: RuleSet, check: CheckResult, names: Names) -> list[CCascade]:
    """The cascades in the order they run (`CheckResult.cascade_order`, else declaration order)."""
    order = check.cascade_order or list(rs.cascades)
    return [compile_cascade(rs.cascades[name], names) for name in order]


def compile_cascade(c: A.Cascade, names: Names) -> CCascade:
    """A cascade: its stop condition (and the dataset values it names), its steps by name."""
    steps = [CStep(st, [compile_action(a, names) for a in st.actions], compile_optional(st.when, names, DATASET))
             for st in c.steps]
    watched = list(dict.fromkeys(dataset_attrs(c.until)))
    return CCascade(c, compile_optional(c.until, names, DATASET), steps, watched, {st.decl.name: st for st in steps})


def compile_action(a: A.Action, names: Names) -> CAction:
    """A step's action, each expression in its scope: ``dataset``, plus the kind it acts on."""
    if isinstance(a, A.SetAction):
        local = DATASET if a.kind is None else frozenset({"dataset", a.kind})
        return CAction(a, value=compile_expr(a.value, names, local), where=compile_optional(a.where, names, local))
    if isinstance(a, A.DropAction):
        return CAction(a, where=compile_optional(a.where, names, frozenset({"dataset", a.kind})))
    if isinstance(a, A.ErrorAction):
        return CAction(a, when=compile_optional(a.when, names, DATASET))
    if isinstance(a, A.RepeatAction):
        return CAction(a)
    local = frozenset({"dataset", a.kind})
    return CAction(a, where=compile_optional(a.where, names, local), group=compile_optional(a.group, names, local),
                   rank=[compile_expr(k, names, local) for k in a.rank_keys],
                   while_=compile_optional(a.while_, names, local), limit=compile_optional(a.limit, names, DATASET))


def compile_warns(rs: RuleSet, names: Names) -> list[CWarn]:
    """The ``warn`` declarations, in declaration order (dataset scope)."""
    return [CWarn(w, compile_expr(w.when, names, DATASET), coverage_key("warn", w.loc)) for w in rs.warns.values()]


def compile_recipes(rs: RuleSet, names: Names) -> tuple[dict[str, list[CStage]], dict[str, list[list[Fn]]]]:
    """Recipe name -> its stages (with their ``when``), and recipe name -> each stage's arguments."""
    recipes = {name: [CStage(st, compile_optional(st.when, names, DATASET)) for st in r.stages]
               for name, r in rs.recipes.items()}
    args = {name: [[compile_expr(a, names, DATASET) for a in st.args] for st in r.stages]
            for name, r in rs.recipes.items()}
    return recipes, args
