"""The canonical formatter of the almarules rule language.

``format_text(text)`` parses a rule file and prints it back in canonical
layout; ``format_module(module)`` does the same for a parsed
:class:`~almarules.dsl.ast.Module`; ``format_expr(expr)`` prints one
expression (used to show formulas in reports).

Guarantees (see ``tests/dsl/test_format.py``):

* meaning is preserved: ``parse_text(format_text(x)) == parse_text(x)``;
* the layout is idempotent: ``format_text(format_text(x)) == format_text(x)``;
* every comment of the input appears in the output, in the same order.

Layout
------
* 4-space indentation, ``\\n`` line ends, no trailing whitespace (comment texts
  are right-stripped), the file ends with exactly one newline.
* The module doc string comes first, followed by a blank line.  Top-level
  declarations are separated by one blank line, except that consecutive
  ``param`` lines and consecutive ``import`` lines stay grouped; a blank line
  that separated two such lines in the source is kept (as a single one).
* Doc strings: a one-line doc is printed ``\"\"\"text\"\"\"``.  A multi-line doc
  is printed as a triple-quoted block indented like its owner: when the
  continuation lines of the doc already carry the block's indentation (the
  parser keeps them when the text starts right after the opening quotes) it
  is printed verbatim after the opening quotes, ``\"\"\"first line`` ... ``last
  line\"\"\"``; otherwise the quotes go on their own lines around the text.
  Docs that a triple-quoted string cannot carry (leading or trailing spaces,
  a ``\"\"\"`` inside) fall back to an escaped ``"..."`` string.
* Clause order is fixed: param -- doc, ``in`` (accepted values: ``in (0, 1]``,
  ``in {"airy", "gaussian"}``); derive -- doc, ``unit``, ``digits``, ``when``, ``priority``;
  score -- doc, ``when``, ``start``, the terms (``- 0.1 "reason" when c``),
  ``clamp [lo, hi]``; cascade -- doc, ``until``, the steps; step -- header
  ``step "name" after "x" when cond:``, doc, the actions; keep -- ``where``,
  ``group by``, ``ranked by a, b``, ``while``, ``limit``; warn -- ``warn "message"
  when cond``, then its doc.  ``error "message" when cond`` and ``repeat "a", "b"``
  are one line each.
* A ``keep`` action stays on one line unless that line is longer than 100
  characters; then ``group by``/``ranked by``/``while``/``limit`` (and ``where``
  too if ``keep kind where ...`` alone is too long) go on continuation lines
  indented one level deeper.  Every other statement is one line whatever its length.
* Table rows are aligned: the intervals are padded so the ``->`` line up.
  Band labels are padded so the intervals line up (two spaces after the
  longest label).
* Stages print as ``name(args) when cond``; a stage without arguments prints
  as ``name``.  ``override`` prefixes are kept.  ``**`` is printed ``^``.

Expressions
-----------
Operators, lowest to highest precedence: ``if-then-else``, ``or``, ``and``,
``not``, comparisons (``== != < <= > >= in not in``, non-associative),
``+ -``, ``* /``, unary ``-``, ``^`` (right-associative; its left operand
is an atom, attribute or call, its right operand may be a unary minus),
attribute access.  Parentheses are printed only where the tree needs them,
plus around an ``if`` used as the condition or the ``then`` branch of another
``if`` and around an ``if`` that is a binder's ``where`` condition (for
readability), and around a number whose attribute is taken (``(1 GB).x``).
Binary operators are spaced (``a ^ 2``); unary minus is not (``-x``, or
``- -x``).  Numbers print in their shortest round-trip form without a
trailing ``.0`` (``4``, ``0.05``, ``1e-07`` -> ``1e-7``, ``inf``), followed by
their unit (``30 GB``, ``0.05 mJy/beam``).  Strings are double-quoted with
``\\"`` and ``\\\\`` escapes.  ``list(e for x in xs)`` (without leading
arguments or ``else``) prints as the list comprehension ``[e for x in xs]``.

Comments
--------
Comments are attached to source *logical lines* (statements; a statement
bracketed over several lines is one logical line).  A comment at the end of
a statement stays trailing on the output line of that statement; a comment
inside a statement that spans several source lines goes on its own line just
above that statement (when joined ``keep`` clauses bring several trailing
comments to one line, the last stays trailing and the others go above).  A
comment on a line of its own goes just above the output line of the next
statement, indented like it.  Comments after the last statement end the file
(after a blank line).  When the canonical clause order moves a statement
before an earlier comment, the comment moves down so that comments always
keep their source order; a comment that cannot be placed anywhere else ends
the file.  Comments are never dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from almarules.dsl import ast as A

__all__ = ["format_module", "format_text", "format_expr", "format_interval", "MAX_LINE"]

INDENT = "    "
MAX_LINE = 100

# ------------------------------------------------------------------ atoms


def _number(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    return f"{mantissa}e{int(exponent)}" if e else mantissa


def _string(value: str) -> str:
    """A string literal that the parser reads back as `value` (escapes for newlines)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped + '"'


def _written(value: float, text) -> str:
    """The shortest form, except that a whole number written with ``.0`` keeps it (``1.0``
    beside ``1.5`` in a table reads better than ``1``)."""
    shortest = _number(value)
    if text is not None and text.endswith(".0") and text.lstrip("-")[:-2].isdigit() and float(text) == value:
        return shortest + ".0"
    return shortest


def _bound(b: A.Bound) -> str:
    if math.isinf(b.value):
        return "inf" if b.value > 0 else "-inf"
    text = _written(b.value, b.text)
    if math.copysign(1.0, b.value) < 0 and not text.startswith("-"):
        text = "-" + text  # -0
    return f"{text} {b.unit}" if b.unit else text


def format_interval(iv: A.Interval) -> str:
    return f"{'[' if iv.lo_closed else '('}{_bound(iv.lo)}, {_bound(iv.hi)}{']' if iv.hi_closed else ')'}"


# ------------------------------------------------------------------ expressions

_P_IF, _P_OR, _P_AND, _P_NOT, _P_CMP, _P_SUM, _P_PROD, _P_UNARY, _P_POW, _P_POSTFIX, _P_ATOM = range(11)

_BINARY_PREC = {
    "or": _P_OR, "and": _P_AND,
    "==": _P_CMP, "!=": _P_CMP, "<": _P_CMP, "<=": _P_CMP, ">": _P_CMP, ">=": _P_CMP,
    "in": _P_CMP, "notin": _P_CMP,
    "+": _P_SUM, "-": _P_SUM, "*": _P_PROD, "/": _P_PROD, "^": _P_POW, "**": _P_POW,
}

# (left operand, right operand) minimum precedences
_OPERANDS = {
    _P_OR: (_P_OR, _P_AND),
    _P_AND: (_P_AND, _P_NOT),
    _P_CMP: (_P_SUM, _P_SUM),
    _P_SUM: (_P_SUM, _P_PROD),
    _P_PROD: (_P_PROD, _P_UNARY),
    _P_POW: (_P_POSTFIX, _P_UNARY),
}


def format_allowed(a: A.Allowed) -> str:
    """``(0, 1]`` or ``{"airy", "gaussian"}``: a parameter's ``in`` clause without the keyword."""
    if a.interval is not None:
        return format_interval(a.interval)
    return "{" + ", ".join(_string(v) for v in a.values) + "}"


def _prec(e: A.Expr) -> int:
    if isinstance(e, A.IfElse):
        return _P_IF
    if isinstance(e, A.Binary):
        return _BINARY_PREC[e.op]
    if isinstance(e, A.Unary):
        return _P_NOT if e.op == "not" else _P_UNARY
    if isinstance(e, A.Attr):
        return _P_POSTFIX
    if isinstance(e, A.Num) and math.copysign(1.0, e.value) < 0:
        return _P_UNARY  # printed with a leading minus (never produced by the parser)
    return _P_ATOM


def _expr(e: A.Expr, min_prec: int = _P_IF) -> str:
    text = _expr_text(e)
    return f"({text})" if _prec(e) < min_prec else text


def _binder(b: A.Binder) -> str:
    text = f"{b.var} in {_expr(b.source, _P_SUM)}"
    if b.where is not None:
        text += f" where {_expr(b.where, _P_OR)}"
    return text


def _args(items: Sequence[A.Expr]) -> str:
    return ", ".join(_expr(i) for i in items)


def _expr_text(e: A.Expr) -> str:
    if isinstance(e, A.Num):
        if math.isinf(e.value) and e.value > 0:
            return "inf"
        text = _written(e.value, e.text)
        if math.copysign(1.0, e.value) < 0 and not text.startswith("-"):
            text = "-" + text
        return f"{text} {e.unit}" if e.unit else text
    if isinstance(e, A.Str):
        return _string(e.value)
    if isinstance(e, A.Bool):
        return "true" if e.value else "false"
    if isinstance(e, A.Name):
        return e.id
    if isinstance(e, A.Attr):
        obj = f"({_expr_text(e.obj)})" if isinstance(e.obj, A.Num) else _expr(e.obj, _P_POSTFIX)
        return f"{obj}.{e.name}"
    if isinstance(e, A.Unary):
        if e.op == "not":
            return f"not {_expr(e.operand, _P_NOT)}"
        operand = _expr(e.operand, _P_UNARY)
        return f"- {operand}" if operand.startswith("-") else f"-{operand}"
    if isinstance(e, A.Binary):
        prec = _BINARY_PREC[e.op]
        lmin, rmin = _OPERANDS[prec]
        op = {"notin": "not in", "**": "^"}.get(e.op, e.op)
        return f"{_expr(e.left, lmin)} {op} {_expr(e.right, rmin)}"
    if isinstance(e, A.IfElse):
        return f"if {_expr(e.cond, _P_OR)} then {_expr(e.then, _P_OR)} else {_expr(e.else_)}"
    if isinstance(e, A.Call):
        return f"{e.func}({_args(e.args)})"
    if isinstance(e, A.Aggregate):
        if e.func == "list" and not e.lead and e.default is None:  # a list comprehension
            return f"[{_expr(e.element)} for {', '.join(_binder(b) for b in e.binders)}]"
        text = f"{e.func}({_args(tuple(e.lead) + (e.element,))} for {', '.join(_binder(b) for b in e.binders)}"
        if e.default is not None:
            text += f" else {_expr(e.default)}"
        return text + ")"
    if isinstance(e, A.SetLit):
        return "{" + _args(e.items) + "}"
    if isinstance(e, A.ListLit):
        return "[" + _args(e.items) + "]"
    raise TypeError(f"not an expression: {e!r}")


def format_expr(expr: A.Expr) -> str:
    """Canonical, minimally parenthesised text of one expression."""
    return _expr(expr)


# ------------------------------------------------------------------ source logical lines


@dataclass
class _LL:
    """A logical line (statement) of the source: lines start..end, its first word."""

    start: int
    end: int
    first: str


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONT = re.compile(r"\\[\t \f]*\r?\n")


def _logical_lines(source: str) -> list[_LL]:
    """Split source into statements the way the indenter does (brackets and
    backslash continuations join lines; strings and comments are skipped)."""
    out: list[_LL] = []
    i, n, line, depth = 0, len(source), 1, 0
    start: Optional[tuple[int, str]] = None
    while i < n:
        ch = source[i]
        if ch == "\n":
            if start is not None and depth == 0:
                out.append(_LL(start[0], line, start[1]))
                start = None
            line += 1
            i += 1
            continue
        if ch in " \t\f\r":
            i += 1
            continue
        if ch == "#":
            j = source.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == "\\":
            m = _CONT.match(source, i)
            if m:
                line += 1
                i = m.end()
                continue
        if start is None:
            m = _WORD.match(source, i)
            start = (line, m.group(0) if m else ch)
        if source.startswith('"""', i):
            j = source.find('"""', i + 3)
            end = n if j < 0 else j + 3
            line += source.count("\n", i, end)
            i = end
            continue
        if ch == '"':
            j = i + 1
            while j < n and source[j] not in '"\n':
                j += 2 if source[j] == "\\" and j + 1 < n and source[j + 1] != "\n" else 1
            i = j + 1 if j < n and source[j] == '"' else j
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        i += 1
    if start is not None:
        out.append(_LL(start[0], line, start[1]))
    return out


# ------------------------------------------------------------------ the layout


@dataclass
class _Group:
    """One output statement: its physical lines and the source statements it comes from."""

    lines: list[str]
    indent: str
    keys: list[int]
    blank_before: bool = False


@dataclass
class _Slots:
    before: list[list[str]] = field(default_factory=list)
    trailing: list[Optional[str]] = field(default_factory=list)
    end: list[str] = field(default_factory=list)


def _doc_lines(doc: str, indent: str) -> list[str]:
    """A doc string as Python writes one: continuation lines at the block's indentation (the
    parser strips the first line and dedents the others by their common indentation)."""
    if "\n" not in doc:
        if (doc and doc == doc.strip() and '"""' not in doc and not doc.endswith('"')
                and doc.splitlines() == [doc]):
            return [f'{indent}"""{doc}"""']
        return [indent + _string(doc)]
    lines = doc.split("\n")
    rest = lines[1:]
    body = [l for l in rest if l.strip()]
    representable = (
        '"""' not in doc and doc.splitlines() == lines and doc == doc.strip()
        and all(l == l.rstrip() for l in lines) and "\t" not in doc)
    if not representable:
        return [indent + _string(doc)]  # the escaped form always reads back exactly
    if (not body or min(len(l) - len(l.lstrip()) for l in body) == 0) and not doc.endswith('"'):
        return [f'{indent}"""{lines[0]}'] + [indent + l if l.strip() else "" for l in rest[:-1]] + [
            indent + rest[-1] + '"""']
    # continuation lines all indented relative to the first: the block form keeps that
    return [f'{indent}"""'] + [indent + l if l.strip() else "" for l in lines] + [f'{indent}"""']


class _Formatter:
    def __init__(self, module: A.Module):
        self.module = module
        self.lls = _logical_lines(module.source) if module.source else []
        self.by_line: dict[int, int] = {}
        for k, ll in enumerate(self.lls):
            for line in range(ll.start, ll.end + 1):
                self.by_line.setdefault(line, k)
        self.groups: list[_Group] = []

    # ---- source mapping
    def _ll(self, node) -> Optional[int]:
        loc = getattr(node, "loc", None)
        if loc is None or not loc.line:
            return None
        return self.by_line.get(loc.line)

    def _next_doc(self, header: Optional[int]) -> Optional[int]:
        if header is None or header + 1 >= len(self.lls):
            return None
        return header + 1 if self.lls[header + 1].first.startswith('"') else None

    def _find(self, region: range, pred) -> Optional[int]:
        for k in region:
            if pred(self.lls[k]):
                return k
        return None

    @staticmethod
    def _keys(*ks: Optional[int]) -> list[int]:
        return [k for k in ks if k is not None]

    def _add(self, lines: list[str], indent: str, *keys: Optional[int]) -> _Group:
        g = _Group(lines, indent, self._keys(*keys))
        self.groups.append(g)
        return g

    def _line(self, text: str, indent: str, *keys: Optional[int]) -> _Group:
        return self._add([indent + text], indent, *keys)

    def _doc(self, doc: Optional[str], indent: str, key: Optional[int]) -> None:
        if doc is not None:
            self._add(_doc_lines(doc, indent), indent, key)

    # ---- declarations
    def _decl(self, d: A.Decl, region: range) -> None:
        h = self._ll(d)
        ov = "override " if getattr(d, "override", False) else ""
        inner = INDENT
        if isinstance(d, A.Import):
            self._line(f"import {_string(d.path)}", "", h)
        elif isinstance(d, A.EnumDecl):
            self._line(f"{ov}enum {d.name} = {{{', '.join(d.members)}}}", "", h)
        elif isinstance(d, A.Param):
            self._line(f"{ov}param {d.name} = {_expr(d.value)}", "", h)
            body = range(h + 1, region.stop) if h is not None else range(0)
            self._doc(d.doc, inner, self._find(body, lambda ll: ll.first.startswith('"')))
            if d.allowed is not None:
                self._line(f"in {format_allowed(d.allowed)}", inner, self._ll(d.allowed))
        elif isinstance(d, A.Derive):
            self._line(f"{ov}derive {d.kind}.{d.attr} = {_expr(d.expr)}", "", h)
            body = range(h + 1, region.stop) if h is not None else range(0)
            self._doc(d.doc, inner, self._find(body, lambda ll: ll.first.startswith('"')))
            if d.unit is not None:
                self._line(f"unit {d.unit}", inner, self._find(body, lambda ll: ll.first == "unit"))
            if d.digits is not None:
                self._line(f"digits {int(d.digits)}", inner, self._find(body, lambda ll: ll.first == "digits"))
            if d.when is not None:
                key = self._ll(d.when)
                if key is None:
                    key = self._find(body, lambda ll: ll.first == "when")
                self._line(f"when {_expr(d.when)}", inner, key)
            if d.priority is not None:
                self._line(f"priority {int(d.priority)}", inner,
                           self._find(body, lambda ll: ll.first == "priority"))
        elif isinstance(d, A.Table):
            self._line(f"{ov}table {d.name}({d.arg}) over {format_interval(d.domain)}:", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
            ivs = [format_interval(r.interval) for r in d.rows]
            width = max((len(t) for t in ivs), default=0)
            for r, iv in zip(d.rows, ivs):
                self._line(f"{iv.ljust(width)} -> {_expr(r.expr)}", inner, self._ll(r))
        elif isinstance(d, A.Bands):
            self._line(f"{ov}bands {d.name}({d.arg}) over {format_interval(d.domain)}:", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
            width = max((len(r.label) for r in d.rows), default=0)
            for r in d.rows:
                self._line(f"{r.label.ljust(width)}  {format_interval(r.interval)}", inner, self._ll(r))
        elif isinstance(d, A.Score):
            self._line(f"{ov}score {d.kind}.{d.attr}:", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
            if d.when is not None:
                self._line(f"when {_expr(d.when)}", inner, self._ll(d.when))
            if d.start is not None:
                self._line(f"start {_expr(d.start)}", inner, self._ll(d.start))
            for t in d.terms:
                self._line(f"{t.sign} {_expr(t.amount)} {_string(t.reason)} when {_expr(t.when)}",
                           inner, self._ll(t))
            if d.clamp is not None:
                lo, hi = d.clamp
                self._line(f"clamp [{_expr(lo)}, {_expr(hi)}]", inner, self._ll(lo))
        elif isinstance(d, A.Collection):
            self._line(f"{ov}collection {d.kind}:", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
            for item in d.body:
                self._emit_item(item, inner)
        elif isinstance(d, A.Cascade):
            self._line(f"{ov}cascade {d.name}:", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
            if d.until is not None:
                self._line(f"until {_expr(d.until)}", inner, self._ll(d.until))
            for s in d.steps:
                self._step(s, inner)
        elif isinstance(d, A.Warn):
            self._line(f"{ov}warn {_string(d.message)} when {_expr(d.when)}", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
        elif isinstance(d, A.Recipe):
            self._line(f"{ov}recipe {d.name}:", "", h)
            self._doc(d.doc, inner, self._next_doc(h))
            for s in d.stages:
                text = s.name + (f"({_args(s.args)})" if s.args else "")
                if s.when is not None:
                    text += f" when {_expr(s.when)}"
                self._line(text, inner, self._ll(s))
        else:
            raise TypeError(f"not a declaration: {d!r}")

    def _emit_item(self, item, indent: str) -> None:
        if isinstance(item, A.EmitFor):
            self._line(f"for {', '.join(_binder(b) for b in item.binders)}:", indent, self._ll(item))
            for sub in item.body:
                self._emit_item(sub, indent + INDENT)
        elif isinstance(item, A.Emit):
            assigns = ", ".join(f"{k} = {_expr(v)}" for k, v in item.assigns)
            self._line(f"emit {assigns}", indent, self._ll(item))
        else:
            raise TypeError(f"not a collection item: {item!r}")

    def _step(self, s: A.Step, indent: str) -> None:
        h = self._ll(s)
        pos = f" {s.position[0]} {_string(s.position[1])}" if s.position else ""
        when = f" when {_expr(s.when)}" if s.when is not None else ""
        self._line(f"step {_string(s.name)}{pos}{when}:", indent, h)
        inner = indent + INDENT
        self._doc(s.doc, inner, self._next_doc(h))
        for a in s.actions:
            self._action(a, inner)

    def _action(self, a: A.Action, indent: str) -> None:
        key = self._ll(a)
        if isinstance(a, A.SetAction):
            target = f"{a.kind}.{a.name}" if a.kind else a.name
            text = f"set {target} = {_expr(a.value)}"
            if a.where is not None:
                text += f" where {_expr(a.where)}"
            self._line(text, indent, key)
        elif isinstance(a, A.DropAction):
            self._line(f"drop {a.kind} where {_expr(a.where)}", indent, key)
        elif isinstance(a, A.ErrorAction):
            when = f" when {_expr(a.when)}" if a.when is not None else ""
            self._line(f"error {_string(a.message)}{when}", indent, key)
        elif isinstance(a, A.RepeatAction):
            self._line(f"repeat {', '.join(_string(n) for n in a.steps)}", indent, key)
        elif isinstance(a, A.KeepAction):
            clauses = [(kw, e) for kw, e in (("where", a.where), ("group by", a.group),
                                              ("ranked by", a.rank_keys or None), ("while", a.while_),
                                              ("limit", a.limit)) if e is not None]
            texts = [f"{kw} {_args(e) if isinstance(e, tuple) else _expr(e)}" for kw, e in clauses]
            ckeys = [self._ll(e[0] if isinstance(e, tuple) else e) for _, e in clauses]
            head = f"keep {a.kind}"
            one = indent + " ".join([head] + texts)
            if len(one) <= MAX_LINE or not clauses:
                self._add([one], indent, key, *ckeys)
                return
            first = 0
            if clauses[0][0] == "where" and len(f"{indent}{head} {texts[0]}") <= MAX_LINE:
                head += " " + texts[0]
                first = 1
            self._line(head, indent, key, *ckeys[:first])
            for text, k in zip(texts[first:], ckeys[first:]):
                self._line(text, indent + INDENT, k)
        else:
            raise TypeError(f"not an action: {a!r}")

    # ---- the module
    def _blank_between(self, prev: A.Decl, cur: A.Decl, prev_region: range) -> bool:
        """Was there a blank source line between two grouped declarations?"""
        if not self.module.source or not prev_region or not cur.loc.line:
            return False
        end = self.lls[prev_region[-1]].end
        lines = self.module.source.split("\n")
        return any(not lines[n - 1].strip() for n in range(end + 1, cur.loc.line) if 0 < n <= len(lines))

    def build(self) -> None:
        m = self.module
        if m.doc is not None:
            key = 0 if self.lls and self.lls[0].first.startswith('"') else None
            self._doc(m.doc, "", key)
        starts = [self._ll(d) for d in m.decls]
        regions: list[range] = []
        for i, d in enumerate(m.decls):
            s = starts[i]
            if s is None:
                regions.append(range(0))
                continue
            nxt = next((t for t in starts[i + 1:] if t is not None and t > s), len(self.lls))
            regions.append(range(s, nxt))
        prev: Optional[A.Decl] = None
        for i, d in enumerate(m.decls):
            first = len(self.groups)
            self._decl(d, regions[i])
            if first < len(self.groups):
                if prev is None:
                    blank = m.doc is not None
                elif type(prev) is type(d) and isinstance(d, (A.Param, A.Import)):
                    blank = self._blank_between(prev, d, regions[i - 1])
                else:
                    blank = True
                self.groups[first].blank_before = blank
            prev = d

    # ---- comments
    def place_comments(self) -> _Slots:
        n = len(self.groups)
        slots = _Slots([[] for _ in range(n)], [None] * n, [])
        comments = sorted(self.module.comments, key=lambda c: (c.line, c.column))
        if not comments:
            return slots
        first_group: dict[int, int] = {}
        last_group: dict[int, int] = {}
        for gi, g in enumerate(self.groups):
            for k in g.keys:
                first_group.setdefault(k, gi)
                last_group[k] = gi

        def next_mapped(ll_index: int) -> Optional[int]:
            for k in range(ll_index, len(self.lls)):
                if k in first_group:
                    return first_group[k]
            return None

        prev_pos = -1  # before group g = 2g, trailing on group g = 2g + 1, end = 2n
        for c in comments:
            text = c.text.rstrip()
            ll = self.by_line.get(c.line)
            if ll is not None and ll in last_group:
                if c.line == self.lls[ll].end:  # ends its statement: stays trailing
                    pos = 2 * last_group[ll] + 1
                else:  # inside a bracketed multi-line statement: above it
                    pos = 2 * first_group[ll]
            else:
                if ll is not None:
                    start = ll + 1
                else:
                    start = next((k for k, x in enumerate(self.lls) if x.start > c.line), len(self.lls))
                g = next_mapped(start)
                pos = 2 * n if g is None else 2 * g
            if pos == prev_pos - 1 and prev_pos % 2:
                # above the statement whose trailing comment came first: both go above it
                g = pos // 2
                slots.before[g].append(slots.trailing[g])
                slots.trailing[g] = None
            elif pos < prev_pos:  # keep the source order: move down
                pos = prev_pos if prev_pos % 2 == 0 else prev_pos + 1
            if pos >= 2 * n:
                slots.end.append(text)
                pos = 2 * n
            elif pos % 2:
                g = pos // 2
                if slots.trailing[g] is not None:
                    slots.before[g].append(slots.trailing[g])
                slots.trailing[g] = text
            else:
                slots.before[pos // 2].append(text)
            prev_pos = pos
        return slots

    def render(self) -> str:
        self.build()
        slots = self.place_comments()
        out: list[str] = []
        for gi, g in enumerate(self.groups):
            if g.blank_before and out:
                out.append("")
            out.extend(g.indent + c for c in slots.before[gi])
            lines = list(g.lines)
            if slots.trailing[gi] is not None:
                lines[-1] += "  " + slots.trailing[gi]
            out.extend(lines)
        if slots.end:
            if out:
                out.append("")
            out.extend(slots.end)
        return "\n".join(out) + "\n" if out else ""


def format_module(module: A.Module) -> str:
    """Canonical text of a parsed rule file, comments preserved."""
    return _Formatter(module).render()


def format_text(text: str, path: str = "<string>") -> str:
    """Parse rule-file text and print it in canonical layout."""
    from almarules.dsl.parser import parse_text

    return format_module(parse_text(text, path))
