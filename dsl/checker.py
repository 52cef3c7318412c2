"""The static checker: names, types and units, dependencies, conflicts, coverage.

`check(ruleset, schema)` returns every finding (never stops at the first). It
also returns the *typed schema*: the fact schema extended with the attributes
that rules derive and the kinds that collections create, which the evaluator uses.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

from almarules.dsl import allowed
from almarules.dsl import ast as A
from almarules.dsl.cascade_bound import too_many_applications
from almarules.dsl.errors import Finding
from almarules.dsl.functions import AGGREGATES, CONSTANTS, FUNCTIONS, SignatureError, aggregate_type
from almarules.dsl.intervals import Span, coverage_problems, span_of
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import (
    ANY, BOOL, NUM, AnyT, AttrInfo, BoolT, CollT, EntityT, EnumT, NumT, Schema, StrT, T,
    compatible, is_any, symbol_values,
)
from almarules.dsl.units import DIMENSIONLESS, Dim, UnitError, parse_unit

Node = tuple  # ("param", name) | ("attr", kind, attr) | ("collection", kind) | ("table", name) | ("bands", name)
#               | ("cascade", name): a cascade's until, steps and actions; its outcome attribute depends on it

# The values of ``dataset.NAME_outcome`` (see `outcome_attr`).
OUTCOMES = ("not needed", "mitigated", "still exceeded", "error", "unknown")


def outcome_attr(cascade: str) -> str:
    """The dataset attribute holding a cascade's outcome: ``productsize`` -> ``productsize_outcome``."""
    return f"{cascade}_outcome"


def node_label(node: Node) -> str:
    if node[0] == "attr":
        return f"{node[1]}.{node[2]}"
    if node[0] == "collection":
        return f"collection {node[1]}"
    return f"{node[0]} {node[1]}"


def plural(kind: str) -> str:
    return kind + "s"


@dataclass
class CheckResult:
    findings: list[Finding]
    schema: Schema  # facts + derived + created attributes, with static types
    table_dims: dict[str, Dim] = field(default_factory=dict)
    param_types: dict[str, T] = field(default_factory=dict)
    # cascade names in evaluation order: a cascade whose rules read another's outcome runs after it
    cascade_order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class _Scope:
    def __init__(self, names: dict[str, T], parent: Optional["_Scope"] = None):
        self.names = names
        self.parent = parent

    def get(self, name: str) -> Optional[T]:
        s: Optional[_Scope] = self
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.parent
        return None

    def child(self, names: dict[str, T]) -> "_Scope":
        return _Scope(names, self)

    def all_names(self) -> list[str]:
        out: list[str] = []
        s: Optional[_Scope] = self
        while s is not None:
            out.extend(s.names)
            s = s.parent
        return out


def _is_free_literal(e: A.Expr) -> bool:
    """0 and inf without a unit fit any dimension (``dish_diameter > 0``)."""
    if isinstance(e, A.Unary) and e.op == "-":
        return _is_free_literal(e.operand)
    return isinstance(e, A.Num) and e.unit is None and (e.value == 0 or math.isinf(e.value))


def _mismatch(a: T, b: T) -> str:
    """The finding code for two types that do not fit together: two numbers differ in unit."""
    return "unit-mismatch" if isinstance(a, NumT) and isinstance(b, NumT) else "type-mismatch"


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _suggest(name: str, pool: Iterable[str]) -> Optional[str]:
    close = difflib.get_close_matches(name, sorted(set(pool)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class Checker:
    def __init__(self, rs: RuleSet, schema: Schema):
        self.rs = rs
        self.schema = schema.copy()
        self.findings: list[Finding] = list(rs.findings)
        self.deps: dict[Node, set[Node]] = {}
        self.node_loc: dict[Node, A.Loc] = {}
        self.stack: list[Node] = []
        self.used: set[Node] = set()
        self.attr_cache: dict[tuple[str, str], T] = {}
        self.in_progress: set[tuple[str, str]] = set()
        self.param_types: dict[str, T] = {}
        self.table_dims: dict[str, Dim] = {}
        self.table_result: dict[str, T] = {}
        self.enum_of_member: dict[str, EnumT] = {}
        self._digits: dict[tuple[str, str], int] = {}
        self.outcome_of: dict[str, str] = {}  # dataset attribute -> the cascade whose outcome it is

    # ------------------------------------------------------------ reporting
    def error(self, loc: A.Loc, code: str, message: str, hint: Optional[str] = None) -> None:
        self.findings.append(Finding(loc, code, message, hint=hint))

    def depend(self, target: Node) -> None:
        self.used.add(target)
        if self.stack:
            self.deps.setdefault(self.stack[-1], set()).add(target)

    # ------------------------------------------------------------ driver
    def run(self) -> CheckResult:
        self._enums()
        self._params()
        self._tables()
        self._register_attributes()
        self._collections()
        for target, rules in self.rs.derives.items():
            kind, attr = target.split(".", 1)
            if (kind, attr) in self.attr_cache or kind not in self.schema.kinds:
                continue
            self.attr_type(kind, attr)
        for score in self.rs.scores.values():
            if score.kind in self.schema.kinds:
                self.attr_type(score.kind, score.attr)
        self._conflicts()
        self._cascades()
        self._recipes()
        self._warns()
        self._cycles()
        self._unused()
        self.findings = sorted(set(self.findings), key=lambda f: (f.loc.file, f.loc.line, f.loc.column, f.code, f.message))
        return CheckResult(self.findings, self.schema, self.table_dims, self.param_types, self._cascade_order())

    # ------------------------------------------------------------ declarations
    def _enums(self) -> None:
        for enum in self.schema.enums.values():
            for m in enum.members:
                self.enum_of_member.setdefault(m, enum)
        for decl in self.rs.enums.values():
            if decl.name in self.schema.enums:
                self.error(decl.loc, "duplicate", f"enum {decl.name!r} is already defined by the facts schema")
                continue
            seen: set[str] = set()
            for m in decl.members:
                if m in seen:
                    self.error(decl.loc, "duplicate", f"enum {decl.name!r} lists {m!r} twice")
                seen.add(m)
            et = EnumT(decl.name, frozenset(decl.members))
            self.schema.enums[decl.name] = et
            for m in decl.members:
                other = self.enum_of_member.get(m)
                if other is not None and other.name != decl.name:
                    self.error(decl.loc, "duplicate", f"{m!r} is already a member of enum {other.name!r}")
                self.enum_of_member.setdefault(m, et)

    def _params(self) -> None:
        for p in self.rs.params.values():
            node = ("param", p.name)
            self.node_loc[node] = p.loc
            self.stack.append(node)
            t = self.infer(p.value, _Scope({}), constant=True)
            self.stack.pop()
            self.param_types[p.name] = t
            default = allowed.constant_value(p.value, self.rs.params)
            self.findings.extend(allowed.problems(p, t, default))
        self._overridden_params()

    def _overridden_params(self) -> None:
        """``override param size = 40`` where the parameter it replaces is in GB."""
        seen: set[str] = set()
        for old in self.rs.overridden:
            if not isinstance(old, A.Param) or old.name in seen or old.name not in self.rs.params:
                continue
            seen.add(old.name)
            mark, used = len(self.findings), set(self.used)
            old_t = self.infer(old.value, _Scope({}), constant=True)  # silently: it is replaced
            del self.findings[mark:]
            self.used = used
            new = self.rs.params[old.name]
            new_t = self.param_types.get(old.name, ANY)
            if not compatible(old_t, new_t):
                self.error(new.value.loc, _mismatch(old_t, new_t),
                           f"override param {old.name} gives {new_t.describe()}, but the parameter it "
                           f"replaces ({old.loc}) is {old_t.describe()}")

    def _interval_dim(self, iv: A.Interval, where: str) -> Optional[Dim]:
        dims = []
        for b in (iv.lo, iv.hi):
            if b.infinite:
                continue
            if b.unit is None:
                dims.append((DIMENSIONLESS, b))
                continue
            try:
                dims.append((parse_unit(b.unit)[1], b))
            except UnitError:
                self.error(b.loc, "unknown-unit", f"unknown unit {b.unit!r}")
                return None
        return dims[0][0] if dims else DIMENSIONLESS

    def _spans(self, decl, rows_intervals: list[A.Interval], what: str) -> None:
        dom_dim = self._interval_dim(decl.domain, what)
        if dom_dim is None:
            return
        self.table_dims[decl.name] = dom_dim
        ok = True
        for iv in [decl.domain] + rows_intervals:
            for b, closed in ((iv.lo, iv.lo_closed), (iv.hi, iv.hi_closed)):
                if b.infinite and closed:
                    self.error(b.loc, "bad-interval", "an infinite end must be open: write '(-inf' or 'inf)'")
                    ok = False
                elif not b.infinite:
                    try:
                        d = DIMENSIONLESS if b.unit is None else parse_unit(b.unit)[1]
                    except UnitError:
                        self.error(b.loc, "unknown-unit", f"unknown unit {b.unit!r}")
                        ok = False
                        continue
                    if d != dom_dim and not (b.value == 0 and b.unit is None):
                        self.error(b.loc, "unit-mismatch",
                                   f"bound {b.value:g}{' ' + b.unit if b.unit else ''} does not match the "
                                   f"{what}'s domain, which is in {dom_dim.display_unit() or 'plain numbers'}")
                        ok = False
        if not ok:
            return
        scale = lambda unit: 1.0 if unit is None else parse_unit(unit)[0]  # noqa: E731
        dom = span_of(decl.domain, scale)
        spans = [span_of(iv, scale) for iv in rows_intervals]
        if dom.empty():
            self.error(decl.domain.loc, "bad-interval", f"the domain {decl.domain} is empty")
            return
        bad = False
        for iv, sp in zip(rows_intervals, spans):
            if sp.empty():
                self.error(iv.loc, "bad-interval", f"interval {iv} is empty")
                bad = True
        if bad:
            return
        for prob in coverage_problems(dom, spans):
            loc = rows_intervals[prob.row].loc if prob.row >= 0 else decl.domain.loc
            unit = None
            for iv in [decl.domain] + rows_intervals:
                unit = unit or iv.lo.unit or iv.hi.unit
            fmt = (lambda v: ("inf" if v > 0 else "-inf") if math.isinf(v) else
                   f"{v / parse_unit(unit)[0]:g}" if unit else f"{v:g}")
            if prob.span.lo == prob.span.hi:  # a single point
                text = fmt(prob.span.lo) + (f" {unit}" if unit else "")
            else:
                text = prob.span.text(fmt) + (f" {unit}" if unit else "")
            if prob.kind == "gap":
                self.error(loc, "coverage-gap", f"{what} {decl.name!r} leaves {text} uncovered")
            elif prob.kind == "overlap":
                self.error(loc, "coverage-overlap", f"{what} {decl.name!r}: this row overlaps an earlier row on {text}")
            else:
                self.error(loc, "coverage-outside",
                           f"{what} {decl.name!r}: row {rows_intervals[prob.row]} reaches outside the domain {decl.domain}")

    def _tables(self) -> None:
        for b in self.rs.bands.values():
            self.node_loc[("bands", b.name)] = b.loc
            labels: dict[str, A.BandRow] = {}
            for row in b.rows:
                if row.label in labels:
                    self.error(row.loc, "duplicate", f"band {row.label!r} is listed twice in {b.name!r}")
                labels[row.label] = row
            self._spans(b, [r.interval for r in b.rows], "bands")
        for t in self.rs.tables.values():
            node = ("table", t.name)
            self.node_loc[node] = t.loc
            self._spans(t, [r.interval for r in t.rows], "table")
            dim = self.table_dims.get(t.name, DIMENSIONLESS)
            scope = _Scope({t.arg: NumT(dim)})
            self.stack.append(node)
            result: T = ANY
            for row in t.rows:
                rt = self.infer(row.expr, scope)
                if is_any(result):
                    result = rt
                elif not compatible(result, rt):
                    self.error(row.expr.loc, _mismatch(result, rt),
                               f"this row gives {rt.describe()}, earlier rows give {result.describe()}")
            self.stack.pop()
            self.table_result[t.name] = result

    def _register_attributes(self) -> None:
        kinds = self.schema.kinds
        created = set(self.rs.collections)
        for coll in self.rs.collections.values():
            if coll.kind in kinds:
                self.error(coll.loc, "duplicate", f"collection {coll.kind!r}: {coll.kind!r} is already a kind of facts")
                continue
            if plural(coll.kind) in self.schema.collections:
                self.error(coll.loc, "duplicate", f"collection {coll.kind!r}: {plural(coll.kind)!r} is already a fact collection")
                continue
            kinds[coll.kind] = {"key": AttrInfo(StrT(), "builtin", doc="identity of the entity")}
            self.schema.collections[plural(coll.kind)] = coll.kind
            kinds["dataset"][plural(coll.kind)] = AttrInfo(CollT(EntityT(coll.kind)), "created",
                                                           doc=coll.doc)
        self._register_outcomes()
        for d in self.rs.all_derives():
            if d.digits is not None:
                self._digits.setdefault((d.kind, d.attr), d.digits)
        all_targets = [(d.kind, d.attr, d.loc, "derive", d.doc, d.unit) for d in self.rs.all_derives()]
        all_targets += [(s.kind, s.attr, s.loc, "score", s.doc, None) for s in self.rs.scores.values()]
        for kind, attr, loc, what, doc, unit in all_targets:
            if kind not in kinds:
                self.error(loc, "unknown-kind", f"unknown kind {kind!r} in {what} {kind}.{attr}",
                           hint=_suggest(kind, list(kinds) + list(created)))
                continue
            existing = kinds[kind].get(attr)
            if existing is not None and existing.origin == "outcome":
                self.error(loc, "duplicate",
                           f"{kind}.{attr} is the outcome of cascade {self.outcome_of[attr]!r}; a rule cannot {what} it",
                           hint="give the derived value another name")
                continue
            if existing is not None and existing.origin in ("fact", "builtin", "created"):
                self.error(loc, "derive-fact",
                           f"{kind}.{attr} is a fact of the data; a rule cannot {what} it",
                           hint="give the derived value another name")
                continue
            if existing is not None and existing.origin != ("derived" if what == "derive" else "score"):
                self.error(loc, "duplicate", f"{kind}.{attr} is both derived and scored")
                continue
            if existing is None:
                kinds[kind][attr] = AttrInfo(ANY, "derived" if what == "derive" else "score", unit=unit, doc=doc,
                                             digits=self._digits.get((kind, attr)))
                self.node_loc[("attr", kind, attr)] = loc
            elif doc and not existing.doc:
                existing.doc = doc
        for p in self.rs.params:
            if p in self.schema.collections or p == "dataset":
                self.error(self.rs.params[p].loc, "duplicate", f"parameter {p!r} hides the collection of that name")

    def _register_outcomes(self) -> None:
        """Every cascade NAME defines the string attribute ``dataset.NAME_outcome`` (one of OUTCOMES)."""
        attrs = self.schema.kinds["dataset"]
        for c in self.rs.cascades.values():
            name = outcome_attr(c.name)
            self.node_loc[("cascade", c.name)] = c.loc
            if name in attrs:
                self.error(c.loc, "duplicate", f"cascade {c.name!r} defines dataset.{name}, which is already "
                                               f"a {attrs[name].origin} value")
                continue
            attrs[name] = AttrInfo(StrT(frozenset(OUTCOMES)), "outcome",
                                   doc=f"outcome of cascade {c.name}: {', '.join(OUTCOMES)}")
            self.outcome_of[name] = c.name

    def _collections(self) -> None:
        for coll in self.rs.collections.values():
            if coll.kind not in self.schema.kinds:
                continue
            node = ("collection", coll.kind)
            self.node_loc[node] = coll.loc
            self.stack.append(node)
            emitted: dict[str, tuple[T, A.Loc]] = {}
            layouts: list[tuple[tuple[str, ...], A.Loc]] = []
            self._emits(coll.body, _Scope({"dataset": EntityT("dataset")}), emitted, layouts)
            self.stack.pop()
            first = layouts[0][0] if layouts else ()
            for names, loc in layouts[1:]:
                if names != first:
                    self.error(loc, "collection-shape",
                               f"every emit of {coll.kind!r} must set the same attributes: "
                               f"{', '.join(first)} (this one sets {', '.join(names)})")
            for name, (t, _loc) in emitted.items():
                self.schema.kinds[coll.kind][name] = AttrInfo(t, "created")

    def _emits(self, body, scope: _Scope, emitted, layouts) -> None:
        for item in body:
            if isinstance(item, A.EmitFor):
                inner = self._binders(item.binders, scope)
                self._emits(item.body, inner, emitted, layouts)
                continue
            names = []
            for name, expr in item.assigns:
                if name in names:
                    self.error(item.loc, "duplicate", f"emit sets {name!r} twice")
                names.append(name)
                t = self.infer(expr, scope)
                if name == "key":
                    self.error(expr.loc, "derive-fact", "'key' is built in: it is made from the emitted attributes")
                if name in emitted and not compatible(emitted[name][0], t):
                    self.error(expr.loc, _mismatch(t, emitted[name][0]),
                               f"{name!r} is {t.describe()} here but {emitted[name][0].describe()} in another emit")
                elif name not in emitted or is_any(emitted[name][0]):
                    emitted[name] = (t, expr.loc)
            layouts.append((tuple(names), item.loc))

    def _binders(self, binders: tuple[A.Binder, ...], scope: _Scope) -> _Scope:
        for b in binders:
            src = self.infer(b.source, scope)
            if isinstance(src, CollT):
                elem = src.elem
            elif is_any(src):
                elem = ANY
            else:
                self.error(b.source.loc, "type-mismatch", f"'for {b.var} in ...' needs a collection, got {src.describe()}")
                elem = ANY
            scope = scope.child({b.var: elem})
            if b.where is not None:
                self.expect_bool(b.where, scope, "a 'where' condition")
        return scope

    # ------------------------------------------------------------ attributes
    def entity_scope(self, kind: str) -> _Scope:
        names: dict[str, T] = {"dataset": EntityT("dataset")}
        if kind != "dataset":
            names[kind] = EntityT(kind)
        return _Scope(names)

    def attr_type(self, kind: str, attr: str) -> T:
        info = self.schema.kinds.get(kind, {}).get(attr)
        if info is None:
            return ANY
        if info.origin not in ("derived", "score"):
            return info.type
        key = (kind, attr)
        if key in self.attr_cache:
            return self.attr_cache[key]
        if key in self.in_progress:
            return ANY  # a cycle; reported by _cycles
        self.in_progress.add(key)
        node = ("attr", kind, attr)
        self.stack.append(node)
        scope = self.entity_scope(kind)
        result: T = ANY
        if info.origin == "derived":
            for rule in self.rs.derives.get(f"{kind}.{attr}", []):
                t = self.infer(rule.expr, scope)
                if rule.when is not None:
                    self.expect_bool(rule.when, scope, "a 'when' condition")
                if rule.digits is not None and not 1 <= rule.digits <= 15:
                    self.error(rule.loc, "out-of-range",
                               f"{kind}.{attr}: 'digits' must be 1 to 15 significant digits, got {rule.digits}")
                if rule.unit is not None:
                    try:
                        _, dim = parse_unit(rule.unit)
                        if isinstance(t, NumT) and t.dim != dim:
                            self.error(rule.expr.loc, "unit-mismatch",
                                       f"{kind}.{attr} is declared in {rule.unit} but its formula gives "
                                       f"{t.dim.display_unit() or 'a plain number'}")
                        elif not isinstance(t, (NumT, AnyT)):
                            self.error(rule.loc, "type-mismatch",
                                       f"{kind}.{attr} declares a unit but its formula gives {t.describe()}")
                    except UnitError:
                        self.error(rule.loc, "unknown-unit", f"unknown unit {rule.unit!r}")
                if is_any(result):
                    result = t
                elif not compatible(result, t):
                    self.error(rule.expr.loc, _mismatch(result, t),
                               f"rules for {kind}.{attr} disagree: {result.describe()} elsewhere, {t.describe()} here")
        else:
            score = self.rs.scores[f"{kind}.{attr}"]
            result = self._score_type(score, scope)
        self.stack.pop()
        self.in_progress.discard(key)
        self.attr_cache[key] = result
        info.type = result
        return result

    def _score_type(self, score: A.Score, scope: _Scope) -> T:
        if score.when is not None:
            self.expect_bool(score.when, scope, "a 'when' condition")
        result: T = NUM
        if score.start is None:
            self.error(score.loc, "score-start", f"score {score.target} has no 'start' value")
        else:
            result = self.infer(score.start, scope)
            if not isinstance(result, (NumT, AnyT)):
                self.error(score.start.loc, "type-mismatch", f"a score starts from a number, got {result.describe()}")
                result = ANY
        reasons: set[str] = set()
        for term in score.terms:
            if term.reason in reasons:
                self.error(term.loc, "duplicate", f"score {score.target} has two terms with reason {term.reason!r}")
            reasons.add(term.reason)
            at = self.infer(term.amount, scope)
            if isinstance(result, NumT) and isinstance(at, NumT) and at.dim != result.dim:
                self.error(term.amount.loc, "unit-mismatch",
                           f"this term is in {at.dim.display_unit() or 'plain numbers'}, the score in "
                           f"{result.dim.display_unit() or 'plain numbers'}")
            self.expect_bool(term.when, scope, "a 'when' condition")
        if score.clamp is not None:
            for e in score.clamp:
                ct = self.infer(e, scope)
                if isinstance(result, NumT) and isinstance(ct, NumT) and ct.dim != result.dim:
                    self.error(e.loc, "unit-mismatch", "the clamp bounds must be in the score's unit")
        return result

    # ------------------------------------------------------------ expressions
    def expect_bool(self, expr: A.Expr, scope: _Scope, what: str) -> None:
        t = self.infer(expr, scope)
        if not isinstance(t, (BoolT, AnyT)):
            self.error(expr.loc, "type-mismatch", f"{what} must be true or false, got {t.describe()}")

    def infer(self, e: A.Expr, scope: _Scope, constant: bool = False) -> T:
        return self._infer(e, scope, constant)

    def _infer(self, e: A.Expr, scope: _Scope, constant: bool) -> T:
        if isinstance(e, A.Num):
            if e.unit is None:
                return NUM
            try:
                return NumT(parse_unit(e.unit)[1])
            except UnitError:
                self.error(e.loc, "unknown-unit", f"unknown unit {e.unit!r}",
                           hint="units are astropy names: GHz, mJy/beam, arcsec, deg, m, s, GB, ...")
                return ANY
        if isinstance(e, A.Str):
            return StrT(frozenset([e.value]))
        if isinstance(e, A.Bool):
            return BOOL
        if isinstance(e, A.Name):
            return self._name(e, scope, constant)
        if isinstance(e, A.Attr):
            return self._attr(e, scope, constant)
        if isinstance(e, A.Unary):
            t = self.infer(e.operand, scope, constant)
            if e.op == "not":
                if not isinstance(t, (BoolT, AnyT)):
                    self.error(e.loc, "type-mismatch", f"'not' needs true or false, got {t.describe()}")
                return BOOL
            if not isinstance(t, (NumT, AnyT)):
                self.error(e.loc, "type-mismatch", f"cannot negate {t.describe()}")
                return ANY
            return t
        if isinstance(e, A.Binary):
            return self._binary(e, scope, constant)
        if isinstance(e, A.IfElse):
            self.expect_bool(e.cond, scope, "an 'if' condition")
            a = self.infer(e.then, scope, constant)
            b = self.infer(e.else_, scope, constant)
            if not compatible(a, b) and not (_is_free_literal(e.then) or _is_free_literal(e.else_)):
                self.error(e.loc, _mismatch(a, b), f"the branches differ: 'then' gives {a.describe()}, 'else' gives {b.describe()}")
            if _is_free_literal(e.then):
                return b
            return a if not is_any(a) else b
        if isinstance(e, A.Call):
            return self._call(e, scope, constant)
        if isinstance(e, A.Aggregate):
            return self._aggregate(e, scope, constant)
        if isinstance(e, (A.SetLit, A.ListLit)):
            elem: T = ANY
            for item in e.items:
                t = self.infer(item, scope, constant)
                if is_any(elem):
                    elem = t
                elif not compatible(elem, t):
                    self.error(item.loc, _mismatch(elem, t), f"mixed elements: {elem.describe()} and {t.describe()}")
            if isinstance(elem, StrT) and all(isinstance(i, A.Str) for i in e.items):
                elem = StrT(frozenset(i.value for i in e.items))
            return CollT(elem)
        return ANY

    def _name(self, e: A.Name, scope: _Scope, constant: bool) -> T:
        t = scope.get(e.id)
        if t is not None:
            return t
        if e.id in self.rs.params:
            self.depend(("param", e.id))
            return self.param_types.get(e.id, ANY)
        if e.id in CONSTANTS:
            unit = CONSTANTS[e.id][1]
            return NumT(parse_unit(unit)[1]) if unit else NUM
        if e.id in self.enum_of_member:
            return self.enum_of_member[e.id]
        if constant:
            self.error(e.loc, "not-constant",
                       f"{e.id!r} is not a constant: a parameter's default may use numbers, units and other parameters")
            return ANY
        if e.id == "dataset":
            return EntityT("dataset")
        if e.id in self.schema.collections:
            return self._attr_info("dataset", e.id, e)
        pool = scope.all_names() + list(self.rs.params) + list(self.enum_of_member) + list(CONSTANTS) \
            + list(self.schema.collections) + ["dataset"]
        hint = _suggest(e.id, pool)
        if e.id in self.schema.kinds:
            hint = f"'{e.id}' is a kind; inside a rule about {e.id}s write '{e.id}.attribute', " \
                   f"or range over '{plural(e.id)}'"
        self.error(e.loc, "unknown-name", f"unknown name {e.id!r}", hint=hint)
        return ANY

    def _attr_info(self, kind: str, attr: str, e) -> T:
        info = self.schema.kinds[kind][attr]
        if info.origin == "outcome":
            self._outcome_read(self.outcome_of[attr], attr, e)
            return info.type
        if info.origin == "created":
            created_kind = self.schema.collections.get(attr) if kind == "dataset" else kind
            self.depend(("collection", created_kind))
            return info.type
        if kind in self.rs.collections and info.origin == "builtin":
            self.depend(("collection", kind))
        if info.origin in ("derived", "score"):
            self.depend(("attr", kind, attr))
            return self.attr_type(kind, attr)
        return info.type

    def _outcome_read(self, cascade: str, attr: str, e) -> None:
        """A read of a cascade's outcome depends on the whole cascade; the cascade itself may not read it."""
        node = ("cascade", cascade)
        if self.stack and self.stack[-1] == node:
            self.error(e.loc, "cycle", f"cascade {cascade!r} cannot read dataset.{attr}: its outcome is "
                                       f"known only when it has finished")
            return
        self.depend(node)

    def _attr(self, e: A.Attr, scope: _Scope, constant: bool) -> T:
        obj = self.infer(e.obj, scope, constant)
        if is_any(obj):
            return ANY
        if isinstance(obj, EntityT):
            attrs = self.schema.kinds.get(obj.kind, {})
            if e.name not in attrs:
                self.error(e.loc, "unknown-attribute", f"{obj.kind} has no attribute {e.name!r}",
                           hint=_suggest(e.name, attrs))
                return ANY
            if obj.kind in self.rs.collections and attrs[e.name].origin == "created":
                self.depend(("collection", obj.kind))
            return self._attr_info(obj.kind, e.name, e)
        if isinstance(obj, CollT):
            self.error(e.loc, "type-mismatch",
                       f"a collection has no attribute {e.name!r}; use an aggregate such as "
                       f"max(x.{e.name} for x in ...)")
            return ANY
        self.error(e.loc, "type-mismatch", f"{obj.describe()} has no attributes (asked for {e.name!r})")
        return ANY

    def _binary(self, e: A.Binary, scope: _Scope, constant: bool) -> T:
        op = e.op
        if op in ("and", "or"):
            for side in (e.left, e.right):
                t = self.infer(side, scope, constant)
                if not isinstance(t, (BoolT, AnyT)):
                    self.error(side.loc, "type-mismatch", f"'{op}' needs true or false on both sides, got {t.describe()}")
            return BOOL
        left = self.infer(e.left, scope, constant)
        right = self.infer(e.right, scope, constant)
        if is_any(left) or is_any(right):
            if op in ("==", "!=", "<", "<=", ">", ">=", "in", "notin"):
                return BOOL
            if op in ("+", "-"):
                return left if not is_any(left) else right
            return ANY
        if op in ("in", "notin"):
            if not isinstance(right, CollT):
                self.error(e.right.loc, "type-mismatch", f"'in' needs a collection or set on the right, got {right.describe()}")
                return BOOL
            if not compatible(left, right.elem):
                self.error(e.loc, "type-mismatch", f"cannot look for {left.describe()} in {right.describe()}")
            else:
                self._symbols_possible(left, right.elem, e)
            return BOOL
        if op in ("==", "!="):
            if not compatible(left, right) and not (_is_free_literal(e.left) or _is_free_literal(e.right)):
                self.error(e.loc, _mismatch(left, right), f"cannot compare {left.describe()} with {right.describe()}")
            else:
                self._symbols_possible(left, right, e)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not (isinstance(left, NumT) and isinstance(right, NumT)):
                self.error(e.loc, "type-mismatch", f"'{op}' compares numbers, got {left.describe()} and {right.describe()}")
            elif left.dim != right.dim and not (_is_free_literal(e.left) or _is_free_literal(e.right)):
                self.error(e.loc, "unit-mismatch",
                           f"cannot compare {left.dim.display_unit() or 'a plain number'} with "
                           f"{right.dim.display_unit() or 'a plain number'}")
            return BOOL
        # arithmetic
        if not isinstance(left, NumT) or not isinstance(right, NumT):
            bad = left if not isinstance(left, NumT) else right
            self.error(e.loc, "type-mismatch", f"'{op}' needs numbers, got {bad.describe()}")
            return ANY
        if op in ("+", "-"):
            if left.dim != right.dim:
                if _is_free_literal(e.left):
                    return right
                if _is_free_literal(e.right):
                    return left
                self.error(e.loc, "unit-mismatch",
                           f"cannot {'add' if op == '+' else 'subtract'} "
                           f"{right.dim.display_unit() or 'a plain number'} {'to' if op == '+' else 'from'} "
                           f"{left.dim.display_unit() or 'a plain number'}")
                return ANY
            return left
        if op == "*":
            return NumT(left.dim * right.dim)
        if op == "/":
            return NumT(left.dim / right.dim)
        if op == "^":
            if left.dim.is_dimensionless:
                if not right.dim.is_dimensionless:
                    self.error(e.right.loc, "unit-mismatch", "an exponent must be a plain number")
                return NUM
            power = _literal_number(e.right)
            if power is None:
                self.error(e.right.loc, "unit-mismatch",
                           "a quantity with a unit can only be raised to a literal number (the unit must be known)")
                return ANY
            return NumT(left.dim ** power)
        return ANY

    def _symbols_possible(self, left: T, right: T, e: A.Binary) -> None:
        """``dataset.array == "21m"``: the literal is none of the values it could be."""
        lv, rv = symbol_values(left), symbol_values(right)
        if lv is None or rv is None:
            return
        literal_left = isinstance(e.left, A.Str) if e.op in ("in", "notin") else \
            isinstance(e.left, A.Str) and not isinstance(e.right, A.Str)  # "21m" == dataset.array
        literal_side = lv if literal_left else \
            rv if isinstance(right, StrT) or isinstance(e.right, (A.SetLit, A.ListLit)) else lv
        other = lv if literal_side is rv else rv
        if isinstance(left, EnumT) and isinstance(right, EnumT) and left.name != right.name:
            self.error(e.loc, "type-mismatch", f"cannot compare {_a(left.name)} with {_a(right.name)}")
            return
        impossible = sorted(literal_side - other)
        if impossible and other and literal_side & other and isinstance(e.right, (A.SetLit, A.ListLit)):
            # some members of a literal set can match, others never can (a typo?)
            for item in e.right.items:
                if isinstance(item, A.Str) and item.value not in other:
                    self.error(item.loc, "never-true",
                               f"{item.value!r} is never a value here; possible values: {', '.join(sorted(other))}",
                               hint=_suggest(item.value, other))
            return
        if impossible and len(literal_side) >= 1 and other:
            if not literal_side & other:
                self.error(e.loc, "never-true",
                           f"{', '.join(map(repr, impossible))} "
                           f"{'is never a value' if len(impossible) == 1 else 'are never values'} here; possible values: "
                           f"{', '.join(sorted(other))}",
                           hint=_suggest(impossible[0], other))

    def _call(self, e: A.Call, scope: _Scope, constant: bool) -> T:
        args = [self.infer(a, scope, constant) for a in e.args]
        if e.func in self.rs.tables or e.func in self.rs.bands:
            is_table = e.func in self.rs.tables
            self.depend(("table" if is_table else "bands", e.func))
            if len(e.args) != 1:
                self.error(e.loc, "arity", f"{e.func}() takes 1 argument, got {len(e.args)}")
                return ANY
            dim = self.table_dims.get(e.func)
            if dim is not None and isinstance(args[0], NumT) and args[0].dim != dim:
                self.error(e.args[0].loc, "unit-mismatch",
                           f"{e.func}() looks up {dim.display_unit() or 'plain numbers'}, got "
                           f"{args[0].dim.display_unit() or 'a plain number'}")
            elif not isinstance(args[0], (NumT, AnyT)):
                self.error(e.args[0].loc, "type-mismatch", f"{e.func}() looks up a number, got {args[0].describe()}")
            if is_table:
                return self.table_result.get(e.func, ANY)
            return StrT(frozenset(r.label for r in self.rs.bands[e.func].rows))
        if e.func in AGGREGATES and len(e.args) == 1 and isinstance(args[0], CollT) and not (
                e.func in FUNCTIONS and False):
            try:
                return aggregate_type(e.func, [], args[0].elem)
            except SignatureError as exc:
                self.error(e.loc, "type-mismatch", str(exc))
                return ANY
        if e.func in AGGREGATES and len(e.args) == 1 and is_any(args[0]):
            return ANY  # its argument is already reported (or unknown): no second finding
        fn = FUNCTIONS.get(e.func)
        if fn is None:
            if e.func in AGGREGATES:
                self.error(e.loc, "type-mismatch",
                           f"{e.func}() aggregates a collection: write {e.func}(x for x in ...) or {e.func}(collection)")
                return ANY
            pool = list(FUNCTIONS) + list(AGGREGATES) + list(self.rs.tables) + list(self.rs.bands)
            self.error(e.loc, "unknown-function", f"unknown function {e.func!r}", hint=_suggest(e.func, pool))
            return ANY
        problem = fn.check_arity(len(args))
        if problem:
            self.error(e.loc, "arity", problem)
            return ANY
        try:
            free = [i for i, a in enumerate(e.args) if _is_free_literal(a)]
            typed = [a for i, a in enumerate(args) if i not in free] or args
            if e.func in ("min", "max", "clip", "abs"):
                return fn.signature(typed)
            return fn.signature(args)
        except SignatureError as exc:
            self.error(e.loc, "unit-mismatch" if "unit" in str(exc) or "dimensionless" in str(exc) else "type-mismatch", str(exc))
            return ANY

    def _aggregate(self, e: A.Aggregate, scope: _Scope, constant: bool) -> T:
        lead = [self.infer(a, scope, constant) for a in e.lead]
        inner = self._binders(e.binders, scope)
        elem = self.infer(e.element, inner, constant)
        if e.func not in AGGREGATES:
            self.error(e.loc, "unknown-function", f"{e.func}() is not an aggregate",
                       hint="aggregates: " + ", ".join(sorted(AGGREGATES)))
            return ANY
        if e.lead and e.func != "percentile":
            self.error(e.loc, "arity", f"{e.func}() takes only the generator")
        try:
            result = aggregate_type(e.func, lead, elem)
        except SignatureError as exc:
            self.error(e.loc, "type-mismatch", str(exc))
            return ANY
        if e.func == "percentile" and e.lead:
            q = _literal_number(e.lead[0])
            if q is not None and not 0 <= q <= 100:
                self.error(e.lead[0].loc, "out-of-range", f"a percentile level must be in [0, 100], got {q:g}")
        if e.default is not None:
            dt = self.infer(e.default, scope, constant)
            if not compatible(dt, result) and not _is_free_literal(e.default):
                self.error(e.default.loc, "unit-mismatch" if isinstance(dt, NumT) else "type-mismatch",
                           f"the 'else' value is {dt.describe()}, the {e.func}() is {result.describe()}")
        return result

    # ------------------------------------------------------------ conflicts
    def _conflicts(self) -> None:
        for target, rules in self.rs.derives.items():
            for i, a in enumerate(rules):
                for b in rules[i + 1:]:
                    if a.priority is not None and b.priority is not None and a.priority != b.priority:
                        continue
                    if _disjoint(a.when, b.when, frozenset(self.enum_of_member)):
                        continue
                    if a.priority is None and b.priority is None:
                        why = "neither declares a priority"
                    else:
                        why = "they have the same priority" if a.priority == b.priority else "only one declares a priority"
                    self.error(b.loc, "conflict",
                               f"two rules can assign {target} for the same {a.kind} ({a.loc.file}:{a.loc.line} and "
                               f"this one) and {why}",
                               hint="make their 'when' conditions exclusive or give each a 'priority'")

    # ------------------------------------------------------------ cascades
    def _cascades(self) -> None:
        for c in self.rs.cascades.values():
            scope = self.entity_scope("dataset")
            self.stack.append(("cascade", c.name))
            if c.until is None:
                self.error(c.loc, "cascade-until", f"cascade {c.name!r} has no 'until' condition")
            else:
                self.expect_bool(c.until, scope, "an 'until' condition")
            names: dict[str, A.Step] = {}
            for i, step in enumerate(c.steps):
                if step.name in names:
                    self.error(step.loc, "duplicate", f"cascade {c.name!r} has two steps named {step.name!r}")
                names[step.name] = step
                if step.when is not None:
                    self.expect_bool(step.when, scope, "a step's 'when' condition")
                for action in step.actions:
                    self._action(action, step, c, i)
                self._repeats_earlier(c, step, i)
            if (big := too_many_applications(c)) is not None:
                self.error(big[0].loc, "cascade-too-large", big[1], hint="repeat fewer steps, or fewer times")
            self.stack.pop()

    def _repeats_earlier(self, c: A.Cascade, step: A.Step, index: int) -> None:
        """A step with the same actions as an earlier unconditional step can never change anything."""
        for earlier in c.steps[:index]:
            if earlier.when is None and earlier.actions == step.actions:
                self.error(step.loc, "step-never-applies",
                           f"step {step.name!r} can never change anything: it repeats step {earlier.name!r}")
                return

    def _action(self, a: A.Action, step: A.Step, c: A.Cascade, index: int) -> None:
        if isinstance(a, A.SetAction):
            self._set_action(a, step)
        elif isinstance(a, A.ErrorAction):
            if a.when is not None:
                self.expect_bool(a.when, self.entity_scope("dataset"), "an 'error' condition")
        elif isinstance(a, A.RepeatAction):
            self._repeat_action(a, step, c, index)
        else:
            self._keep_or_drop(a, step)

    def _repeat_action(self, a: A.RepeatAction, step: A.Step, c: A.Cascade, index: int) -> None:
        """``repeat "x"`` names an earlier step of the same cascade (not itself, not a later one)."""
        earlier = [s.name for s in c.steps[:index]]
        later = [s.name for s in c.steps[index + 1:]]
        for name in a.steps:
            if name == step.name:
                self.error(a.loc, "bad-repeat", f"step {step.name!r} cannot repeat itself")
            elif name in later and name not in earlier:
                self.error(a.loc, "bad-repeat",
                           f"step {step.name!r} cannot repeat {name!r}, which comes after it",
                           hint="a step can repeat only the steps before it")
            elif name not in earlier:
                self.error(a.loc, "unknown-name", f"step {step.name!r} repeats unknown step {name!r}",
                           hint=_suggest(name, earlier))

    def _set_action(self, a: A.SetAction, step: A.Step) -> None:
        if a.kind is None:
            if a.name not in self.rs.params:
                self.error(a.loc, "unknown-name", f"step {step.name!r} sets unknown parameter {a.name!r}",
                           hint=_suggest(a.name, self.rs.params))
                return
            t = self.infer(a.value, self.entity_scope("dataset"))
            pt = self.param_types.get(a.name, ANY)
            if not compatible(t, pt):
                self.error(a.value.loc, "unit-mismatch" if isinstance(t, NumT) else "type-mismatch",
                           f"parameter {a.name} is {pt.describe()}, the step sets {t.describe()}")
            if a.where is not None:
                self.error(a.where.loc, "syntax", "'where' selects entities; a parameter has one value")
            decl = self.rs.params[a.name]
            value = allowed.constant_value(a.value, self.rs.params)
            if decl.allowed is not None and compatible(t, pt) and value is not None \
                    and not allowed.accepts(decl.allowed, value):
                self.error(a.value.loc, "out-of-range",
                           f"step {step.name!r} sets param {a.name} to a value it does not accept: "
                           f"it takes {allowed.describe(decl.allowed)} ({decl.allowed.loc})")
            default = decl.value
            if _literal_canonical(default) is not None and _literal_canonical(default) == _literal_canonical(a.value):
                self.error(a.loc, "step-never-applies",
                           f"step {step.name!r} can never change anything: {a.name} is already "
                           f"{_literal_text(a.value)}")
            return
        if a.kind not in self.schema.kinds:
            self.error(a.loc, "unknown-kind", f"unknown kind {a.kind!r}", hint=_suggest(a.kind, self.schema.kinds))
            return
        info = self.schema.kinds[a.kind].get(a.name)
        if info is None:
            self.error(a.loc, "unknown-attribute", f"{a.kind} has no attribute {a.name!r}",
                       hint=_suggest(a.name, self.schema.kinds[a.kind]))
            return
        if info.origin != "derived":
            self.error(a.loc, "derive-fact", f"a cascade can only set derived values; {a.kind}.{a.name} is a {info.origin} value")
            return
        scope = self.entity_scope(a.kind)
        t = self.infer(a.value, scope)
        at = self.attr_type(a.kind, a.name)
        if not compatible(t, at):
            self.error(a.value.loc, "unit-mismatch" if isinstance(t, NumT) else "type-mismatch",
                       f"{a.kind}.{a.name} is {at.describe()}, the step sets {t.describe()}")
        if a.where is not None:
            self.expect_bool(a.where, scope, "a 'where' condition")
            if _contradiction(a.where, frozenset(self.enum_of_member)):
                self.error(a.where.loc, "step-never-applies",
                           f"step {step.name!r}: no {a.kind} can satisfy this condition")
        rules = self.rs.derives.get(f"{a.kind}.{a.name}", [])
        if len(rules) == 1 and rules[0].when is None and _literal_canonical(rules[0].expr) is not None \
                and _literal_canonical(rules[0].expr) == _literal_canonical(a.value):
            self.error(a.loc, "step-never-applies",
                       f"step {step.name!r} can never change anything: {a.kind}.{a.name} is always "
                       f"{_literal_text(a.value)}")

    def _keep_or_drop(self, a, step: A.Step) -> None:
        kind = a.kind
        if kind not in self.schema.kinds:
            self.error(a.loc, "unknown-kind", f"unknown kind {kind!r}", hint=_suggest(kind, self.schema.kinds))
            return
        if plural(kind) not in self.schema.collections:
            self.error(a.loc, "type-mismatch", f"cannot keep or drop {kind}s: there is no collection {plural(kind)!r}")
            return
        scope = self.entity_scope(kind)
        if isinstance(a, A.DropAction):
            self.expect_bool(a.where, scope, "a 'where' condition")
            if _contradiction(a.where, frozenset(self.enum_of_member)):
                self.error(a.where.loc, "step-never-applies", f"step {step.name!r}: no {kind} can satisfy this condition")
            return
        if a.where is not None:
            self.expect_bool(a.where, scope, "a 'where' condition")
        if a.group is not None:
            self.infer(a.group, scope)
        for key in a.rank_keys:
            rt = self.infer(key, scope)
            if not isinstance(rt, (NumT, StrT, EnumT, AnyT, BoolT)):
                self.error(key.loc, "type-mismatch", f"cannot rank by {rt.describe()}")
        if a.while_ is not None:  # sees the candidate group's first entity as `kind`
            self.expect_bool(a.while_, scope, "a 'while' condition")
        if a.limit is not None:
            self._keep_limit(a)

    def _keep_limit(self, a: A.KeepAction) -> None:
        """``limit N``: a plain number of groups (dataset scope); it replaces ``while``."""
        t = self.infer(a.limit, self.entity_scope("dataset"))
        if isinstance(t, NumT) and not t.dim.is_dimensionless:
            self.error(a.limit.loc, "unit-mismatch",
                       f"a 'limit' is a number of groups, got a quantity in {t.dim.display_unit()}")
        elif not isinstance(t, (NumT, AnyT)):
            self.error(a.limit.loc, "type-mismatch", f"a 'limit' is a number of groups, got {t.describe()}")
        if a.while_ is not None:
            self.error(a.limit.loc, "conflicting-clauses",
                       "a keep takes 'limit' or 'while', not both",
                       hint="'limit N' keeps the first N groups; 'while C' keeps groups while C holds")

    def _warns(self) -> None:
        for w in self.rs.warns.values():
            self.expect_bool(w.when, self.entity_scope("dataset"), "a warning's 'when' condition")

    def _cascade_order(self) -> list[str]:
        """Cascades in declaration order, except that one whose rules read another's outcome runs after it."""
        names = list(self.rs.cascades)
        needs = {n: {m for m in names if m != n and ("cascade", m) in self._reachable(("cascade", n))}
                 for n in names}
        order: list[str] = []
        while len(order) < len(names):
            ready = [n for n in names if n not in order and needs[n] <= set(order)]
            order.append(ready[0] if ready else next(n for n in names if n not in order))  # a cycle: reported
        return order

    def _reachable(self, start: Node) -> set[Node]:
        seen: set[Node] = set()
        todo = list(self.deps.get(start, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.deps.get(n, ()))
        return seen

    def _recipes(self) -> None:
        for r in self.rs.recipes.values():
            scope = self.entity_scope("dataset")
            self.stack.append(("recipe", r.name))
            for st in r.stages:
                for arg in st.args:
                    self.infer(arg, scope)
                if st.when is not None:
                    self.expect_bool(st.when, scope, "a stage's 'when' condition")
            self.stack.pop()

    # ------------------------------------------------------------ graph checks
    def _cycles(self) -> None:
        index: dict[Node, int] = {}
        low: dict[Node, int] = {}
        on: set[Node] = set()
        stack: list[Node] = []
        sccs: list[list[Node]] = []
        counter = [0]

        def visit(v: Node) -> None:  # iterative Tarjan would be longer; graphs are small
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in sorted(self.deps.get(v, ())):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                sccs.append(comp)

        for v in sorted(self.deps):
            if v not in index:
                visit(v)
        for comp in sccs:
            if len(comp) == 1 and comp[0] not in self.deps.get(comp[0], ()):
                continue
            comp = sorted(comp, key=lambda n: (self.node_loc.get(n, A.NOWHERE).file, self.node_loc.get(n, A.NOWHERE).line))
            path = self._cycle_path(comp)
            first = comp[0]
            self.error(self.node_loc.get(first, A.NOWHERE), "cycle",
                       "dependency cycle: " + " -> ".join(node_label(n) for n in path))

    def _cycle_path(self, comp: list[Node]) -> list[Node]:
        members = set(comp)
        path = [comp[0]]
        seen = {comp[0]}
        while True:
            nxt = sorted(w for w in self.deps.get(path[-1], ()) if w in members)
            if not nxt:
                return path
            w = next((x for x in nxt if x not in seen), nxt[0])
            path.append(w)
            if w in seen:
                return path[path.index(w):]
            seen.add(w)

    def _unused(self) -> None:
        for p in self.rs.params.values():
            if ("param", p.name) not in self.used:
                self.error(p.loc, "unused", f"parameter {p.name!r} is never used")
        for t in self.rs.tables.values():
            if ("table", t.name) not in self.used:
                self.error(t.loc, "unused", f"table {t.name!r} is never used")
        for b in self.rs.bands.values():
            if ("bands", b.name) not in self.used:
                self.error(b.loc, "unused", f"bands {b.name!r} are never used")


# ---------------------------------------------------------------- literals
def _literal_number(e: Optional[A.Expr]) -> Optional[float]:
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, A.Unary) and e.op == "-" and isinstance(e.operand, A.Num):
        return -e.operand.value
    return None


def _literal_canonical(e: Optional[A.Expr]) -> Optional[tuple]:
    """(canonical value, dimension) of a literal number with its unit, else None."""
    v = _literal_number(e)
    if v is None:
        return None
    unit = e.operand.unit if isinstance(e, A.Unary) else getattr(e, "unit", None)
    if unit is None:
        return v, DIMENSIONLESS
    try:
        scale, dim = parse_unit(unit)
    except UnitError:
        return None
    return float(f"{v * scale:.12g}"), dim


def _literal_text(e: A.Expr) -> str:
    v = _literal_number(e)
    unit = e.operand.unit if isinstance(e, A.Unary) else getattr(e, "unit", None)
    return f"{v:g}" + (f" {unit}" if unit else "")


# ---------------------------------------------------------------- disjointness
def _atoms(cond: Optional[A.Expr]) -> list[A.Expr]:
    if cond is None:
        return []
    if isinstance(cond, A.Binary) and cond.op == "and":
        return _atoms(cond.left) + _atoms(cond.right)
    return [cond]


def _constant(e: A.Expr, members: frozenset[str] = frozenset()):
    if isinstance(e, A.Num):
        return ("num", e.value * (parse_unit(e.unit)[0] if e.unit else 1.0)) if _unit_ok(e.unit) else None
    if isinstance(e, A.Unary) and e.op == "-":
        c = _constant(e.operand)
        return ("num", -c[1]) if c and c[0] == "num" else None
    if isinstance(e, A.Str):
        return ("sym", e.value)
    if isinstance(e, A.Name) and e.id in members:
        return ("sym", e.id)
    if isinstance(e, A.Bool):
        return ("bool", e.value)
    return None


def _unit_ok(unit: Optional[str]) -> bool:
    if unit is None:
        return True
    try:
        parse_unit(unit)
        return True
    except UnitError:
        return False


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _constraint(atom: A.Expr, members: frozenset[str]):
    """(subject, constraint) for simple atoms, else None. Constraints:
    ("in", set) / ("notin", set) for symbols and booleans, ("span", Span) for numbers."""
    if isinstance(atom, A.Unary) and atom.op == "not":
        inner = _constraint(atom.operand, members)
        if inner and inner[1][0] in ("in", "notin"):
            kind, vals = inner[1]
            return inner[0], ("notin" if kind == "in" else "in", vals)
        if inner is None and isinstance(atom.operand, (A.Attr, A.Name)):
            return repr(atom.operand), ("in", frozenset([("bool", False)]))
        return None
    if isinstance(atom, (A.Attr,)):
        return repr(atom), ("in", frozenset([("bool", True)]))
    if not isinstance(atom, A.Binary):
        return None
    op, left, right = atom.op, atom.left, atom.right
    if op in ("in", "notin") and isinstance(right, (A.SetLit, A.ListLit)):
        consts = [_constant(i, members) for i in right.items]
        if any(c is None for c in consts):
            return None
        vals = frozenset(consts)
        return repr(left), ("in" if op == "in" else "notin", vals)
    if op not in _FLIP:
        return None
    lc, rc = _constant(left, members), _constant(right, members)
    if rc is None and lc is not None:
        left, right, lc, rc, op = right, left, rc, lc, _FLIP[op]
    if rc is None or lc is not None:
        return None
    subject = repr(left)
    if op in ("==", "!="):
        return subject, ("in" if op == "==" else "notin", frozenset([rc]))
    if rc[0] != "num":
        return None
    v = rc[1]
    inf = float("inf")
    span = {"<": Span(-inf, v, False, False), "<=": Span(-inf, v, False, True),
            ">": Span(v, inf, False, False), ">=": Span(v, inf, True, False)}[op]
    return subject, ("span", span)


def _intersect_empty(constraints: list) -> bool:
    sets = [c for c in constraints if c[0] == "in"]
    nots = [c for c in constraints if c[0] == "notin"]
    spans = [c[1] for c in constraints if c[0] == "span"]
    if sets:
        common = frozenset.intersection(*[s[1] for s in sets])
        for n in nots:
            common = common - n[1]
        if spans:
            common = frozenset(v for v in common if v[0] != "num" or all(s.contains(v[1]) for s in spans))
        return not common
    if spans:
        lo = max(spans, key=lambda s: (s.lo, not s.lo_closed))
        hi = min(spans, key=lambda s: (s.hi, s.hi_closed))
        return Span(lo.lo, hi.hi, lo.lo_closed, hi.hi_closed).empty()
    return False


def _disjoint(a: Optional[A.Expr], b: Optional[A.Expr], members: frozenset[str]) -> bool:
    """Can no entity satisfy both conditions? (sound for simple atoms, else 'no')."""
    if a is None or b is None:
        return False
    return _contradiction(A.Binary("and", a, b), members)


def _contradiction(cond: A.Expr, members: frozenset[str]) -> bool:
    by_subject: dict[str, list] = {}
    for atom in _atoms(cond):
        if isinstance(atom, A.Bool) and not atom.value:
            return True
        c = _constraint(atom, members)
        if c is not None:
            by_subject.setdefault(c[0], []).append(c[1])
    return any(_intersect_empty(cs) for cs in by_subject.values())


def check(rs: RuleSet, schema: Schema) -> CheckResult:
    """Every finding about a loaded rule set, and the typed schema it defines."""
    return Checker(rs, schema).run()
