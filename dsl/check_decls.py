"""The checker's walk of declarations: enums, parameters, tables and bands, the attributes rules
derive, score and create, collections, conflicting rules, recipes and warnings."""

from __future__ import annotations

from typing import Optional

from almarules.dsl import allowed
from almarules.dsl import ast as A
from almarules.dsl.check_exprs import ExprChecker
from almarules.dsl.check_intervals import check_spans
from almarules.dsl.check_model import OUTCOMES, outcome_attr, plural
from almarules.dsl.check_state import Scope, mismatch, suggest
from almarules.dsl.disjoint import disjoint
from almarules.dsl.types import ANY, AttrInfo, CollT, EntityT, EnumT, NumT, StrT, T, compatible, is_any
from almarules.dsl.units import DIMENSIONLESS


# ------------------------------------------------------------ enums and parameters
def check_enums(ck: ExprChecker) -> None:
    """Enums of the rules: new names, each member once and in one enum only."""
    for enum in ck.schema.enums.values():
        for m in enum.members:
            ck.enum_of_member.setdefault(m, enum)
    for decl in ck.rs.enums.values():
        if decl.name in ck.schema.enums:
            ck.error(decl.loc, "duplicate", f"enum {decl.name!r} is already defined by the facts schema")
            continue
        seen: set[str] = set()
        for m in decl.members:
            if m in seen:
                ck.error(decl.loc, "duplicate", f"enum {decl.name!r} lists {m!r} twice")
            seen.add(m)
        et = EnumT(decl.name, frozenset(decl.members))
        ck.schema.enums[decl.name] = et
        for m in decl.members:
            other = ck.enum_of_member.get(m)
            if other is not None and other.name != decl.name:
                ck.error(decl.loc, "duplicate", f"{m!r} is already a member of enum {other.name!r}")
            ck.enum_of_member.setdefault(m, et)


def check_params(ck: ExprChecker) -> None:
    """Parameter defaults (constant expressions) against their accepted values and what they override."""
    for p in ck.rs.params.values():
        node = ("param", p.name)
        ck.node_loc[node] = p.loc
        ck.stack.append(node)
        t = ck.infer(p.value, Scope({}), constant=True)
        ck.stack.pop()
        ck.param_types[p.name] = t
        default = allowed.constant_value(p.value, ck.rs.params)
        ck.findings.extend(allowed.problems(p, t, default))
    _overridden_params(ck)


def _overridden_params(ck: ExprChecker) -> None:
    """``override param size = 40`` where the parameter it replaces is in GB."""
    seen: set[str] = set()
    for old in ck.rs.overridden:
        if not isinstance(old, A.Param) or old.name in seen or old.name not in ck.rs.params:
            continue
        seen.add(old.name)
        mark, used = len(ck.findings), set(ck.used)
        old_t = ck.infer(old.value, Scope({}), constant=True)  # silently: it is replaced
        del ck.findings[mark:]
        ck.used = used
        new = ck.rs.params[old.name]
        new_t = ck.param_types.get(old.name, ANY)
        if not compatible(old_t, new_t):
            ck.error(new.value.loc, mismatch(old_t, new_t),
                     f"override param {old.name} gives {new_t.describe()}, but the parameter it "
                     f"replaces ({old.loc}) is {old_t.describe()}")


# ------------------------------------------------------------ tables and bands
def check_tables(ck: ExprChecker) -> None:
    """Bands (labels once, intervals) and tables (intervals, one type over all rows)."""
    for b in ck.rs.bands.values():
        ck.node_loc[("bands", b.name)] = b.loc
        labels: dict[str, A.BandRow] = {}
        for row in b.rows:
            if row.label in labels:
                ck.error(row.loc, "duplicate", f"band {row.label!r} is listed twice in {b.name!r}")
            labels[row.label] = row
        check_spans(ck, b, [r.interval for r in b.rows], "bands")
    for t in ck.rs.tables.values():
        node = ("table", t.name)
        ck.node_loc[node] = t.loc
        check_spans(ck, t, [r.interval for r in t.rows], "table")
        dim = ck.table_dims.get(t.name, DIMENSIONLESS)
        scope = Scope({t.arg: NumT(dim)})
        ck.stack.append(node)
        result: T = ANY
        for row in t.rows:
            rt = ck.infer(row.expr, scope)
            if is_any(result):
                result = rt
            elif not compatible(result, rt):
                ck.error(row.expr.loc, mismatch(result, rt),
                         f"this row gives {rt.describe()}, earlier rows give {result.describe()}")
        ck.stack.pop()
        ck.table_result[t.name] = result


# ------------------------------------------------------------ attributes
def register_attributes(ck: ExprChecker) -> None:
    """Add to the schema the kinds collections create, cascade outcomes, and every derived or
    scored attribute (typed later, by `ExprChecker.attr_type`)."""
    _register_collections(ck)
    _register_outcomes(ck)
    for d in ck.rs.all_derives():
        if d.digits is not None:
            ck.digits.setdefault((d.kind, d.attr), d.digits)
    targets = [(d.kind, d.attr, d.loc, "derive", d.doc, d.unit) for d in ck.rs.all_derives()]
    targets += [(s.kind, s.attr, s.loc, "score", s.doc, None) for s in ck.rs.scores.values()]
    for kind, attr, loc, what, doc, unit in targets:
        _register_target(ck, kind, attr, loc, what, doc, unit)
    for p in ck.rs.params:
        if p in ck.schema.collections or p == "dataset":
            ck.error(ck.rs.params[p].loc, "duplicate", f"parameter {p!r} hides the collection of that name")


def _register_collections(ck: ExprChecker) -> None:
    kinds = ck.schema.kinds
    for coll in ck.rs.collections.values():
        if coll.kind in kinds:
            ck.error(coll.loc, "duplicate", f"collection {coll.kind!r}: {coll.kind!r} is already a kind of facts")
            continue
        if plural(coll.kind) in ck.schema.collections:
            ck.error(coll.loc, "duplicate", f"collection {coll.kind!r}: {plural(coll.kind)!r} is already a fact collection")
            continue
        kinds[coll.kind] = {"key": AttrInfo(StrT(), "builtin", doc="identity of the entity")}
        ck.schema.collections[plural(coll.kind)] = coll.kind
        kinds["dataset"][plural(coll.kind)] = AttrInfo(CollT(EntityT(coll.kind)), "created", doc=coll.doc)


def _register_target(ck: ExprChecker, kind: str, attr: str, loc: A.Loc, what: str, doc: Optional[str],
                     unit: Optional[str]) -> None:
    """One ``derive kind.attr`` or ``score kind.attr`` (`what`): a new attribute, or another rule
    for one already registered; never a fact, a created value or a cascade outcome."""
    kinds = ck.schema.kinds
    if kind not in kinds:
        ck.error(loc, "unknown-kind", f"unknown kind {kind!r} in {what} {kind}.{attr}",
                 hint=suggest(kind, list(kinds) + list(ck.rs.collections)))
        return
    existing = kinds[kind].get(attr)
    origin = "derived" if what == "derive" else "score"
    if existing is not None and existing.origin == "outcome":
        ck.error(loc, "duplicate",
                 f"{kind}.{attr} is the outcome of cascade {ck.outcome_of[attr]!r}; a rule cannot {what} it",
                 hint="give the derived value another name")
    elif existing is not None and existing.origin in ("fact", "builtin", "created"):
        ck.error(loc, "derive-fact",
                 f"{kind}.{attr} is a fact of the data; a rule cannot {what} it",
                 hint="give the derived value another name")
    elif existing is not None and existing.origin != origin:
        ck.error(loc, "duplicate", f"{kind}.{attr} is both derived and scored")
    elif existing is None:
        kinds[kind][attr] = AttrInfo(ANY, origin, unit=unit, doc=doc, digits=ck.digits.get((kind, attr)))
        ck.node_loc[("attr", kind, attr)] = loc
    elif doc and not existing.doc:
        existing.doc = doc


def _register_outcomes(ck: ExprChecker) -> None:
    """Every cascade NAME defines the string attribute ``dataset.NAME_outcome`` (one of OUTCOMES)."""
    attrs = ck.schema.kinds["dataset"]
    for c in ck.rs.cascades.values():
        name = outcome_attr(c.name)
        ck.node_loc[("cascade", c.name)] = c.loc
        if name in attrs:
            ck.error(c.loc, "duplicate", f"cascade {c.name!r} defines dataset.{name}, which is already "
                                         f"a {attrs[name].origin} value")
            continue
        attrs[name] = AttrInfo(StrT(frozenset(OUTCOMES)), "outcome",
                               doc=f"outcome of cascade {c.name}: {', '.join(OUTCOMES)}")
        ck.outcome_of[name] = c.name


def type_attributes(ck: ExprChecker) -> None:
    """Type every derived and scored attribute (those no other rule has reached yet)."""
    for target in ck.rs.derives:
        kind, attr = target.split(".", 1)
        if (kind, attr) in ck.attr_cache or kind not in ck.schema.kinds:
            continue
        ck.attr_type(kind, attr)
    for score in ck.rs.scores.values():
        if score.kind in ck.schema.kinds:
            ck.attr_type(score.kind, score.attr)


# ------------------------------------------------------------ collections
def check_collections(ck: ExprChecker) -> None:
    """Collections: their emits type the created kind's attributes, and all emit the same ones."""
    for coll in ck.rs.collections.values():
        if coll.kind not in ck.schema.kinds:
            continue
        node = ("collection", coll.kind)
        ck.node_loc[node] = coll.loc
        ck.stack.append(node)
        emitted: dict[str, tuple[T, A.Loc]] = {}
        layouts: list[tuple[tuple[str, ...], A.Loc]] = []
        _emits(ck, coll.body, Scope({"dataset": EntityT("dataset")}), emitted, layouts)
        ck.stack.pop()
        first = layouts[0][0] if layouts else ()
        for names, loc in layouts[1:]:
            if names != first:
                ck.error(loc, "collection-shape",
                         f"every emit of {coll.kind!r} must set the same attributes: "
                         f"{', '.join(first)} (this one sets {', '.join(names)})")
        for name, (t, _loc) in emitted.items():
            ck.schema.kinds[coll.kind][name] = AttrInfo(t, "created")


def _emits(ck: ExprChecker, body: tuple[A.Emit | A.EmitFor, ...], scope: Scope,
           emitted: dict[str, tuple[T, A.Loc]], layouts: list[tuple[tuple[str, ...], A.Loc]]) -> None:
    """Type each emit's attributes into `emitted` (name -> type, where) and note which
    attributes each sets in `layouts`; ``for`` blocks bind their variables."""
    for item in body:
        if isinstance(item, A.EmitFor):
            inner = ck.binders(item.binders, scope)
            _emits(ck, item.body, inner, emitted, layouts)
            continue
        names = []
        for name, expr in item.assigns:
            if name in names:
                ck.error(item.loc, "duplicate", f"emit sets {name!r} twice")
            names.append(name)
            t = ck.infer(expr, scope)
            if name == "key":
                ck.error(expr.loc, "derive-fact", "'key' is built in: it is made from the emitted attributes")
            if name in emitted and not compatible(emitted[name][0], t):
                ck.error(expr.loc, mismatch(t, emitted[name][0]),
                         f"{name!r} is {t.describe()} here but {emitted[name][0].describe()} in another emit")
            elif name not in emitted or is_any(emitted[name][0]):
                emitted[name] = (t, expr.loc)
        layouts.append((tuple(names), item.loc))


# ------------------------------------------------------------ conflicts, recipes, warnings
def check_conflicts(ck: ExprChecker) -> None:
    """Two rules for one attribute that can both apply to an entity, without priorities to decide."""
    for target, rules in ck.rs.derives.items():
        for i, a in enumerate(rules):
            for b in rules[i + 1:]:
                if a.priority is not None and b.priority is not None and a.priority != b.priority:
                    continue
                if disjoint(a.when, b.when, ck.members()):
                    continue
                if a.priority is None and b.priority is None:
                    why = "neither declares a priority"
                else:
                    why = "they have the same priority" if a.priority == b.priority else "only one declares a priority"
                ck.error(b.loc, "conflict",
                         f"two rules can assign {target} for the same {a.kind} ({a.loc.file}:{a.loc.line} and "
                         f"this one) and {why}",
                         hint="make their 'when' conditions exclusive or give each a 'priority'")


def check_recipes(ck: ExprChecker) -> None:
    """Recipe stages: arguments typed, conditions true or false (dataset scope)."""
    for r in ck.rs.recipes.values():
        scope = ck.entity_scope("dataset")
        ck.stack.append(("recipe", r.name))
        for st in r.stages:
            for arg in st.args:
                ck.infer(arg, scope)
            if st.when is not None:
                ck.expect_bool(st.when, scope, "a stage's 'when' condition")
        ck.stack.pop()


def check_warns(ck: ExprChecker) -> None:
    """A warning's condition is true or false (dataset scope)."""
    for w in ck.rs.warns.values():
        ck.expect_bool(w.when, ck.entity_scope("dataset"), "a warning's 'when' condition")
