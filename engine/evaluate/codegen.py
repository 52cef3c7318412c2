"""Compile checked expressions to Python source, once per rule set.

Each expression (`expr_function`), and each derived attribute with all its rules
(`derive_function`), becomes one Python function whose body evaluates the whole formula: no call
per operator, variables in Python locals, attribute reads straight from the entity's cache (a
value read again in the same block is not looked up again, nor is an arithmetic subexpression
written twice computed twice: `subexpr`). The semantics are `compile`'s
closures' exactly (three-valued logic, the same error values, the same inputs recorded in the same
order): every operand is checked for `Unknown` where the closures check it, and errors are left
to the `arith` functions, called again on the rare failing operands.

Inputs read are recorded flat (`records.decode_reads`): by a derived value's function in a frame
of its own (kept as the value's provenance), by an expression's in the frame on top of
``ev.frames``; those that are fixed throughout a block (the entity, a loop variable, a parameter)
in one statement, also across the blocks that record nothing (arithmetic, a cache miss). What does not
depend on the entity is computed once per evaluation state (``ev.memo``) and its inputs replayed:
an aggregate of the dataset only, inside a formula evaluated for many entities, and a derived
value whose rules do not name the entity (`shared`).

An expression nested beyond what Python's compiler accepts raises `TooDeep`; it is compiled to
closures instead (`compile.closure_expr`).

Rule files stay data: the source is made of this module's templates only. Everything a rule file
supplies enters it as a literal written by `repr` (attribute, parameter, function and table names,
strings, error texts) or as a constant in the functions' namespace (numbers, declarations);
its variables become generated names (``e_0``, ``v3``), and the functions called are the
registry's (`dsl.functions`). A test evaluates a rule file whose strings are Python code: they
stay strings (tests/engine/evaluate/test_stale_and_sharing.py).
"""

from __future__ import annotations

from contextlib import nullcontext
from types import CodeType
from typing import TYPE_CHECKING, Any, Callable, Optional

from almarules.dsl import ast as A
from almarules.dsl.functions import CONSTANTS, FUNCTIONS, percentile
from almarules.dsl.types import CollT, EntityT
from almarules.dsl.units import parse_unit
from almarules.engine.evaluate.arith import add, div, finite_result, mul, power, sub
from almarules.engine.evaluate.runtime import (ONE_ARGUMENT_AGGREGATES, REDUCERS, emit_entity, foldable, join_index,
                                               join_parts, lookup_in, names_in, narrow)
from almarules.engine.evaluate.subexpr import reuse_key
from almarules.engine.evaluate.values import ACTIVE, Entity, Unknown, merge_unknowns

if TYPE_CHECKING:
    from almarules.engine.evaluate.compile import Names

_MAX_INDENT = 80  # Python's tokenizer allows 100 levels of indentation
_MAX_LOOPS = 14  # and its compiler 20 nested blocks (loops, try)
_CODE: dict[tuple[str, str], CodeType] = {}  # (source, where) -> its code: a rule set loaded again compiles nothing
_CODE_LIMIT = 50_000


class TooDeep(Exception):
    """An expression nested too deeply for Python's compiler (compile it to closures instead)."""


PRELUDE: dict[str, Any] = {
    "_E": Entity, "_U": Unknown, "_A": ACTIVE, "_mu": merge_unknowns, "_fin": finite_result,
    "_add": add, "_sub": sub, "_mul": mul, "_div": div, "_pow": power, "_ji": join_index, "_nar": narrow,
    "_lk": lookup_in, "_pct": percentile, "_ERRS": (ValueError, ZeroDivisionError, OverflowError),
    "_em": emit_entity,
}
_COMPARE = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CHECKED = {"+": ("+", "_add"), "-": ("-", "_sub"), "*": ("*", "_mul")}


class Gen:
    """The source of one function: its lines, the constants it names, the locals its prologue sets."""

    def __init__(self, names: Names, constant: Callable[[A.Expr], Any], framed: bool, ns: Optional[dict] = None,
                 stacked: bool = False) -> None:
        self.names = names
        self.constant = constant  # the value of a constant subexpression (runtime.foldable)
        self.framed = framed  # a frame of its own: ``fa`` records (else ``fr``, which may be None)
        self.stacked = stacked  # that frame is on ``ev.frames`` (else pushed around ``ev.lookup``)
        self.kinds: dict[str, tuple[str, bool]] = {"ds": ("dataset", True)}  # local -> (entity kind, surely one)
        self.elems: dict[str, str] = {}  # local holding a collection of entities -> their kind
        self.avail: dict[tuple[str, str], str] = {}  # (local, attr) read in a dominating block -> its local
        self.reused: dict[tuple, str] = {}  # subexpr.reuse_key computed in a dominating block -> its local
        self.straight: dict[int, bool] = {}  # (subexpr.straight's memo)
        if ns is None:  # one namespace per rule set: its functions call each other by name
            ns = names.ns
            if not ns:
                ns.update(PRELUDE)
        self.ns = ns
        self.lines: list[str] = []
        self.level = 1
        self.loops = 0
        self.count = 0
        self.env_vars: dict[str, str] = {}  # env name -> local, read in the prologue
        self.used: set[str] = set()  # prologue parts needed: "fr", "ds", "params", "ec", "dc", caches
        self.batch: Optional[tuple[int, list[str]]] = None  # inputs recorded together: (line, items)
        self.quiet = 0  # quiet blocks open (`block`)

    # ------------------------------------------------------------ output
    def emit(self, line: str) -> None:
        if self.level > _MAX_INDENT:
            raise TooDeep()
        self.lines.append("    " * self.level + line)

    def tmp(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def const(self, value: Any) -> str:
        if value is None or value is True or value is False:
            return repr(value)
        return constant_name(self.ns, value)

    def block(self, head: str, quiet: bool = False) -> "_Block":
        """An indented block under `head`; `quiet`: it records no input (arithmetic, a value
        computed on a cache miss, which records its inputs in its own frame) and cannot leave early,
        so the inputs noted around it are recorded together, before it."""
        if not quiet:
            self.flush()
        self.emit(head)
        return _Block(self, quiet)

    def record(self, *items: str) -> str:
        """A statement recording `items` (Python expressions) as inputs read."""
        assert not self.quiet, "an input recorded inside a quiet block"
        self.used.add("fr")
        stmt = f"fr += ({''.join(x + ', ' for x in items)})"
        return stmt if self.framed else f"if fr is not None: {stmt}"

    def note(self, *items: str) -> None:
        """Record `items`, Python expressions fixed throughout the current block (``ent``, a loop
        variable, a constant): with the others noted since the block's last other recording, in
        one statement where the first was (the order recorded is the same)."""
        assert not self.quiet, "an input noted inside a quiet block"
        if self.batch is None:
            self.emit("")
            self.batch = (len(self.lines) - 1, [])
        self.batch[1].extend(items)

    def flush(self) -> None:
        """Write the noted inputs' statement (before anything else records, or a block starts or ends)."""
        if self.batch is not None:
            line, items = self.batch
            self.batch = None
            self.used.add("fr")
            stmt = f"fr += ({''.join(x + ', ' for x in items)})"
            self.lines[line] += stmt if self.framed else f"if fr is not None: {stmt}"

    def fixed(self, o: str) -> bool:
        """`o` holds the same entity throughout its block: the entity, the dataset, a loop variable."""
        return self.kinds.get(o, (None, False))[1] and (o in ("ent", "ds") or o[0] in "ve")

    def dataset(self) -> str:
        self.used.add("ds")
        return "ds"

    # ------------------------------------------------------------ expressions
    def ex(self, e: A.Expr, scope: dict[str, str]) -> str:
        """Emit the statements computing `e`; the Python name (or constant) holding its value."""
        if isinstance(e, A.Num):
            return self.const(e.value * (parse_unit(e.unit)[0] if e.unit else 1.0))
        if isinstance(e, (A.Str, A.Bool)):
            return self.const(e.value)
        if foldable(e, self.names, frozenset(scope)):
            return self.const(self.constant(e))
        key = reuse_key(e, scope, self.straight)
        if key is not None:
            r = self.reused.get(key)
            if r is not None:
                self.replay(e, scope)
                return r
            r = self.reused[key] = self.computed(e, scope)
            return r
        return self.computed(e, scope)

    def computed(self, e: A.Expr, scope: dict[str, str]) -> str:
        """`ex` of an expression that is not a literal nor constant."""
        if isinstance(e, A.Name):
            return self.name(e.id, scope)
        if isinstance(e, A.Attr):
            return self.read(self.ex(e.obj, scope), e.name)
        if isinstance(e, A.Unary):
            v, r = self.ex(e.operand, scope), self.tmp()
            self.emit(f"{r} = {v} if {v}.__class__ is _U else {'not ' if e.op == 'not' else '-'}{v}")
            return r
        if isinstance(e, A.Binary):
            return self.binary(e, scope)
        if isinstance(e, A.IfElse):
            return self.if_else(e, scope)
        if isinstance(e, A.Call):
            return self.call(e, scope)
        if isinstance(e, A.Aggregate):
            return self.aggregate(e, scope)
        if isinstance(e, (A.SetLit, A.ListLit)):
            vs = [self.ex(i, scope) for i in e.items]
            r = self.tmp()
            items = "".join(f"{v}, " for v in vs)
            made = f"frozenset(({items}))" if isinstance(e, A.SetLit) else f"({items})"
            self.emit(f"{r} = _mu(({items})) or {made}")
            return r
        raise TypeError(f"cannot compile {type(e).__name__}")

    def replay(self, e: A.Expr, scope: dict[str, str]) -> str:
        """Record again what `e` read where it was computed, its value being reused (`subexpr`);
        the local holding an entity read on the way."""
        if isinstance(e, A.Attr):
            return self.read(self.replay(e.obj, scope), e.name)
        if isinstance(e, A.Name) and not foldable(e, self.names, frozenset(scope)):
            if e.id in self.names.params and e.id not in scope:
                self.note(repr(f"param:{e.id}"))
                return ""
            return self.name(e.id, scope)  # (a variable, the dataset, or a collection: read again)
        for part in (e.operand,) if isinstance(e, A.Unary) else (e.left, e.right) if isinstance(e, A.Binary) \
                else e.args if isinstance(e, A.Call) else ():
            self.replay(part, scope)
        return ""

    def name(self, name: str, scope: dict[str, str]) -> str:
        if name in scope:
            local = scope[name]
            if local.startswith("e_"):
                self.env_vars[name] = local
                if name == "dataset":  # every caller binds it to ev.dataset
                    self.kinds[local] = ("dataset", True)
            return local
        if name in self.names.params:
            self.used.add("params")
            r = self.tmp()
            self.note(repr(f"param:{name}"))
            self.emit(f"{r} = pv[{name!r}]")
            return r
        if name in CONSTANTS:
            return self.const(CONSTANTS[name][0])
        if name in self.names.enum_members:
            return self.const(name)
        if name == "dataset":
            return self.dataset()
        if name in self.names.collections:
            return self.read(self.dataset(), name)
        raise ValueError(f"unresolved name {name!r} (the checker should have caught it)")

    def read(self, o: str, attr: str) -> str:
        """``o.attr``, recorded as read: from the cache when computed, else computed (a derived
        value of an entity of known kind by the function of its rules, anything else by ``ev.value``)."""
        kind, sure = self.kinds.get(o, (None, False))
        again = self.avail.get((o, attr))
        if again is not None:  # read before, on every path to here: the same value; recorded again
            if self.fixed(o):
                self.note(o, repr(attr))
            elif sure:
                self.flush()
                self.emit(self.record(o, repr(attr)))
            else:
                self.flush()
                self.used.add("fr")
                self.emit(f"if {'' if self.framed else 'fr is not None and '}{o}.__class__ is _E: fr += ({o}, {attr!r})")
            return again
        r, a = self.tmp(), repr(attr)
        self.avail[(o, attr)] = r
        info = self.names.kinds.get(kind, {}).get(attr) if kind else None
        if info is not None and isinstance(info.type, EntityT):
            # (a created one is surely an entity: an emit whose values are not all known makes none)
            self.kinds[r] = (info.type.kind, info.origin == "created")
        elif info is not None and isinstance(info.type, CollT) and isinstance(info.type.elem, EntityT):
            self.elems[r] = info.type.elem.kind
        if sure:
            cache = {"ent": "ec", "ds": "dc"}.get(o)
            if cache is None:
                cache = self.tmp()
                self.emit(f"{cache} = {o}.cache")
            self.used.add(cache)
            self.cached_read(r, o, cache, a, info)
            return r
        self.emit(f"if {o}.__class__ is not _E: {r} = {o} if {o}.__class__ is _U else ev.value({o}, {a})")
        with self.block("else:"):
            self.cached_read(r, o, f"{o}.cache", a, info)
        return r

    def cached_read(self, r: str, o: str, cache: str, a: str, info: Any) -> None:
        """Record ``o.a`` and take it from `cache` (``o.cache``), computing it when missing."""
        if self.fixed(o):
            self.note(o, a)
        else:
            self.flush()
            self.emit(self.record(o, a))
        if info is not None and info.origin == "fact" and self.kinds[o][0] != "dataset":
            # World.fact's, as Evaluation.value would (the entity is the world's)
            rd = self.const(self.names.readers.get(self.kinds[o][0], a[1:-1]))
            self.emit(f"if ({r} := {cache}.get({a}, _A)) is _A: {r} = {cache}[{a}] = ({rd}(ev.world, "
                      f"getattr({o}.model, {a}), {o}) if {o}.model is not None else ev.world.fact({o}, {a}))")
            return
        if info is not None and info.origin == "created" and self.kinds[o][0] != "dataset":
            self.emit(f"if ({r} := {cache}.get({a}, _A)) is _A: {r} = {cache}[{a}] = {o}.created[{a}]")
            return
        if info is not None and info.origin == "builtin":  # the key (evaluation._BY_ORIGIN)
            self.emit(f"{r} = {o}.key")
            return
        if info is None or info.origin != "derived":
            self.emit(f"if ({r} := {cache}.get({a}, _A)) is _A: {r} = ev.value({o}, {a})")
            return
        with self.block(f"if ({r} := {cache}.get({a}, _A)) is _A:", quiet=True):  # Evaluation.value's, inline
            self.emit(f"if {a} in {cache}: {r} = ev.cycle({o}, {a})")
            key = self.names.shared.get((self.kinds[o][0], a[1:-1]))
            if key is not None:  # computed for another entity in this evaluation state (derive_function)
                self.emit(f"elif {key} not in ev.unshared and (m := ev.memo.get({key})) is not None:")
                self.emit(f"    {r} = {cache}[{a}] = m[0]; {o}.prov[{a}] = m[1]")
            fn = self.names.functions[(self.kinds[o][0], a[1:-1])]
            with self.block("else:", quiet=True):
                self.emit(f"{r} = {cache}[{a}] = {fn}(ev, {o}, {a})")

    def merged(self, r: str, a: str, b: str) -> None:
        """``if`` `a` or `b` is unknown: `r` is (both merged, as `merge_unknowns`); the caller's
        ``else`` follows."""
        if self.known_value(a) or self.known_value(b):
            self.emit(f"if {self.unknown_test(a, b)}: {r} = {b if self.known_value(a) else a}")
            return
        self.emit(f"if {a}.__class__ is _U: {r} = {a} if {b}.__class__ is not _U else {a}.merge({b})")
        self.emit(f"elif {b}.__class__ is _U: {r} = {b}")

    def unknown_test(self, *vs: str) -> str:
        return " or ".join(f"{v}.__class__ is _U" for v in vs if not self.known_value(v)) or "False"

    def known_value(self, v: str) -> bool:
        """`v` names a constant that is not an `Unknown`."""
        return v in ("True", "False", "None") or (v.startswith("k") and v[1:].isdigit()
                                                 and self.ns[v].__class__ is not Unknown)

    def binary(self, e: A.Binary, scope: dict[str, str]) -> str:
        op = e.op
        if op in ("and", "or"):
            stop = "False" if op == "and" else "True"
            a, r = self.ex(e.left, scope), self.tmp()
            self.emit(f"if {a} is {stop}: {r} = {stop}")
            with self.block("else:"):
                b = self.ex(e.right, scope)
                self.emit(f"if {b} is {stop}: {r} = {stop}")
                self.emit(f"elif {a}.__class__ is _U or {b}.__class__ is _U: {r} = _mu(({a}, {b}))")
                self.emit(f"else: {r} = {'True' if op == 'and' else 'False'}")
            return r
        a = self.ex(e.left, scope)
        b = self.ex(e.right, scope)
        r = self.tmp()
        self.merged(r, a, b)
        if op in _COMPARE:
            self.emit(f"else: {r} = {a} {_COMPARE[op]} {b}")
        elif op in ("in", "notin"):
            self.emit(f"else: {r} = {a} {'in' if op == 'in' else 'not in'} {b}")
        elif op in _CHECKED:
            symbol, fn = _CHECKED[op]
            with self.block("else:", quiet=True):
                self.emit(f"{r} = {a} {symbol} {b}")
                self.emit(f"if not {r} - {r} == 0: {r} = {fn}({a}, {b})")
        elif op == "/":
            self.emit(f"elif {b} == 0: {r} = _div({a}, {b})")
            with self.block("else:", quiet=True):
                self.emit(f"{r} = {a} / {b}")
                self.emit(f"if not {r} - {r} == 0: {r} = _div({a}, {b})")
        else:  # a ^ b: floats by Python's power, anything unusual by arith.power (the same result)
            with self.block("elif " + " and ".join(f"{v}.__class__ is float" for v in (a, b)
                                                   if not isinstance(self.ns.get(v), float)) + ":", quiet=True):
                self.emit(f"try: {r} = {a} ** {b}")
                self.emit(f"except (OverflowError, ZeroDivisionError): {r} = _pow({a}, {b})")
                self.emit(f"if {r}.__class__ is not float or not {r} - {r} == 0: {r} = _pow({a}, {b})")
            self.emit(f"else: {r} = _pow({a}, {b})")
        return r

    def if_else(self, e: A.IfElse, scope: dict[str, str]) -> str:
        c, r = self.ex(e.cond, scope), self.tmp()
        self.emit(f"if {c}.__class__ is _U: {r} = {c}")
        with self.block(f"elif {c}:"):
            self.emit(f"{r} = {self.ex(e.then, scope)}")
        with self.block("else:"):
            self.emit(f"{r} = {self.ex(e.else_, scope)}")
        return r

    def call(self, e: A.Call, scope: dict[str, str]) -> str:
        func, names = e.func, self.names
        if func in names.tables or func in names.bands:
            x, r = self.ex(e.args[0], scope), self.tmp()
            what = "table" if func in names.tables else "band"
            self.flush()  # the lookup records the row read
            self.emit(f"if {x}.__class__ is _U: {r} = {x}")
            if self.framed and not self.stacked:  # the row's formula records its inputs in ev.frames[-1]
                self.emit(f"else: ev.frames.append(fr); {r} = ev.lookup({what!r}, {func!r}, {x}); ev.frames.pop()")
            else:
                self.emit(f"else: {r} = ev.lookup({what!r}, {func!r}, {x})")
            return r
        vs = [self.ex(a, scope) for a in e.args]
        r = self.tmp()
        if func == "known":
            self.emit(f"{r} = {vs[0]}.__class__ is not _U")
        elif func == "lookup":
            coll_name = e.args[0].id if isinstance(e.args[0], A.Name) else "collection"
            self.emit(f"if {self.unknown_test(*vs)}: {r} = _mu(({vs[0]}, {vs[1]}))")
            self.emit(f"else: {r} = _lk(ev, {vs[0]}, {vs[1]}, {coll_name!r})")
        elif len(vs) == 1 and func in ONE_ARGUMENT_AGGREGATES:
            self.emit(f"if {vs[0]}.__class__ is _U: {r} = {vs[0]}")
            with self.block("else:", quiet=True):
                self.emit(f"{r} = {self.const(REDUCERS[func])}(list({vs[0]}), None, {func + '()'!r})")
                self.finite(r, func)
        else:
            args = "".join(f"{v}, " for v in vs)
            if vs:
                self.emit(f"if {self.unknown_test(*vs)}: {r} = _mu(({args}))")
            with self.block("else:" if vs else "if True:", quiet=True):
                with self.block("try:", quiet=True):
                    self.emit(f"{r} = {self.const(FUNCTIONS[func].impl)}({args.rstrip(', ')})")
                    self.emit(f"if {r}.__class__ is float and not {r} - {r} == 0: {r} = _fin({func!r}, ({args}), {r})")
                self.emit(f"except _ERRS as exc: {r} = _U(errors=[{func + '(): '!r} + str(exc)])")
        return r

    # ------------------------------------------------------------ aggregates
    def aggregate(self, e: A.Aggregate, scope: dict[str, str]) -> str:
        if set(scope) - {"dataset"} and not (names_in(e) & (set(scope) - {"dataset"})):
            return self.memoised(e, scope)
        vals, unk = self.tmp(), self.tmp()
        self.emit(f"{vals} = []")
        self.emit(f"{unk} = []")
        if len(e.binders) == 1:
            inner = self.loop(e.binders[0], scope, unk)
            with inner:
                self.element(e.element, inner.scope, vals, unk)
        else:
            rows = self.tmp()
            self.emit(f"{rows} = []")
            inner_scope = self.rows(e.binders, scope, rows, unk)
            targets = [inner_scope[b.var] for b in e.binders]
            with self.loop_block(f"for {', '.join(targets)} in {rows}:"):
                self.element(e.element, inner_scope, vals, unk)
        return self.reduce(e, scope, vals, unk)

    def element(self, element: A.Expr, scope: dict[str, str], vals: str, unk: str) -> None:
        v = self.ex(element, scope)
        self.emit(f"if {v}.__class__ is _U: {unk}.append({v})")
        self.emit(f"else: {vals}.append({v})")

    def loop(self, b: A.Binder, scope: dict[str, str], unk: str, join: bool = True) -> "_Block":
        """Open ``for var in source`` (skipping elements whose where is not true; with `join`, the
        source narrowed first: `source`); the caller emits the body inside the returned block,
        whose `scope` binds the variable."""
        src = self.source(b, scope) if join else self.ex(b.source, scope)
        self.emit(f"if {src}.__class__ is _U: {unk}.append({src})")
        outer = self.block("else:")
        self.count += 1
        var = f"v{self.count}"
        inner = self.loop_block(f"for {var} in {src}:")
        inner.outer = outer
        inner.scope = {**scope, b.var: var}
        if src in self.elems:  # an element of a collection of entities: an entity of its kind
            self.kinds[var] = (self.elems[src], True)
        if b.where is not None:
            w = self.ex(b.where, inner.scope)
            self.flush()  # (what follows a `continue` is not recorded before it)
            self.emit(f"if {w}.__class__ is _U: {unk}.append({w}); continue")
            self.emit(f"if not {w}: continue")
        return inner

    def rows(self, binders: tuple, scope: dict[str, str], rows: str, unk: str) -> dict[str, str]:
        """Every combination of the binders' elements whose wheres are true, appended to `rows`
        (the first binder outermost); the scope binding all the variables."""
        blocks = []
        for b in binders:
            inner = self.loop(b, scope, unk)
            blocks.append(inner)
            scope = inner.scope
        self.emit(f"{rows}.append(({''.join(scope[b.var] + ', ' for b in binders)}))")
        for inner in reversed(blocks):
            inner.__exit__(None, None, None)
        return scope

    def source(self, b: A.Binder, scope: dict[str, str]) -> str:
        """A binder's collection, narrowed by its where's equality conjuncts (`runtime.join_parts`)."""
        c = self.ex(b.source, scope)
        parts = join_parts(b)
        if parts is None:
            return c
        attrs, others = parts
        r = self.tmp()
        self.emit(f"{r} = {c}")
        if c in self.elems:
            self.elems[r] = self.elems[c]
        with self.block(f"if {r}.__class__ is not _U and {r}:"):
            ix = self.tmp()
            self.emit(f"{ix} = _ji(ev, {r}, {self.const(attrs)})")
            with self.block(f"if {ix} is not None:"):
                want = [self.ex(x, scope) for x in others]
                self.emit(f"{r} = _nar({ix}, {r}, ({''.join(w + ', ' for w in want)}))")
        return r

    def reduce(self, e: A.Aggregate, scope: dict[str, str], vals: str, unk: str) -> str:
        func, r = e.func, self.tmp()
        test = "if"
        if func == "any":
            self.emit(f"if any({vals}): {r} = True")
            test = "elif"
        elif func == "all":
            self.emit(f"if not all({vals}): {r} = False")
            test = "elif"
        self.emit(f"{test} {unk}: {r} = _mu({unk})")
        with self.block("else:"):
            if func == "percentile":
                q = self.ex(e.lead[0], scope)
                self.emit(f"if {q}.__class__ is _U: {r} = {q}")
                with self.block(f"elif not {vals}:"):
                    d = self.ex(e.default, scope) if e.default is not None else None
                    self.emit(f"{r} = {d or '_U(errors=[' + repr('percentile() of nothing') + '])'}")
                with self.block("else:"):
                    self.emit(f"try: {r} = _fin('percentile', ({q},), _pct({vals}, {q}))")
                    self.emit(f"except ValueError as exc: {r} = _U(errors=['percentile(): ' + str(exc)])")
                return r
            reducer = self.const(REDUCERS[func])
            d = "None"
            if e.default is not None:
                d = self.tmp()
                self.emit(f"if {vals}: {d} = None")
                with self.block("else:"):
                    self.emit(f"{d} = {self.ex(e.default, scope)}")
                self.emit(f"if {d}.__class__ is _U: {r} = {d}")
            with self.block("else:") if e.default is not None else nullcontext():
                self.emit(f"{r} = {reducer}({vals}, {d}, {func + '()'!r})")
                self.finite(r, func)
        return r

    def finite(self, r: str, func: str) -> None:
        """`r`, an aggregate's result, made its error value if it is a float that is not finite
        (`arith.finite_result`, called only then)."""
        self.emit(f"if {r}.__class__ is float and not {r} - {r} == 0: {r} = _fin({func!r}, ('...',), {r})")

    def memoised(self, e: A.Aggregate, scope: dict[str, str]) -> str:
        """An aggregate of the dataset only: computed once per evaluation state (``ev.memo``) by a
        function of its own, which records its inputs; each use replays them."""
        sub = Gen(self.names, self.constant, framed=True, ns=self.ns, stacked=True)
        fn = sub.function("ev", sub.ex(e, {"dataset": "ds"} if "dataset" in scope else {}), f"aggregate {e.loc}",
                          memo=True)
        key = memo_key(self.names)
        m, r = self.tmp(), self.tmp()
        self.emit(f"{m} = ev.memo.get({key})")
        with self.block(f"if {m} is None:", quiet=True):
            self.emit("c0 = ev.cycles")
            self.emit(f"{m} = {self.const(fn)}(ev)")
            self.emit(f"if ev.cycles == c0: ev.memo[{key}] = {m}")  # no value depending on itself met
        self.emit(f"{r} = {m}[0]")
        self.flush()
        self.emit("fr.extend(" + m + "[1])" if self.framed else f"if fr is not None: fr.extend({m}[1])")
        if not self.framed:
            self.used.add("fr")
        return r

    def loop_block(self, head: str) -> "_Block":
        self.loops += 1
        if self.loops > _MAX_LOOPS:
            raise TooDeep()
        b = self.block(head)
        b.loop = True
        return b

    # ------------------------------------------------------------ functions
    def prologue(self) -> list[str]:
        out = [f"{local} = env[{name!r}]" for name, local in self.env_vars.items()]
        if "ds" in self.used or "dc" in self.used:
            out.append("ds = ev.dataset")
        if "dc" in self.used:
            out.append("dc = ds.cache")
        if "ec" in self.used:
            out.append("ec = ent.cache")
        if "fr" in self.used and not self.framed:
            out.append("frames = ev.frames")
            out.append("fr = frames[-1] if frames else None")
        if "params" in self.used:
            out.append("pv = ev.param_values")
        return ["    " + line for line in out]

    def function(self, args: str, result: str, where: str, memo: bool = False) -> Callable:
        """Compile the emitted lines into ``f(args)`` returning `result` (with `memo`: the result
        and the inputs it read, in a frame of its own)."""
        self.flush()
        head = ["    fr = []", "    ev.frames.append(fr)"] if memo else []
        tail = ["    ev.frames.pop()", f"    return ({result}, fr)"] if memo else [f"    return {result}"]
        return compile_source(f"def f({args}):", head + self.prologue() + self.lines + tail, self.ns, where)


class _Block:
    """An indented block of the source (a context manager); `scope` for a loop's body."""

    def __init__(self, gen: Gen, quiet: bool = False) -> None:
        self.gen = gen
        self.quiet = quiet
        gen.quiet += quiet
        self.loop = False
        self.outer: Optional[_Block] = None
        self.scope: dict[str, str] = {}
        self.avail = dict(gen.avail)  # what the block reads is not available after it
        self.reused = dict(gen.reused)
        gen.level += 1

    def __enter__(self) -> "_Block":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.quiet:
            self.gen.quiet -= 1
        else:
            self.gen.flush()
        self.gen.level -= 1
        self.gen.avail = self.avail
        self.gen.reused = self.reused
        if self.loop:
            self.gen.loops -= 1
        if self.outer is not None:
            self.outer.__exit__(None, None, None)


def constant_name(ns: dict, value: Any) -> str:
    """The name of a new constant holding `value` in the rule set's namespace `ns`."""
    name = f"k{len(ns)}"
    ns[name] = value
    return name


def compile_source(head: str, body: list[str], ns: dict, where: str) -> Callable:
    source = "\n".join([head] + body) + "\n"
    code = _CODE.get((source, where))
    if code is None:
        try:
            code = compile(source, f"<{where}>", "exec")
        except (SyntaxError, RecursionError, MemoryError) as exc:  # nested beyond the compiler's limits
            raise TooDeep() from exc
        if len(_CODE) >= _CODE_LIMIT:
            _CODE.clear()
        _CODE[(source, where)] = code
    local: dict = {}
    exec(code, ns, local)
    return local["f"]


# ---------------------------------------------------------------- entry points
def expr_function(e: A.Expr, names: Names, local: frozenset[str], constant: Callable[[A.Expr], Any]
                  ) -> Callable[[Any, dict], Any]:
    """``fn(ev, env)`` evaluating `e`, `env` binding the names in `local`, its constant
    subexpressions' values given by `constant`; `TooDeep` when it cannot be compiled so."""
    g = Gen(names, constant, framed=False)
    try:
        result = g.ex(e, {name: f"e_{i}" for i, name in enumerate(sorted(local))})
        return g.function("ev, env", result, f"expression {e.loc}")
    except RecursionError as exc:
        raise TooDeep() from exc


def derive_function(kind: str, attr: str, rules: list[tuple[A.Derive, tuple]], names: Names,
                    constant: Callable[[A.Expr], Any]) -> Callable[[Any, Entity, str], Any]:
    """``fn(ev, ent, attr)`` computing ``KIND.ATTR`` of `ent` (not in its cache) by its rules
    (highest priority first; each (decl, coverage key)): an assumed value first, then the first
    rule whose ``when`` holds (or is unknown). Its provenance, the rule and the inputs read, is
    the frame it records (kept as it is in ``ent.prov``: `records.ProvMap`); ``ev.frames`` is
    not used (every read is recorded here, by the code itself). A value whose rules do not name
    the entity is the same for every entity of its kind: computed once per evaluation state
    (``ev.memo``)."""
    g = Gen(names, constant, framed=True)
    scope = {"dataset": "ent"} if kind == "dataset" else {"dataset": "ds", kind: "ent"}
    g.kinds["ent"] = (kind, True)
    key = names.shared.get((kind, attr))
    shared = key is not None
    try:
        _rule_chain(g, rules, scope, attr)
        head = [
            "    ov = ev.overlay",
            f"    if ov and (hit := ov.get(({kind!r}, ent.key, {attr!r}))) is not None:",
            f"        ent.prov[{attr!r}] = hit[1]",
            "        return hit[0]",
        ]
        if shared:  # the same for every entity of the kind: computed once per evaluation state
            head += [f"    if (m := ev.memo.get({key})) is not None:", f"        ent.prov[{attr!r}] = m[1]",
                     "        return m[0]", "    c0 = ev.cycles"]
        keyed = names.keyed.get((kind, attr))
        if keyed is not None:  # the same for the entities given the same values of some attributes
            ids = "".join(f"id(cr[{a!r}]), " for a in keyed[1])
            head += [f"    if {keyed[0]} in ev.unshared: mk = None", "    else:", "        cr = ent.created",
                     f"        mk = ({keyed[0]}, {ids})", "        if (m := ev.memo.get(mk)) is not None:",
                     f"            ent.prov[{attr!r}] = m[1]", "            return m[0]", "    c0 = ev.cycles"]
        first = g.const(rules[0][0]) if rules and rules[0][0].when is None else "None"
        head += ["    ec = ent.cache", f"    ec[{attr!r}] = _A", f"    fr = [{first}]"]  # (records.ProvMap)
        g.flush()
        g.used.discard("ec")
        tail = [f"    ent.prov[{attr!r}] = fr"]
        if shared:
            tail.append(f"    if ev.cycles == c0 and val.__class__ is not _U: ev.memo[{key}] = (val, fr)")
        if keyed is not None:
            tail.append("    if mk is not None and ev.cycles == c0 and val.__class__ is not _U: ev.memo[mk] = (val, (fr, ent))")
        tail.append("    return val")
        fn = compile_source("def f(ev, ent, name):", head + g.prologue() + g.lines + tail, g.ns, f"derive {kind}.{attr}")
    except RecursionError as exc:
        raise TooDeep() from exc
    fn.__qualname__ = f"derive {kind}.{attr}"
    return fn


def collection_function(kind: str, body: tuple, names: Names, constant: Callable[[A.Expr], Any],
                        cover: Callable[[A.Emit], tuple]) -> Callable[[Any, dict, list], None]:
    """``fn(ev, made, unknowns)`` running the collection rule of `kind`, its `body` of ``for`` loops
    and ``emit`` items (`runtime.emit_entity`: the entities by key into `made`; an unknown source,
    where or value into `unknowns`), as its closures do (`Evaluation._emit`); the inputs it reads
    recorded in the frame on top of ``ev.frames`` (the collection's). `cover`: an emit's coverage key."""
    g = Gen(names, constant, framed=False)
    try:
        _emit_body(g, kind, body, {}, cover)
        return g.function("ev, made, unknowns", "None", f"collection {kind}")
    except RecursionError as exc:
        raise TooDeep() from exc


def _emit_body(g: Gen, kind: str, body: tuple, scope: dict[str, str], cover: Callable[[A.Emit], tuple]) -> None:
    for item in body:
        if isinstance(item, A.Emit):
            values = "".join(f"{g.ex(x, scope)}, " for _, x in item.assigns)
            attrs = g.const(tuple(n for n, _ in item.assigns))
            g.emit(f"_em(ev, {kind!r}, made, unknowns, {g.const(cover(item))}, {attrs}, ({values}))")
            continue
        blocks = []  # each binder's loop inside the one before (as compile.binder_rows)
        inner = scope
        for b in item.binders:
            blocks.append(g.loop(b, inner, "unknowns", join=False))
            inner = blocks[-1].scope
        _emit_body(g, kind, item.body, inner, cover)
        for block in reversed(blocks):
            block.__exit__(None, None, None)


def memo_key(names: Names) -> int:
    """A new key of ``Evaluation.memo`` in this rule set (one per memoised aggregate or shared value)."""
    return next(names.memo_keys)


def _rule_chain(g: Gen, rules: list[tuple[A.Derive, tuple]], scope: dict[str, str], attr: str) -> None:
    """Set ``val`` (and the rule, ``fr[0]``) by the first rule that applies, else an error value."""
    opened: list[_Block] = []
    for decl, cov in rules:
        d, c = g.const(decl), g.const(cov)
        if decl.when is None:
            if opened:  # (the first rule's is the frame's from the start)
                g.emit(f"fr[0] = {d}")
            g.emit(f"val = {g.ex(decl.expr, scope)}")
            g.emit(f"ev.coverage.add({c})")
            break
        w = g.ex(decl.when, scope)
        g.emit(f"if {w}.__class__ is _U: val = {w}; fr[0] = {d}")
        with g.block(f"elif {w}:"):
            g.emit(f"fr[0] = {d}")
            g.emit(f"val = {g.ex(decl.expr, scope)}")
            g.emit(f"ev.coverage.add({c})")
        opened.append(g.block("else:"))
    else:
        g.emit(f"val = _U(errors=['no rule for ' + ent.path + {'.' + attr + ' applies'!r}])")
    for b in reversed(opened):
        b.__exit__(None, None, None)


__all__ = ["Gen", "PRELUDE", "TooDeep", "collection_function", "compile_source", "constant_name", "derive_function",
           "expr_function", "memo_key"]
