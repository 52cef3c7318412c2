"""Parse rule-file text into the AST (lark LALR + an indentation post-lexer).

Limits (`dsl.limits`), each a located error:

* nesting: an expression's *nesting* is the longest chain of expression nodes from it to a
  leaf, each operator (``+``, ``and``, comparisons, ...), unary ``-``, ``not``, ``if``, call,
  aggregate, attribute and list/set literal adding one level (parentheses add none). The
  grammar is left-recursive, so ``1 + 1 + ... + 1`` of n terms nests n - 1 deep. Past
  MAX_NESTING levels the file is refused before any AST is built (measured iteratively on the
  parse tree), so no pass after the parser meets a deeper AST;
* the parser's stack: at most MAX_PARSER_STACK (100 x MAX_NESTING) states at once, so a file of
  a million redundant ``(`` is refused, located, in under a second instead of costing lark 20 s
  and 350 MB;
* number literals: at most MAX_LITERAL_DIGITS digits; a literal that overflows a float or
  whose nonzero value underflows to zero or a subnormal is refused (never silently inf or 0).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from importlib import resources
from typing import Any, Optional

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter

from almarules.dsl import ast as A
from almarules.dsl.limits import MAX_LITERAL_DIGITS, MAX_NESTING
from almarules.dsl.errors import Finding, RuleError


class _RulesIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB", "LBRACE"]
    CLOSE_PAREN_types = ["RPAR", "RSQB", "RBRACE"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8
    last_nl: Any = None  # the newline token being handled (it ends where the next line's text starts)

    def process(self, stream):
        self.last_nl = None
        return super().process(stream)

    def handle_NL(self, token: Token):
        self.last_nl = token
        return super().handle_NL(token)


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files("almarules.dsl").joinpath("rules.lark").read_text()
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        postlex=_RulesIndenter(),
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,  # grammar analysis cached in the temp dir, keyed by grammar, options and lark version
    )


# Human names for terminals in "expected ..." messages.
_TERMINAL_NAMES = {
    "_NL": "end of line", "_INDENT": "an indented block", "_DEDENT": "end of block",
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "UNIT": "a unit",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*' or '/'", "POW_OP": "'^'",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'",
    "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "DOT": "'.'",
    "MINUS": "'-'", "PLUS": "'+'", "$END": "end of file",
    "OVERRIDE": "'override'",
}


def _describe(term: str) -> str:
    if term in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[term]
    pattern = _lark().get_terminal(term).pattern if term in {t.name for t in _lark().terminals} else None
    if pattern is not None and pattern.type == "str":
        return f"'{pattern.value}'"
    return term.lower()


def _expected(exc: UnexpectedInput) -> str:
    terms = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or []
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        try:
            terms = interactive.accepts()
        except Exception:  # noqa: BLE001 - fall back to lark's own list
            pass
    names = sorted({_describe(t) for t in terms if t not in ("_INDENT", "_DEDENT") or len(terms) == 1})
    if not names:
        return ""
    if len(names) > 12:
        names = names[:12] + ["..."]
    return "expected " + ", ".join(names)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def _unquote(token: str) -> str:
    """The text of a string literal. Triple-quoted: dedented like a Python doc string (the
    first line is stripped; the others lose their common indentation). Plain: backslash
    escapes \\n \\t \\\\ \\" (any other escaped character stands for itself)."""
    if token.startswith('"""'):
        lines = token[3:-3].expandtabs(8).splitlines() or [""]
        rest = lines[1:]
        indent = min((len(l) - len(l.lstrip()) for l in rest if l.strip()), default=0)
        out = [lines[0].strip()] + [l[indent:].rstrip() if l.strip() else "" for l in rest]
        return "\n".join(out).strip()
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.problems: list[Finding] = []

    def _loc(self, meta) -> A.Loc:
        if getattr(meta, "empty", True):
            return A.Loc(self.path, 0, 0)
        return A.Loc(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    # ---------------------------------------------------------- expressions
    def _literal(self, meta, text: str) -> float:
        """The value of a NUMBER token; a located problem (and 0) when out of range."""
        problem = literal_problem(text)
        if problem:
            self.problems.append(Finding(self._loc(meta), "number-range", problem))
            return 0.0
        return float(text)

    def number(self, meta, ch):
        unit = str(ch[1]) if len(ch) > 1 else None
        return A.Num(self._literal(meta, str(ch[0])), unit, self._loc(meta), text=str(ch[0]))

    def string(self, meta, ch):
        return A.Str(_unquote(str(ch[0])), self._loc(meta))

    def true(self, meta, ch):
        return A.Bool(True, self._loc(meta))

    def false(self, meta, ch):
        return A.Bool(False, self._loc(meta))

    def inf(self, meta, ch):
        return A.Num(float("inf"), None, self._loc(meta))

    def name(self, meta, ch):
        return A.Name(str(ch[0]), self._loc(meta))

    def attr(self, meta, ch):
        return A.Attr(ch[0], str(ch[1]), self._loc(meta))

    def neg(self, meta, ch):
        return A.Unary("-", ch[0], self._loc(meta))

    def not_(self, meta, ch):
        return A.Unary("not", ch[0], self._loc(meta))

    def arith(self, meta, ch):
        op = "^" if str(ch[1]) in ("^", "**") else str(ch[1])
        return A.Binary(op, ch[0], ch[2], self._loc(meta))

    def compare(self, meta, ch):
        return A.Binary(str(ch[1]), ch[0], ch[2], self._loc(meta))

    def in_(self, meta, ch):
        return A.Binary("in", ch[0], ch[1], self._loc(meta))

    def not_in(self, meta, ch):
        return A.Binary("notin", ch[0], ch[1], self._loc(meta))

    def and_(self, meta, ch):
        return A.Binary("and", ch[0], ch[1], self._loc(meta))

    def or_(self, meta, ch):
        return A.Binary("or", ch[0], ch[1], self._loc(meta))

    def if_expr(self, meta, ch):
        return A.IfElse(ch[0], ch[1], ch[2], self._loc(meta))

    def call(self, meta, ch):
        return A.Call(str(ch[0]), tuple(ch[1:]), self._loc(meta))

    def aggregate(self, meta, ch):
        func = str(ch[0])
        i = next(k for k, c in enumerate(ch) if isinstance(c, tuple))  # the binders
        exprs = ch[1:i]
        default = ch[i + 1] if len(ch) > i + 1 else None
        return A.Aggregate(func, tuple(exprs[:-1]), exprs[-1], ch[i], default, self._loc(meta))

    def list_comp(self, meta, ch):
        return A.Aggregate("list", (), ch[0], ch[1], None, self._loc(meta))

    def set_lit(self, meta, ch):
        return A.SetLit(tuple(c for c in ch if c is not None), self._loc(meta))

    def list_lit(self, meta, ch):
        return A.ListLit(tuple(c for c in ch if c is not None), self._loc(meta))

    def binders(self, meta, ch):
        return tuple(ch)

    def binder(self, meta, ch):
        return A.Binder(str(ch[0]), ch[1], ch[2] if len(ch) > 2 else None, self._loc(meta))

    def signed_int(self, meta, ch):
        text = str(ch[0])
        if sum(c.isdigit() for c in text) > MAX_LITERAL_DIGITS:
            self.problems.append(Finding(self._loc(meta), "number-range",
                                         f"an integer of {len(text.lstrip('+-'))} digits: at most "
                                         f"{MAX_LITERAL_DIGITS} digits (the limit)"))
            return 0
        return int(text)

    # ---------------------------------------------------------- declarations
    @staticmethod
    def _split_override(ch):
        if ch and isinstance(ch[0], Token) and ch[0].type == "OVERRIDE":
            return True, list(ch[1:])
        return False, list(ch)

    def doc(self, meta, ch):
        return ("doc", _unquote(str(ch[0])))

    def doc_item(self, meta, ch):
        return ("moduledoc", _unquote(str(ch[0])), self._loc(meta))

    def import_stmt(self, meta, ch):
        return A.Import(_unquote(str(ch[0])), self._loc(meta))

    def enum_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        return A.EnumDecl(str(ch[0]), tuple(str(c) for c in ch[1:]), ov, self._loc(meta))

    def allowed_range(self, meta, ch):
        return ("in", A.Allowed(interval=ch[0], loc=self._loc(meta)))

    def allowed_values(self, meta, ch):
        return ("in", A.Allowed(values=tuple(_unquote(str(c)) for c in ch), loc=self._loc(meta)))

    def param_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        clauses = self._once(meta, ch[2:], f"param {ch[0]}")
        return A.Param(str(ch[0]), ch[1], clauses.get("doc"), ov, self._loc(meta), clauses.get("in"))

    def when_clause(self, meta, ch):
        return ("when", ch[0])

    def priority_clause(self, meta, ch):
        return ("priority", ch[0])

    def unit_clause(self, meta, ch):
        return ("unit", str(ch[0]))

    def digits_clause(self, meta, ch):
        return ("digits", ch[0])

    def _once(self, meta, items, what: str) -> dict:
        """Clauses as a dict; a clause given twice is a syntax finding."""
        out: dict = {}
        for item in items:
            if item[0] in out:
                self.problems.append(Finding(self._loc(meta), "syntax", f"{what} gives '{item[0]}' twice"))
            out[item[0]] = item[1]
        return out

    def derive_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        clauses = self._once(meta, ch[3:], f"derive {ch[0]}.{ch[1]}")
        return A.Derive(
            str(ch[0]), str(ch[1]), ch[2], clauses.get("when"), clauses.get("priority"),
            clauses.get("unit"), clauses.get("doc"), ov, self._loc(meta), clauses.get("digits"))

    def bound(self, meta, ch):
        texts = [str(c) for c in ch]
        sign = -1.0 if texts[0] == "-" else 1.0
        if sign < 0:
            texts = texts[1:]
        if texts[0] == "inf":
            return A.Bound(sign * float("inf"), None, self._loc(meta))
        unit = texts[1] if len(texts) > 1 else None
        digits = ("-" if sign < 0 else "") + texts[0]
        return A.Bound(sign * self._literal(meta, texts[0]), unit, self._loc(meta), text=digits)

    def interval(self, meta, ch):
        return A.Interval(ch[1], ch[3], str(ch[0]) == "[", str(ch[4]) == "]", self._loc(meta))

    def table_row(self, meta, ch):
        return A.TableRow(ch[0], ch[1], self._loc(meta))

    def band_row(self, meta, ch):
        return A.BandRow(str(ch[0]), ch[1], self._loc(meta))

    @staticmethod
    def _doc_and_rest(items):
        doc = None
        rest = []
        for item in items:
            if isinstance(item, tuple) and item and item[0] == "doc":
                doc = item[1]
            else:
                rest.append(item)
        return doc, rest

    def table_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc, rows = self._doc_and_rest(ch[3:])
        return A.Table(str(ch[0]), str(ch[1]), ch[2], tuple(rows), doc, ov, self._loc(meta))

    def bands_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc, rows = self._doc_and_rest(ch[3:])
        return A.Bands(str(ch[0]), str(ch[1]), ch[2], tuple(rows), doc, ov, self._loc(meta))

    def score_start(self, meta, ch):
        return ("start", ch[0])

    def score_when(self, meta, ch):
        return ("when", ch[0])

    def score_clamp(self, meta, ch):
        return ("clamp", (ch[0], ch[1]))

    def score_term(self, meta, ch):
        parts = [c for c in ch if not (isinstance(c, Token) and c.type in ("_NL",)) and not (isinstance(c, Token) and str(c) == "when")]
        sign, amount, reason, cond = parts
        return A.ScoreTerm(str(sign), amount, _unquote(str(reason)), cond, self._loc(meta))

    def score_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc, items = self._doc_and_rest(ch[2:])
        opts = self._once(meta, [i for i in items if isinstance(i, tuple)], f"score {ch[0]}.{ch[1]}")
        terms = tuple(i for i in items if isinstance(i, A.ScoreTerm))
        return A.Score(str(ch[0]), str(ch[1]), opts.get("start"), terms, opts.get("clamp"),
                       opts.get("when"), doc, ov, self._loc(meta))

    def assign(self, meta, ch):
        return (str(ch[0]), ch[1])

    def emit(self, meta, ch):
        return A.Emit(tuple(ch), self._loc(meta))

    def emit_for(self, meta, ch):
        return A.EmitFor(ch[0], tuple(ch[1:]), self._loc(meta))

    def collection_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc, body = self._doc_and_rest(ch[1:])
        return A.Collection(str(ch[0]), tuple(body), doc, ov, self._loc(meta))

    def until(self, meta, ch):
        return ("until", ch[0])

    def position(self, meta, ch):
        return ("position", (str(ch[0]), _unquote(str(ch[1]))))

    def set_action(self, meta, ch):
        names = [c for c in ch if isinstance(c, Token) and c.type == "NAME"]
        exprs = [c for c in ch if not (isinstance(c, Token) and c.type == "NAME")]
        kind, name = (str(names[0]), str(names[1])) if len(names) == 2 else (None, str(names[0]))
        return A.SetAction(kind, name, exprs[0], exprs[1] if len(exprs) > 1 else None, self._loc(meta))

    def keep_where(self, meta, ch):
        return ("where", ch[0])

    def keep_group(self, meta, ch):
        return ("group", ch[0])

    def keep_rank(self, meta, ch):
        return ("rank", tuple(ch))

    def keep_while(self, meta, ch):
        return ("while_", ch[0])

    def keep_limit(self, meta, ch):
        return ("limit", ch[0])

    def keep_action(self, meta, ch):
        opts = self._once(meta, ch[1:], "keep")
        ranks = opts.get("rank", ())
        return A.KeepAction(str(ch[0]), where=opts.get("where"), group=opts.get("group"),
                            rank=ranks[0] if ranks else None, while_=opts.get("while_"), loc=self._loc(meta),
                            limit=opts.get("limit"), then_by=tuple(ranks[1:]))

    def drop_action(self, meta, ch):
        return A.DropAction(str(ch[0]), ch[1], self._loc(meta))

    def error_action(self, meta, ch):
        return A.ErrorAction(_unquote(str(ch[0])), ch[1] if len(ch) > 1 else None, self._loc(meta))

    def repeat_action(self, meta, ch):
        return A.RepeatAction(tuple(_unquote(str(c)) for c in ch), self._loc(meta))

    def step_when(self, meta, ch):
        return ("when", ch[0])

    def step(self, meta, ch):
        name = _unquote(str(ch[0]))
        doc, rest = self._doc_and_rest(ch[1:])
        position = when = None
        actions = []
        for item in rest:
            if isinstance(item, tuple) and item[0] == "position":
                position = item[1]
            elif isinstance(item, tuple) and item[0] == "when":
                when = item[1]
            else:
                actions.append(item)
        return A.Step(name, tuple(actions), position, doc, self._loc(meta), when)

    def cascade_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc, rest = self._doc_and_rest(ch[1:])
        until = next((r[1] for r in rest if isinstance(r, tuple) and r[0] == "until"), None)
        steps = tuple(r for r in rest if isinstance(r, A.Step))
        return A.Cascade(str(ch[0]), until, steps, doc, ov, self._loc(meta))

    def warn_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc = ch[2][1] if len(ch) > 2 else None
        return A.Warn(_unquote(str(ch[0])), ch[1], doc, ov, self._loc(meta))

    def stage_args(self, meta, ch):
        return ("args", tuple(c for c in ch if c is not None))

    def stage_when(self, meta, ch):
        return ("when", ch[0])

    def stage(self, meta, ch):
        opts = dict(ch[1:])
        return A.Stage(str(ch[0]), opts.get("args", ()), opts.get("when"), self._loc(meta))

    def recipe_decl(self, meta, ch):
        ov, ch = self._split_override(ch)
        doc, stages = self._doc_and_rest(ch[1:])
        return A.Recipe(str(ch[0]), tuple(stages), doc, ov, self._loc(meta))

    def start(self, meta, ch):
        return list(ch)


def parse_text(text: str, path: str = "<string>") -> A.Module:
    """Parse one rule file. Raises RuleError with the located syntax problem."""
    source = text if text.endswith("\n") else text + "\n"
    comments: list[A.Comment] = []
    try:
        tree = _parse_bounded(source, path)
    except UnexpectedInput as exc:
        raise RuleError([_syntax_finding(exc, path, source)], {path: source}) from None
    except DedentError:
        nl = _lark().options.postlex.last_nl
        line, column = (nl.end_line, nl.end_column) if nl is not None and nl.end_line else (_dedent_line(source), 1)
        raise RuleError([Finding(A.Loc(path, line, column), "syntax",
                                 "inconsistent indentation: this line does not line up with any enclosing block")],
                        {path: source}) from None
    too_deep = _nesting_problem(tree, path)
    if too_deep is not None:
        raise RuleError([too_deep], {path: source})
    to_ast = _ToAst(path)
    items = to_ast.transform(tree)
    if to_ast.problems:
        raise RuleError(to_ast.problems, {path: source})
    doc = None
    decls: list[A.Decl] = []
    for item in items:
        if isinstance(item, tuple) and item[0] == "moduledoc":
            if doc is None and not decls:
                doc = item[1]
            else:
                raise RuleError([Finding(item[2], "syntax", "a lone string is only allowed as the file's first line (its doc string)")], {path: source})
        else:
            decls.append(item)
    comments.extend(_scan_comments(source))
    return A.Module(path, doc, tuple(decls), tuple(comments), source)


MAX_PARSER_STACK = 100 * MAX_NESTING
"""Most states the LALR parser holds at once (open brackets, pending operators and the
declaration around them): redundant parentheses add no nesting, but a million of them would
cost the parser 20 s and 300 MB before any nesting is measured."""


def _parse_bounded(source: str, path: str) -> Tree:
    """``_lark().parse(source)`` (lark's own LALR loop) refusing, located, a file whose parser
    stack grows past MAX_PARSER_STACK states. Syntax errors carry the interactive parser, as
    lark's parse gives them, for the "expected ..." list."""
    parser = _lark().parse_interactive(source)
    state = parser.parser_state
    stack, feed = state.state_stack, state.feed_token
    token: Optional[Token] = None
    try:
        for token in parser.lexer_thread.lex(state):
            feed(token)
            if len(stack) > MAX_PARSER_STACK:
                break
        else:
            end = Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)
            return feed(end, True)
    except UnexpectedInput as exc:
        exc.interactive_parser = parser
        raise
    loc = A.Loc(path, token.line or 1, token.column or 1)
    raise RuleError([Finding(loc, "too-deep",
                             f"brackets and operators nested deeper than the parser holds "
                             f"({MAX_PARSER_STACK} open at once, the limit)",
                             hint="remove redundant parentheses or split the expression into "
                                  "named derived values")], {path: source})


_EXPR_NODES = frozenset({
    "if_expr", "or_", "and_", "not_", "compare", "in_", "not_in", "arith", "neg", "attr", "call",
    "aggregate", "list_comp", "set_lit", "list_lit"})


def _nesting_problem(tree: Tree, path: str) -> Optional[Finding]:
    """The located finding for the first expression nested deeper than MAX_NESTING levels (the
    module docstring's measure), found without recursion; None when all are within it."""
    stack: list[tuple[Tree, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _EXPR_NODES:
            depth += 1
            if depth > MAX_NESTING:
                meta = node.meta
                loc = A.Loc(path, getattr(meta, "line", 0), getattr(meta, "column", 0))
                return Finding(loc, "too-deep",
                               f"expression nested deeper than {MAX_NESTING} levels (the limit; each "
                               f"operator, '-', 'not', 'if', call, list or set adds one: a sum of more "
                               f"than {MAX_NESTING + 1} terms is too deep)",
                               hint="split it into named derived values (a sum into partial sums)")
        stack.extend((c, depth) for c in node.children if isinstance(c, Tree))
    return None


def literal_problem(text: str) -> Optional[str]:
    """Why a number literal's text is out of range (module docstring), or None."""
    mantissa = text.lower().partition("e")[0]
    ndigits = sum(c.isdigit() for c in text)
    if ndigits > MAX_LITERAL_DIGITS:
        return f"a number of {ndigits} digits: at most {MAX_LITERAL_DIGITS} digits (the limit)"
    value = float(text)
    if math.isinf(value):
        return f"{text} is beyond the largest number ({sys.float_info.max:.3g})"
    if 0.0 < abs(value) < sys.float_info.min or (value == 0.0 and any(c in "123456789" for c in mantissa)):
        return f"{text} is below the smallest normal number ({sys.float_info.min:.3g}) and would lose precision or become 0"
    return None


def _scan_comments(source: str) -> list[A.Comment]:
    """Every ``# ...`` comment outside string literals, with its line and column."""
    out: list[A.Comment] = []
    i, n = 0, len(source)
    while i < n:
        if source.startswith('"""', i):
            end = source.find('"""', i + 3)
            i = n if end == -1 else end + 3
        elif source[i] == '"':
            j = i + 1
            while j < n and source[j] not in '"\n':
                j += 2 if source[j] == "\\" else 1
            i = j + 1
        elif source[i] == "#":
            end = source.find("\n", i)
            end = n if end == -1 else end
            line = source.count("\n", 0, i) + 1
            column = i - (source.rfind("\n", 0, i) + 1) + 1
            out.append(A.Comment(line, column, source[i:end]))
            i = end
        else:
            i += 1
    return out


def _dedent_line(source: str) -> int:
    stack = [0]
    for n, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        width = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
        if width > stack[-1]:
            stack.append(width)
        else:
            while width < stack[-1]:
                stack.pop()
            if width != stack[-1]:
                return n
    return 1


def _end_of_text(source: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character (where the file stops short)."""
    lines = source.splitlines()
    for n in range(len(lines), 0, -1):
        if lines[n - 1].strip():
            return n, len(lines[n - 1].rstrip()) + 1
    return 1, 1


def _unterminated_string(pos: int, line: int, column: int, path: str, source: str) -> Finding:
    """A '"' the lexer cannot match: a string without its closing quote."""
    start = source.rfind("\n", 0, pos) + 1
    if source[max(start, pos - 2):pos] == '""':  # the third quote of an unclosed triple-quoted string
        column -= 2
        msg = 'unterminated string: a """ string needs a closing """'
    else:
        msg = "unterminated string: a string needs its closing '\"' on the same line"
    return Finding(A.Loc(path, line, column, line, column + 1), "syntax", msg)


def _syntax_finding(exc: UnexpectedInput, path: str, source: str) -> Finding:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        ch = source[exc.pos_in_stream] if exc.pos_in_stream < len(source) else "end of file"
        if ch == '"':
            return _unterminated_string(exc.pos_in_stream, line, column, path, source)
        msg = f"unexpected character {ch!r}"
        expected = _expected(exc)
        if expected:
            msg += f"; {expected}"
        return Finding(A.Loc(path, line, column, line, column + 1), "syntax", msg)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            what = "end of file"
            line, column = _end_of_text(source)
        elif tok.type in ("_NL",):
            what = "end of line"
        elif tok.type == "_INDENT":
            what = "indentation"
        elif tok.type == "_DEDENT":
            what = "end of block"
        else:
            what = repr(str(tok))
        if line in (None, -1):
            line, column = 1, 1
        msg = f"unexpected {what}"
        expected = _expected(exc)
        if expected:
            msg += f"; {expected}"
        width = len(str(tok)) if tok.type not in ("_NL", "_INDENT", "_DEDENT", "$END") else 1
        return Finding(A.Loc(path, line, column, line, column + width), "syntax", msg)
    if isinstance(exc, UnexpectedEOF):
        line, column = _end_of_text(source)
        return Finding(A.Loc(path, line, column), "syntax", f"unexpected end of file; {_expected(exc)}")
    return Finding(A.Loc(path, line or 1, column or 1), "syntax", str(exc).splitlines()[0])
