"""Tests of the canonical formatter (almarules.dsl.format).

Three guarantees are checked on hand-written files, on the rule files of the
repository and on random syntax trees (hypothesis):

1. idempotence: ``format_text(format_text(x)) == format_text(x)``;
2. meaning: ``parse_text(format_text(x)) == parse_text(x)``;
3. comments: every comment text of the input is in the output, in order.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from almarules.dsl import ast as A
from almarules.dsl.errors import RuleError
from almarules.dsl.format import format_expr, format_module, format_text
from almarules.dsl.parser import parse_text

REPO = Path(__file__).resolve().parents[2]


def comment_texts(text: str) -> list[str]:
    return [c.text.rstrip() for c in parse_text(text).comments]


def check_guarantees(src: str, whitespace: bool = True) -> str:
    out = format_text(src)
    assert parse_text(out) == parse_text(src), out
    assert format_text(out) == out, out
    assert comment_texts(out) == comment_texts(src), out
    if whitespace:  # (random docs may end lines with spaces: their content is kept)
        assert not any(line != line.rstrip() for line in out.splitlines()), "trailing whitespace"
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))
    return out


def expr_of(text: str) -> A.Expr:
    return parse_text(f"param p = {text}\n").decls[0].value


# ---------------------------------------------------------------- a rich sample

SAMPLE = r'''# Leading comment before the module doc.
"""A rich sample exercising every construct.
   Second line of the module doc."""
# after the doc

import "../base"   # the base set
import "other.rules"
param a = 1   # trailing on a
param b = 2 GB
    """Doc of b."""

# blank-separated param
param c = -3.5e-7 mJy/beam
override param d = [1 GHz, 2.50 GHz, 1e20, .5]
override enum specmode = {mfs, cont,   cube}  # enum trailing
enum flags = {ONE}

# before derive
override derive image.size = 4 byte * image.imsize ** 2 * image.nchan / (image.nbin)  # formula
    when image.specmode == cube and not (image.x in {A, B})   # when trailing
    # before unit
    unit GB
    priority -2
    """
    The size of a cube.
      Indented line.
    """

derive dataset.x = if a then b else if c then d else e
    priority 3
derive dataset.y = (if a then b else c) + 1
derive dataset.z = max(i.size for i in images where i.specmode == cube else 0 GB)
derive dataset.w = any(BANDPASS in f.intents for f in fields) or x not in {A, B} and - - y ^ -2
derive dataset.s = "a \"quoted\" # not a comment" + "back\\slash"
derive dataset.t = (a - (b - c)) * (d / (e * f)) ^ (g ^ h) ^ i - -(j.k).l
derive dataset.u = sum(s.n * 2 for s in spws where s.ok, c in s.chans where c > 0) / count(spws)
derive dataset.v = f(
    a,   # first argument
    # a full-line comment inside brackets
    b)   # closing
derive dataset.q = (1 GB).value + true - false * inf + known(x) + [] + {} + now()
    """Literals."""
    unit GB

table dr(x) over [0, inf):
    """DR table."""
    # first row
    [0, 20]  -> 1.0
    (20, 50 GHz] -> 1.5   # second row
    (-inf, -3) -> max(2.5, x / 150)
override table t2(y) over (-inf, 1 m]:
    [0 m, 1 m] -> y

bands colour(score) over [0, 1]:
    red [0, 0.33]   # red
    yellow (0.33, 0.66]
    # green next
    green (0.66, 1]
override bands b2(z) over [0 GHz, inf):
    """Band doc."""
    low [0 GHz, 100 GHz)
    high [100 GHz, inf)

score dataset.qa:
    """Score doc."""
    start 1.0
    - 0.1 "no bandpass" when not any(BANDPASS in f.intents for f in fields)  # term
    # plus term
    + 0.5 "bonus \"quoted\" \\ back" when x
    clamp [0, 1]
    when dataset.enabled
override score image.qa:
    - a + b "sum" when true

collection image:
    """Images."""
    # loop
    for intent in [BANDPASS, PHASE], f in fields where intent in f.intents:
        emit field = f, intent = intent   # emit trailing
        for s in spws where s.is_science:
            emit field = f, spws = [s for s in spws where s.is_science], specmode = mfs
    emit field = none
override collection source:
    emit name = "x"

cascade productsize:
    """Cascade doc."""
    until dataset.largest <= max_cube_size  # until
    step "bin channels":
        set spw.nbin = 2 where spw.nchan == 1920
        set ppb = 3
    # before step
    step "fewer sources" after "bin channels":
        """Keep some."""
        keep image where image.intent == TARGET   # keep
            group by image.field    # group
            ranked by image.field.id
            while dataset.product_size <= max_product_size
        keep image where x group by y
        drop image where image.intent == TARGET and image.specmode in {mfs, cube}
    step "last" before "fewer sources":
        keep image
            while dataset.product_size <= max_product_size + a_very_long_name_for_testing_line_lengths
override cascade other:
    step "only":
        keep spw ranked by -spw.id while count(spws) > 2
    step "guarded" after "only"   when dataset.n > 3 GB:   # guarded
        error "too big"   when dataset.size > 60 GB
        error "always"
        # before repeat
        repeat "only",   "x"
        keep spw ranked by spw.id,  -spw.size,not spw.ok limit (2)
        keep image where image.intent == TARGET and image.specmode in {mfs, cube} and not image.rep ranked by a, b limit n

override warn "many targets" when count(fields) > 30   # warn
    """Warn doc."""
warn "plain" when x

override recipe main:
    """Recipe doc."""
    importdata
    flagdata(1, "x") when a   # stage
    # before tclean
    tclean() when not b
recipe plain:
    hif_makeimages(specmode == 1)
# trailing comment at end of block

# final comment
'''

EXPECTED = r'''# Leading comment before the module doc.
"""A rich sample exercising every construct.
Second line of the module doc."""

# after the doc
import "../base"  # the base set
import "other.rules"

param a = 1  # trailing on a
param b = 2 GB
    """Doc of b."""

# blank-separated param
param c = -3.5e-7 mJy/beam
override param d = [1 GHz, 2.5 GHz, 1e20, 0.5]

override enum specmode = {mfs, cont, cube}  # enum trailing

enum flags = {ONE}

# before derive
override derive image.size = 4 byte * image.imsize ^ 2 * image.nchan / image.nbin  # formula
    """
    The size of a cube.
      Indented line.
    """
    unit GB
    when image.specmode == cube and not image.x in {A, B}  # when trailing
    # before unit
    priority -2

derive dataset.x = if a then b else if c then d else e
    priority 3

derive dataset.y = (if a then b else c) + 1

derive dataset.z = max(i.size for i in images where i.specmode == cube else 0 GB)

derive dataset.w = any(BANDPASS in f.intents for f in fields) or x not in {A, B} and - -y ^ -2

derive dataset.s = "a \"quoted\" # not a comment" + "back\\slash"

derive dataset.t = (a - (b - c)) * (d / (e * f)) ^ (g ^ h) ^ i - -j.k.l

derive dataset.u = sum(s.n * 2 for s in spws where s.ok, c in s.chans where c > 0) / count(spws)

# first argument
# a full-line comment inside brackets
derive dataset.v = f(a, b)  # closing

derive dataset.q = (1 GB).value + true - false * inf + known(x) + [] + {} + now()
    """Literals."""
    unit GB

table dr(x) over [0, inf):
    """DR table."""
    # first row
    [0, 20]      -> 1.0
    (20, 50 GHz] -> 1.5  # second row
    (-inf, -3)   -> max(2.5, x / 150)

override table t2(y) over (-inf, 1 m]:
    [0 m, 1 m] -> y

bands colour(score) over [0, 1]:
    red     [0, 0.33]  # red
    yellow  (0.33, 0.66]
    # green next
    green   (0.66, 1]

override bands b2(z) over [0 GHz, inf):
    """Band doc."""
    low   [0 GHz, 100 GHz)
    high  [100 GHz, inf)

score dataset.qa:
    """Score doc."""
    when dataset.enabled
    start 1.0
    - 0.1 "no bandpass" when not any(BANDPASS in f.intents for f in fields)  # term
    # plus term
    + 0.5 "bonus \"quoted\" \\ back" when x
    clamp [0, 1]

override score image.qa:
    - a + b "sum" when true

collection image:
    """Images."""
    # loop
    for intent in [BANDPASS, PHASE], f in fields where intent in f.intents:
        emit field = f, intent = intent  # emit trailing
        for s in spws where s.is_science:
            emit field = f, spws = [s for s in spws where s.is_science], specmode = mfs
    emit field = none

override collection source:
    emit name = "x"

cascade productsize:
    """Cascade doc."""
    until dataset.largest <= max_cube_size  # until
    step "bin channels":
        set spw.nbin = 2 where spw.nchan == 1920
        set ppb = 3
    # before step
    step "fewer sources" after "bin channels":
        """Keep some."""
        keep image where image.intent == TARGET  # keep
            group by image.field  # group
            ranked by image.field.id
            while dataset.product_size <= max_product_size
        keep image where x group by y
        drop image where image.intent == TARGET and image.specmode in {mfs, cube}
    step "last" before "fewer sources":
        keep image
            while dataset.product_size <= max_product_size + a_very_long_name_for_testing_line_lengths

override cascade other:
    step "only":
        keep spw ranked by -spw.id while count(spws) > 2
    step "guarded" after "only" when dataset.n > 3 GB:  # guarded
        error "too big" when dataset.size > 60 GB
        error "always"
        # before repeat
        repeat "only", "x"
        keep spw ranked by spw.id, -spw.size, not spw.ok limit 2
        keep image where image.intent == TARGET and image.specmode in {mfs, cube} and not image.rep
            ranked by a, b
            limit n

override warn "many targets" when count(fields) > 30  # warn
    """Warn doc."""

warn "plain" when x

override recipe main:
    """Recipe doc."""
    importdata
    flagdata(1, "x") when a  # stage
    # before tclean
    tclean when not b

recipe plain:
    hif_makeimages(specmode == 1)

# trailing comment at end of block
# final comment
'''


def test_sample_is_canonical():
    out = check_guarantees(SAMPLE)
    assert out == EXPECTED


def test_sample_covers_every_construct():
    kinds = {type(d) for d in parse_text(SAMPLE).decls}
    assert kinds == {A.Import, A.EnumDecl, A.Param, A.Derive, A.Table, A.Bands, A.Score,
                     A.Collection, A.Cascade, A.Recipe, A.Warn}
    actions = {type(a) for d in parse_text(SAMPLE).decls if isinstance(d, A.Cascade)
               for s in d.steps for a in s.actions}
    assert actions == {A.SetAction, A.KeepAction, A.DropAction, A.ErrorAction, A.RepeatAction}


def test_expected_is_a_fixed_point():
    assert format_text(EXPECTED) == EXPECTED


@pytest.mark.parametrize("path", sorted((REPO / "rules").glob("**/*.rules")), ids=lambda p: p.name)
def test_repository_rule_files(path):
    src = path.read_text()
    try:
        parse_text(src, str(path))
    except RuleError:
        pytest.skip("does not parse (being edited?)")
    check_guarantees(src, whitespace=False)


# ---------------------------------------------------------------- expressions

@pytest.mark.parametrize("text", [
    "tlimit * image.sensitivity * image.dr_correction",
    "max(2.5, dr / 150)",
    "any(BANDPASS in f.intents for f in fields)",
    "max(i.size for i in images where i.specmode == cube else 0 GB)",
    "if a then b else c",
    "x not in {A, B}",
    "a ^ 2",
    "30 GB",
    "0.05 mJy/beam",
    "a - (b - c)",
    "a - b - c",
    "a / (b * c)",
    "(a + b) * c",
    "-a ^ b",
    "(-a) ^ b",
    "a ^ -b",
    "a ^ b ^ c",
    "(a ^ b) ^ c",
    "(a + b).c",
    "f(x).y.z",
    "(1 GB).x",
    "not (a and b)",
    "not a in b",
    "(a or b) and c",
    "a or b and c",
    "(a < b) == c",
    "(not a) == b",
    "a + (not b)",
    "-(a + b)",
    "- -a",
    "(if a then b else c) + 1",
    "if (if a then b else c) then d else e",
    "if a then (if b then c else d) else if e then f else g",
    "sum(x for x in xs where (if a then b else c))",
    "f(a, b, x for x in xs, y in x.ys where y > 0 else 0)",
    "[s for s in spws where s.ok]",
    "[]",
    "{}",
    "f()",
    '"a \\"b\\" \\\\ c"',
    "inf",
    "true and not false",
    "1e-7 + 1e20 + 2.5e-300",
    "2 m^2 ^ 2",
    "x in a + b",
    "-(x in y)",
])
def test_format_expr_is_canonical(text):
    e = expr_of(text)
    assert format_expr(e) == text
    assert expr_of(format_expr(e)) == e


@pytest.mark.parametrize("text, canonical", [
    ("(a)", "a"),
    ("((a + b)) * (c)", "(a + b) * c"),
    ("a ** 2", "a ^ 2"),
    ("1.0", "1.0"),  # a whole number written with .0 keeps it
    ("2.50", "2.5"),
    (".5", "0.5"),
    ("2.50 GHz", "2.5 GHz"),
    ("1e-07", "1e-7"),
    ("1E+20", "1e20"),
    (".5", "0.5"),
    ("a - (b + c)", "a - (b + c)"),
    ("(a - b) + c", "a - b + c"),
    ("a * (b / c)", "a * (b / c)"),
    ("not (a == b)", "not a == b"),
    ("-(-a)", "- -a"),
    ("-(a ^ b)", "-a ^ b"),
    ("(a.b).c", "a.b.c"),
    ("list(x for x in xs)", "[x for x in xs]"),
    ("list(x for x in xs else 0)", "list(x for x in xs else 0)"),
    ("if a then b else (if c then d else e)", "if a then b else if c then d else e"),
])
def test_format_expr_normalises(text, canonical):
    assert format_expr(expr_of(text)) == canonical


def test_format_expr_built_by_hand():
    e = A.Binary("*", A.Binary("+", A.Name("a"), A.Num(1.0)), A.Unary("-", A.Num(2.0, "GB")))
    assert format_expr(e) == "(a + 1) * -2 GB"
    assert format_expr(A.Aggregate("max", (), A.Attr(A.Name("i"), "size"),
                                   (A.Binder("i", A.Name("images")),), A.Num(0.0, "GB"))) \
        == "max(i.size for i in images else 0 GB)"


# ---------------------------------------------------------------- layout details

def test_layout_blank_lines_and_grouping():
    src = 'import "a"\n\n\nimport "b"\nimport "c"\nparam x = 1\nparam y = 2\n\n\n\nparam z = 3\nderive a.b = 1\nderive a.c = 2\n'
    assert format_text(src) == (
        'import "a"\n\nimport "b"\nimport "c"\n\nparam x = 1\nparam y = 2\n\nparam z = 3\n\n'
        'derive a.b = 1\n\nderive a.c = 2\n')


def test_docs_single_line_and_escapes():
    src = textwrap.dedent('''\
        "module doc"
        param a = 1
            "single"
        param b = 1
            "  spaced  "
        param c = 1
            "ends with a quote \\""
        param d = 1
            """has \\ backslash"""
        ''')
    out = check_guarantees(src)
    assert out == textwrap.dedent('''\
        """module doc"""

        param a = 1
            """single"""
        param b = 1
            "  spaced  "
        param c = 1
            "ends with a quote \\""
        param d = 1
            """has \\ backslash"""
        ''')


def test_docs_multi_line():
    src = textwrap.dedent('''\
        derive a.b = 1
            """First line
            second line
                indented"""

        derive a.c = 1
            """
            Block form.
            Ends with "quote"
            """

        cascade c:
            step "s":
                """Step doc
                on two lines."""
                set x = 1
        ''')
    out = check_guarantees(src)
    assert out == src


def test_keep_line_splitting():
    short = 'cascade c:\n    step "s":\n        keep image\n            where a\n            group by b\n'
    assert format_text(short) == 'cascade c:\n    step "s":\n        keep image where a group by b\n'
    cond = " and ".join(f"image.condition_{i}" for i in range(6))
    long = f'cascade c:\n    step "s":\n        keep image where {cond} group by image.field ranked by image.id while ok\n'
    out = check_guarantees(long)
    assert out == (f'cascade c:\n    step "s":\n        keep image\n            where {cond}\n'
                   '            group by image.field\n            ranked by image.id\n            while ok\n')


def test_comments_ordering_when_clauses_move():
    src = textwrap.dedent('''\
        derive a.b = 1
            when x  # on when
            # about the unit
            unit GB  # on unit
            """Doc."""  # on doc
        # the end
        ''')
    out = check_guarantees(src)
    assert comment_texts(out) == ["# on when", "# about the unit", "# on unit", "# on doc", "# the end"]


def test_comments_only_and_empty():
    assert format_text("") == ""
    assert format_text("\n\n") == ""
    assert check_guarantees("# just a comment\n\n\n# another   \n") == "# just a comment\n# another\n"


def test_comment_in_continuation_and_hash_in_strings():
    src = 'derive a.b = f(x, \\\n  y)  # after continuation\nderive a.c = "#not" + """#nor\nthis"""  # real\n'
    out = check_guarantees(src)
    assert out == 'derive a.b = f(x, y)  # after continuation\n\nderive a.c = "#not" + "#nor\\nthis"  # real\n'


def test_multiline_strings_in_expressions():
    src = 'derive a.b = """x\n  say "hi"\n""" + """\n   one\n     two\n\n   three\n   """\n'
    out = check_guarantees(src)
    # a string that holds newlines is written with escapes (doc strings keep the block form)
    assert out == 'derive a.b = "x\\nsay \\"hi\\"" + "one\\n  two\\n\\nthree"\n'


def test_crlf_source():
    src = 'param a = 1  # one\r\nparam b = 2\r\n'
    out = format_text(src)
    assert out == "param a = 1  # one\nparam b = 2\n"
    assert parse_text(out) == parse_text(src)


# ---------------------------------------------------------------- random trees

KEYWORDS = set("""import param derive table bands score collection cascade step recipe set keep drop
group ranked by while until emit start clamp priority unit over override enum after before for in
where when if then else and or not true false inf""".split())

UNITS = ["GB", "GHz", "mJy/beam", "arcsec", "m", "s", "km/s", "m^2", "Jy-2", "byte"]

names = st.one_of(
    st.sampled_from(["a", "b", "x", "image", "spw", "size", "_tmp", "f1", "BANDPASS", "nan", "Inf"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True),
).filter(lambda s: s not in KEYWORDS)

# single-line text (any printable character, including quotes, backslashes and '#')
texts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8)
units = st.none() | st.sampled_from(UNITS)

finite = st.one_of(
    st.integers(0, 10**6).map(float),
    st.floats(0, 1e300, allow_nan=False, allow_infinity=False, allow_subnormal=False).map(abs),
    st.sampled_from([0.5, 1e-7, 2.5e20, 1e16, 0.1]),
)


@st.composite
def numbers(draw):
    if draw(st.integers(0, 15)) == 0:
        return A.Num(math.inf)
    return A.Num(draw(finite), draw(units))


leaves = st.one_of(
    numbers(),
    st.builds(A.Str, texts),
    st.builds(A.Bool, st.booleans()),
    st.builds(A.Name, names),
)

BINARY_OPS = ["+", "-", "*", "/", "^", "and", "or", "==", "!=", "<", "<=", ">", ">=", "in", "notin"]


def tuples(s, lo=0, hi=3):
    return st.lists(s, min_size=lo, max_size=hi).map(tuple)


def binders_of(children):
    return tuples(st.builds(A.Binder, names, children, st.none() | children), 1, 2)


def _extend(children):
    return st.one_of(
        st.builds(A.Attr, children, names),
        st.builds(A.Unary, st.sampled_from(["-", "not"]), children),
        st.builds(A.Binary, st.sampled_from(BINARY_OPS), children, children),
        st.builds(A.IfElse, children, children, children),
        st.builds(A.Call, names, tuples(children)),
        st.builds(A.Aggregate, st.sampled_from(["max", "sum", "list", "any"]) | names,
                  tuples(children, 0, 2), children, binders_of(children), st.none() | children),
        st.builds(A.SetLit, tuples(children)),
        st.builds(A.ListLit, tuples(children)),
    )


exprs = st.recursive(leaves, _extend, max_leaves=12)


def _normal_doc_line(line: str) -> str:
    return line if line.strip() else ""


@st.composite
def docs(draw):
    """A doc string as the parser can produce it (single line, or a stripped block)."""
    if draw(st.booleans()):
        return draw(texts.filter(lambda t: "\n" not in t))
    alphabet = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
    lines = draw(st.lists(st.tuples(st.sampled_from(["", " ", "    ", "        "]), st.text(alphabet, max_size=10)),
                          min_size=2, max_size=4))
    doc = "\n".join(_normal_doc_line(indent + text) for indent, text in lines).strip()
    assume('"""' not in doc and doc.splitlines() == doc.split("\n"))
    return doc


opt_docs = st.none() | docs()


@st.composite
def bounds(draw):
    if draw(st.integers(0, 4)) == 0:
        return A.Bound(draw(st.sampled_from([math.inf, -math.inf])))
    value = draw(st.one_of(finite, finite.map(lambda v: -v)))
    return A.Bound(value, draw(units))


intervals = st.builds(A.Interval, bounds(), bounds(), st.booleans(), st.booleans())


@st.composite
def scores(draw):
    start, when = draw(st.none() | exprs), draw(st.none() | exprs)
    terms = draw(tuples(st.builds(A.ScoreTerm, st.sampled_from(["+", "-"]), exprs, texts, exprs), 0, 3))
    clamp = draw(st.none() | st.tuples(exprs, exprs))
    assume(start is not None or when is not None or terms or clamp is not None)
    return A.Score(draw(names), draw(names), start, terms, clamp, when, draw(opt_docs), draw(st.booleans()))


emits = st.builds(A.Emit, tuples(st.tuples(names, exprs), 1, 3))
emit_items = st.recursive(
    emits, lambda inner: st.builds(A.EmitFor, binders_of(exprs), tuples(inner, 1, 2)), max_leaves=4)

actions = st.one_of(
    st.builds(A.SetAction, st.none() | names, names, exprs, st.none() | exprs),
    st.builds(A.KeepAction, names, st.none() | exprs, st.none() | exprs, st.none() | exprs, st.none() | exprs,
              limit=st.none() | exprs, then_by=tuples(exprs, 0, 2)).filter(lambda k: k.rank is not None or not k.then_by),
    st.builds(A.DropAction, names, exprs),
    st.builds(A.ErrorAction, texts, st.none() | exprs),
    st.builds(A.RepeatAction, tuples(texts, 1, 3)),
)
steps = st.builds(A.Step, texts, tuples(actions, 1, 3),
                  st.none() | st.tuples(st.sampled_from(["after", "before"]), texts), opt_docs,
                  when=st.none() | exprs)
stages = st.builds(A.Stage, names, tuples(exprs, 0, 2), st.none() | exprs)

decls = st.one_of(
    st.builds(A.Import, texts),
    st.builds(A.EnumDecl, names, tuples(names, 1, 4), st.booleans()),
    st.builds(A.Param, names, exprs, opt_docs, st.booleans()),
    st.builds(A.Derive, names, names, exprs, st.none() | exprs, st.none() | st.integers(-100, 100),
              units, opt_docs, st.booleans()),
    st.builds(A.Table, names, names, intervals, tuples(st.builds(A.TableRow, intervals, exprs), 1, 3),
              opt_docs, st.booleans()),
    st.builds(A.Bands, names, names, intervals, tuples(st.builds(A.BandRow, names, intervals), 1, 3),
              opt_docs, st.booleans()),
    scores(),
    st.builds(A.Collection, names, tuples(emit_items, 1, 3), opt_docs, st.booleans()),
    st.builds(A.Cascade, names, st.none() | exprs, tuples(steps, 1, 2), opt_docs, st.booleans()),
    st.builds(A.Recipe, names, tuples(stages, 1, 3), opt_docs, st.booleans()),
    st.builds(A.Warn, texts, exprs, opt_docs, st.booleans()),
)

modules = st.builds(A.Module, st.just("<gen>"), opt_docs, tuples(decls, 0, 5))

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SETTINGS
@given(exprs)
def test_random_expressions_round_trip(e):
    text = format_expr(e)
    assert expr_of(text) == e, text
    assert format_expr(expr_of(text)) == text


@SETTINGS
@given(modules)
def test_random_modules_round_trip(module):
    text = format_module(module)
    parsed = parse_text(text, "<gen>")
    assert parsed.decls == module.decls, text
    assert parsed.doc == module.doc, text
    assert format_module(parsed) == text
    assert format_text(text) == text


# comments and blank lines sprinkled over a formatted random module: the guarantees still hold
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules, st.data())
def test_random_comments_survive(module, data):
    lines = format_module(module).split("\n")[:-1]
    assume(lines)
    comment = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=6)
    out_lines = []
    for i, line in enumerate(lines):
        what = data.draw(st.sampled_from(["keep", "keep", "above", "trailing", "both", "blank"]))
        indent = re.match(r" *", line).group(0)
        if what in ("above", "both"):
            out_lines.append(f"{indent}# above {i} {data.draw(comment)}")
        if what == "blank":
            out_lines.append("")
        if what in ("trailing", "both") and line.strip():
            line += f"  # trailing {i} {data.draw(comment)}"
        out_lines.append(line)
    src = "\n".join(out_lines) + "\n"
    try:
        parse_text(src)
    except RuleError:  # e.g. a '#' appended to a line inside a multi-line string
        assume(False)
    check_guarantees(src, whitespace=False)


def test_digits_clause_round_trip():
    src = 'derive image.t = 1 mJy/beam\n    """Doc."""\n    unit mJy/beam\n    digits 3\n    when true\n'
    assert check_guarantees(src) == src
