"""Expression typing: names, attributes, operators, calls and aggregates, with their units.

`ExprChecker.infer` gives an expression's static type (`dsl.types`) and records, on the node being
checked, a dependency edge for every parameter, derived attribute, table, bands, collection and
cascade outcome it reads. `attr_type` types a derived or scored attribute from its rules, once.
"""

from __future__ import annotations

from almarules.dsl import ast as A
from almarules.dsl.check_model import plural
from almarules.dsl.check_state import CheckerState, Scope, article, mismatch, suggest
from almarules.dsl.functions import AGGREGATES, CONSTANTS, FUNCTIONS, SignatureError, aggregate_type
from almarules.dsl.literals import is_free_literal, literal_number
from almarules.dsl.types import (
    ANY, BOOL, NUM, AnyT, BoolT, CollT, EntityT, EnumT, NumT, StrT, T, compatible, is_any, symbol_values,
)
from almarules.dsl.units import UnitError, parse_unit

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "in", "notin")


def _unit_or_plain(t: NumT) -> str:
    return t.dim.display_unit() or "a plain number"


class ExprChecker(CheckerState):
    """Types expressions and the attributes that rules derive or score."""

    # ------------------------------------------------------------ attributes
    def attr_type(self, kind: str, attr: str) -> T:
        """The static type of ``kind.attr``: a fact's declared type, or what its rules give."""
        info = self.schema.kinds.get(kind, {}).get(attr)
        if info is None:
            return ANY
        if info.origin not in ("derived", "score"):
            return info.type
        key = (kind, attr)
        if key in self.attr_cache:
            return self.attr_cache[key]
        if key in self.in_progress:
            return ANY  # a cycle; reported by the graph checks
        self.in_progress.add(key)
        self.stack.append(("attr", kind, attr))
        scope = self.entity_scope(kind)
        if info.origin == "derived":
            result = self._derived_type(kind, attr, scope)
        else:
            result = self._score_type(self.rs.scores[f"{kind}.{attr}"], scope)
        self.stack.pop()
        self.in_progress.discard(key)
        self.attr_cache[key] = result
        info.type = result
        return result

    def _derived_type(self, kind: str, attr: str, scope: Scope) -> T:
        result: T = ANY
        for rule in self.rs.derives.get(f"{kind}.{attr}", []):
            t = self.infer(rule.expr, scope)
            if rule.when is not None:
                self.expect_bool(rule.when, scope, "a 'when' condition")
            if rule.digits is not None and not 1 <= rule.digits <= 15:
                self.error(rule.loc, "out-of-range",
                           f"{kind}.{attr}: 'digits' must be 1 to 15 significant digits, got {rule.digits}")
            if rule.unit is not None:
                self._declared_unit(rule, t, kind, attr)
            if is_any(result):
                result = t
            elif not compatible(result, t):
                self.error(rule.expr.loc, mismatch(result, t),
                           f"rules for {kind}.{attr} disagree: {result.describe()} elsewhere, {t.describe()} here")
        return result

    def _declared_unit(self, rule: A.Derive, t: T, kind: str, attr: str) -> None:
        """``unit mJy/beam`` on a derive: its formula must give that dimension."""
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

    def _score_type(self, score: A.Score, scope: Scope) -> T:
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
    def expect_bool(self, expr: A.Expr, scope: Scope, what: str, constant: bool = False) -> None:
        """Type `expr` and report it unless it is true or false; `what` names it in the finding."""
        t = self.infer(expr, scope, constant)
        if not isinstance(t, (BoolT, AnyT)):
            self.error(expr.loc, "type-mismatch", f"{what} must be true or false, got {t.describe()}")

    def infer(self, e: A.Expr, scope: Scope, constant: bool = False) -> T:
        """The static type of `e` in `scope`; `constant`: a parameter's default (no facts)."""
        if isinstance(e, A.Num):
            return self._number(e)
        if isinstance(e, A.Str):
            return StrT(frozenset([e.value]))
        if isinstance(e, A.Bool):
            return BOOL
        if isinstance(e, A.Name):
            return self._name(e, scope, constant)
        if isinstance(e, A.Attr):
            return self._attr(e, scope, constant)
        if isinstance(e, A.Unary):
            return self._unary(e, scope, constant)
        if isinstance(e, A.Binary):
            return self._binary(e, scope, constant)
        if isinstance(e, A.IfElse):
            return self._if_else(e, scope, constant)
        if isinstance(e, A.Call):
            return self._call(e, scope, constant)
        if isinstance(e, A.Aggregate):
            return self._aggregate(e, scope, constant)
        if isinstance(e, (A.SetLit, A.ListLit)):
            return self._collection_literal(e, scope, constant)
        return ANY

    def binders(self, binders: tuple[A.Binder, ...], scope: Scope, constant: bool = False) -> Scope:
        """The scope inside ``for x in coll where c, y in ...``; checks each source and condition
        (`constant`: in a parameter's default, where no facts may appear)."""
        for b in binders:
            src = self.infer(b.source, scope, constant)
            if isinstance(src, CollT):
                elem = src.elem
            elif is_any(src):
                elem = ANY
            else:
                self.error(b.source.loc, "type-mismatch", f"'for {b.var} in ...' needs a collection, got {src.describe()}")
                elem = ANY
            scope = scope.child({b.var: elem})
            if b.where is not None:
                self.expect_bool(b.where, scope, "a 'where' condition", constant)
        return scope

    def _number(self, e: A.Num) -> T:
        if e.unit is None:
            return NUM
        try:
            return NumT(parse_unit(e.unit)[1])
        except UnitError:
            self.error(e.loc, "unknown-unit", f"unknown unit {e.unit!r}",
                       hint="units are astropy names: GHz, mJy/beam, arcsec, deg, m, s, GB, ...")
            return ANY

    def _unary(self, e: A.Unary, scope: Scope, constant: bool) -> T:
        t = self.infer(e.operand, scope, constant)
        if e.op == "not":
            if not isinstance(t, (BoolT, AnyT)):
                self.error(e.loc, "type-mismatch", f"'not' needs true or false, got {t.describe()}")
            return BOOL
        if not isinstance(t, (NumT, AnyT)):
            self.error(e.loc, "type-mismatch", f"cannot negate {t.describe()}")
            return ANY
        return t

    def _if_else(self, e: A.IfElse, scope: Scope, constant: bool) -> T:
        self.expect_bool(e.cond, scope, "an 'if' condition")
        a = self.infer(e.then, scope, constant)
        b = self.infer(e.else_, scope, constant)
        if not compatible(a, b) and not (is_free_literal(e.then) or is_free_literal(e.else_)):
            self.error(e.loc, mismatch(a, b), f"the branches differ: 'then' gives {a.describe()}, 'else' gives {b.describe()}")
        if is_free_literal(e.then):
            return b
        return a if not is_any(a) else b

    def _collection_literal(self, e: A.SetLit | A.ListLit, scope: Scope, constant: bool) -> T:
        elem: T = ANY
        for item in e.items:
            t = self.infer(item, scope, constant)
            if is_any(elem):
                elem = t
            elif not compatible(elem, t):
                self.error(item.loc, mismatch(elem, t), f"mixed elements: {elem.describe()} and {t.describe()}")
        if isinstance(elem, StrT) and all(isinstance(i, A.Str) for i in e.items):
            elem = StrT(frozenset(i.value for i in e.items))
        return CollT(elem)

    def _name(self, e: A.Name, scope: Scope, constant: bool) -> T:
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
        self._unknown_name(e, scope)
        return ANY

    def _unknown_name(self, e: A.Name, scope: Scope) -> None:
        pool = scope.all_names() + list(self.rs.params) + list(self.enum_of_member) + list(CONSTANTS) \
            + list(self.schema.collections) + ["dataset"]
        hint = suggest(e.id, pool)
        if e.id in self.schema.kinds:
            hint = f"'{e.id}' is a kind; inside a rule about {e.id}s write '{e.id}.attribute', " \
                   f"or range over '{plural(e.id)}'"
        self.error(e.loc, "unknown-name", f"unknown name {e.id!r}", hint=hint)

    def _attr_info(self, kind: str, attr: str, e: A.Expr) -> T:
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

    def _outcome_read(self, cascade: str, attr: str, e: A.Expr) -> None:
        """A read of a cascade's outcome depends on the whole cascade; the cascade itself may not read it."""
        node = ("cascade", cascade)
        if self.stack and self.stack[-1] == node:
            self.error(e.loc, "cycle", f"cascade {cascade!r} cannot read dataset.{attr}: its outcome is "
                                       f"known only when it has finished")
            return
        self.depend(node)

    def _attr(self, e: A.Attr, scope: Scope, constant: bool) -> T:
        obj = self.infer(e.obj, scope, constant)
        if is_any(obj):
            return ANY
        if isinstance(obj, EntityT):
            attrs = self.schema.kinds.get(obj.kind, {})
            if e.name not in attrs:
                self.error(e.loc, "unknown-attribute", f"{obj.kind} has no attribute {e.name!r}",
                           hint=suggest(e.name, attrs))
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

    # ------------------------------------------------------------ operators
    def _binary(self, e: A.Binary, scope: Scope, constant: bool) -> T:
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
            if op in _COMPARISONS:
                return BOOL
            if op in ("+", "-"):
                return left if not is_any(left) else right
            return ANY
        if op in _COMPARISONS:
            self._comparison(e, left, right)
            return BOOL
        return self._arithmetic(e, left, right)

    def _comparison(self, e: A.Binary, left: T, right: T) -> None:
        """``in``, ``==``/``!=`` and the orderings, both sides typed (neither unknown)."""
        op = e.op
        free = is_free_literal(e.left) or is_free_literal(e.right)
        if op in ("in", "notin"):
            if not isinstance(right, CollT):
                self.error(e.right.loc, "type-mismatch", f"'in' needs a collection or set on the right, got {right.describe()}")
            elif not compatible(left, right.elem):
                self.error(e.loc, "type-mismatch", f"cannot look for {left.describe()} in {right.describe()}")
            else:
                self._symbols_possible(left, right.elem, e)
        elif op in ("==", "!="):
            if not compatible(left, right) and not free:
                self.error(e.loc, mismatch(left, right), f"cannot compare {left.describe()} with {right.describe()}")
            else:
                self._symbols_possible(left, right, e)
        elif not (isinstance(left, NumT) and isinstance(right, NumT)):
            self.error(e.loc, "type-mismatch", f"'{op}' compares numbers, got {left.describe()} and {right.describe()}")
        elif left.dim != right.dim and not free:
            self.error(e.loc, "unit-mismatch",
                       f"cannot compare {_unit_or_plain(left)} with {_unit_or_plain(right)}")

    def _arithmetic(self, e: A.Binary, left: T, right: T) -> T:
        op = e.op
        if not isinstance(left, NumT) or not isinstance(right, NumT):
            bad = left if not isinstance(left, NumT) else right
            self.error(e.loc, "type-mismatch", f"'{op}' needs numbers, got {bad.describe()}")
            return ANY
        if op in ("+", "-"):
            if left.dim != right.dim:
                if is_free_literal(e.left):
                    return right
                if is_free_literal(e.right):
                    return left
                self.error(e.loc, "unit-mismatch",
                           f"cannot {'add' if op == '+' else 'subtract'} "
                           f"{_unit_or_plain(right)} {'to' if op == '+' else 'from'} {_unit_or_plain(left)}")
                return ANY
            return left
        if op == "*":
            return NumT(left.dim * right.dim)
        if op == "/":
            return NumT(left.dim / right.dim)
        if op == "^":
            return self._power(e, left, right)
        return ANY

    def _power(self, e: A.Binary, left: NumT, right: NumT) -> T:
        if left.dim.is_dimensionless:
            if not right.dim.is_dimensionless:
                self.error(e.right.loc, "unit-mismatch", "an exponent must be a plain number")
            return NUM
        power = literal_number(e.right)
        if power is None:
            self.error(e.right.loc, "unit-mismatch",
                       "a quantity with a unit can only be raised to a literal number (the unit must be known)")
            return ANY
        return NumT(left.dim ** power)

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
            self.error(e.loc, "type-mismatch", f"cannot compare {article(left.name)} with {article(right.name)}")
            return
        impossible = sorted(literal_side - other)
        if impossible and other and literal_side & other and isinstance(e.right, (A.SetLit, A.ListLit)):
            # some members of a literal set can match, others never can (a typo?)
            for item in e.right.items:
                if isinstance(item, A.Str) and item.value not in other:
                    self.error(item.loc, "never-true",
                               f"{item.value!r} is never a value here; possible values: {', '.join(sorted(other))}",
                               hint=suggest(item.value, other))
            return
        if impossible and len(literal_side) >= 1 and other and not literal_side & other:
            self.error(e.loc, "never-true",
                       f"{', '.join(map(repr, impossible))} "
                       f"{'is never a value' if len(impossible) == 1 else 'are never values'} here; possible values: "
                       f"{', '.join(sorted(other))}",
                       hint=suggest(impossible[0], other))

    # ------------------------------------------------------------ calls
    def _call(self, e: A.Call, scope: Scope, constant: bool) -> T:
        args = [self.infer(a, scope, constant) for a in e.args]
        if e.func in self.rs.tables or e.func in self.rs.bands:
            return self._lookup_call(e, args)
        if e.func in AGGREGATES and len(e.args) == 1 and isinstance(args[0], CollT):
            try:
                return aggregate_type(e.func, [], args[0].elem)
            except SignatureError as exc:
                self.error(e.loc, "type-mismatch", str(exc))
                return ANY
        if e.func in AGGREGATES and len(e.args) == 1 and is_any(args[0]):
            return ANY  # its argument is already reported (or unknown): no second finding
        return self._function_call(e, args)

    def _lookup_call(self, e: A.Call, args: list[T]) -> T:
        """``dr_correction_12m(x)``: a table gives its rows' type, bands give one of their labels."""
        is_table = e.func in self.rs.tables
        self.depend(("table" if is_table else "bands", e.func))
        if len(e.args) != 1:
            self.error(e.loc, "arity", f"{e.func}() takes 1 argument, got {len(e.args)}")
            return ANY
        dim = self.table_dims.get(e.func)
        if dim is not None and isinstance(args[0], NumT) and args[0].dim != dim:
            self.error(e.args[0].loc, "unit-mismatch",
                       f"{e.func}() looks up {dim.display_unit() or 'plain numbers'}, got "
                       f"{_unit_or_plain(args[0])}")
        elif not isinstance(args[0], (NumT, AnyT)):
            self.error(e.args[0].loc, "type-mismatch", f"{e.func}() looks up a number, got {args[0].describe()}")
        if is_table:
            return self.table_result.get(e.func, ANY)
        return StrT(frozenset(r.label for r in self.rs.bands[e.func].rows))

    def _function_call(self, e: A.Call, args: list[T]) -> T:
        fn = FUNCTIONS.get(e.func)
        if fn is None:
            if e.func in AGGREGATES:
                self.error(e.loc, "type-mismatch",
                           f"{e.func}() aggregates a collection: write {e.func}(x for x in ...) or {e.func}(collection)")
                return ANY
            pool = list(FUNCTIONS) + list(AGGREGATES) + list(self.rs.tables) + list(self.rs.bands)
            self.error(e.loc, "unknown-function", f"unknown function {e.func!r}", hint=suggest(e.func, pool))
            return ANY
        problem = fn.check_arity(len(args))
        if problem:
            self.error(e.loc, "arity", problem)
            return ANY
        try:
            free = [i for i, a in enumerate(e.args) if is_free_literal(a)]
            typed = [a for i, a in enumerate(args) if i not in free] or args
            if e.func in ("min", "max", "clip", "abs"):
                return fn.signature(typed)
            return fn.signature(args)
        except SignatureError as exc:
            self.error(e.loc, "unit-mismatch" if "unit" in str(exc) or "dimensionless" in str(exc) else "type-mismatch", str(exc))
            return ANY

    def _aggregate(self, e: A.Aggregate, scope: Scope, constant: bool) -> T:
        lead = [self.infer(a, scope, constant) for a in e.lead]
        inner = self.binders(e.binders, scope, constant)
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
            q = literal_number(e.lead[0])
            if q is not None and not 0 <= q <= 100:
                self.error(e.lead[0].loc, "out-of-range", f"a percentile level must be in [0, 100], got {q:g}")
        if e.default is not None:
            self._aggregate_default(e, result, scope, constant)
        return result

    def _aggregate_default(self, e: A.Aggregate, result: T, scope: Scope, constant: bool) -> None:
        """``max(... else 0 GHz)``: the 'else' value must fit the aggregate."""
        dt = self.infer(e.default, scope, constant)
        if not compatible(dt, result) and not is_free_literal(e.default):
            self.error(e.default.loc, "unit-mismatch" if isinstance(dt, NumT) else "type-mismatch",
                       f"the 'else' value is {dt.describe()}, the {e.func}() is {result.describe()}")

