"""A parameter's accepted values (``in (0, 1]``, ``in {"airy", "gaussian"}``): parsed, checked,
formatted, inherited by overrides, and enforced on ``--set`` with a one-line error."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from almarules.dsl.errors import RuleError
from almarules.dsl.format import format_text
from almarules.dsl.parser import parse_text
from almarules.engine.evaluate.api import check_rules, load_program, run
from almarules.engine.cli.app import main
from almarules.engine.evaluate.program import UsageError
from almarules.engine.facts.summary import load_summary

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "12m_single_field_tdm.yaml")
CYCLE4 = REPO / "rules" / "alma" / "cycle4"

SOURCE = '''param pblimit = 0.2  # keep
    """Primary-beam level."""
    in (0, 1]
param model = "airy"
    in {"airy",   "gaussian"}
    """Primary beam."""
param size = 30 GB
    in [1 GB, inf)

derive dataset.a = pblimit + size / 1 GB + (if model == "airy" then 1 else 0)
'''


def _findings(tmp_path: Path, text: str) -> list[tuple[int, int, str, str]]:
    f = tmp_path / "x.rules"
    f.write_text(text)
    _, result = check_rules([f])
    return [(x.loc.line, x.loc.column, x.code, x.message) for x in result.findings]


def test_parse_reads_interval_and_string_set():
    params = {d.name: d for d in parse_text(SOURCE).decls if hasattr(d, "allowed")}
    iv = params["pblimit"].allowed.interval
    assert (iv.lo.value, iv.hi.value, iv.lo_closed, iv.hi_closed) == (0.0, 1.0, False, True)
    assert params["model"].allowed.values == ("airy", "gaussian")
    assert params["model"].doc == "Primary beam."
    assert (params["size"].allowed.interval.lo.unit, params["size"].allowed.interval.hi.infinite) == ("GB", True)


def test_fmt_writes_doc_then_in_clause_and_is_idempotent():
    out = format_text(SOURCE)
    assert out.startswith('param pblimit = 0.2  # keep\n    """Primary-beam level."""\n    in (0, 1]\n'
                          'param model = "airy"\n    """Primary beam."""\n    in {"airy", "gaussian"}\n'
                          "param size = 30 GB\n    in [1 GB, inf)\n")
    assert format_text(out) == out
    assert parse_text(out).decls == parse_text(SOURCE).decls


def test_clause_given_twice_is_a_syntax_finding(tmp_path):
    assert _findings(tmp_path, "param p = 1\n    in [0, 2]\n    in [0, 3]\nderive dataset.a = p\n") == [
        (1, 1, "syntax", "param p gives 'in' twice")]


@pytest.mark.parametrize("text,expected", [
    ("param p = 1.5\n    in (0, 1]\n", (1, 11, "out-of-range", "the default of param p is not a value in (0, 1]")),
    ('param p = "gausian"\n    in {"airy", "gaussian"}\n',
     (1, 11, "out-of-range", 'the default of param p is not one of "airy", "gaussian"')),
    ("param q = 2\nparam p = 3 * q\n    in [0, 5]\n",
     (2, 11, "out-of-range", "the default of param p is not a value in [0, 5]")),
    ('param p = "airy"\n    in [0, 1]\n',
     (2, 5, "type-mismatch", "param p is a string: an interval of accepted values needs a number parameter")),
    ('param p = 1\n    in {"a"}\n',
     (2, 5, "type-mismatch", "param p is a number: a set of accepted strings needs a string parameter")),
    ("param p = 30 GB\n    in [1 arcsec, inf)\n",
     (2, 9, "unit-mismatch", "bound 1 arcsec does not match param p, which is in GB")),
    ("param p = 1\n    in [0, inf]\n",
     (2, 12, "bad-interval", "an infinite end must be open: write '(-inf' or 'inf)'")),
    ("param p = 1\n    in (2, 1)\n", (2, 8, "bad-interval", "interval (2, 1) is empty")),
])
def test_checker_findings(tmp_path, text, expected):
    uses = "".join(f"derive dataset.{n} = {n}\n" for n in ("p", "q") if f"param {n} " in text)
    assert expected in _findings(tmp_path, text + uses)


def test_default_in_range_and_bare_zero_bound_are_clean(tmp_path):
    assert _findings(tmp_path, "param p = 30 GB\n    in (0, 50 GB]\nderive dataset.a = p\n") == []


def test_computed_default_outside_is_refused_when_compiled(tmp_path):
    """A default the checker cannot evaluate (a function call) is checked when the program compiles."""
    f = tmp_path / "x.rules"
    f.write_text("param p = sqrt(16)\n    in [0, 3]\nderive dataset.a = p\n")
    with pytest.raises(RuleError) as exc:
        load_program([f])
    assert "x.rules:1:11: error[out-of-range]: the default of param p is not a value in [0, 3]" in exc.value.render()


def test_cascade_setting_a_value_outside_is_a_finding(tmp_path):
    text = ("param p = 5\n    in [3, 10]\n"
            "cascade c:\n    until p < 3\n    step \"lower\":\n        set p = 2\n")
    expected = (6, 17, "out-of-range", "step 'lower' sets param p to a value it does not accept: "
                                       f"it takes a value in [3, 10] ({_shown(tmp_path / 'x.rules')}:2:5)")
    assert expected in _findings(tmp_path, text)


def _shown(path: Path) -> str:
    from almarules.dsl.loader import display_path

    return display_path(path)


def test_override_keeps_the_clause_and_its_default_is_checked(tmp_path):
    base = tmp_path / "base.rules"
    base.write_text("param p = 0.5\n    in [-2, 2]\nderive dataset.a = p\n")
    over = tmp_path / "over" / "o.rules"
    over.parent.mkdir()
    over.write_text('import "../base.rules"\n\noverride param p = 3\n')
    _, result = check_rules([over.parent])
    found = [(f.loc.file.endswith("o.rules"), f.loc.line, f.code) for f in result.findings]
    assert found == [(True, 3, "out-of-range")]


# ---------------------------------------------------------------- --set


PB_MODELS = ("casa", "ALMA", "ACA", "VLA", "EVLA", "airy", "gaussian")


@pytest.fixture()
def cycle4_with_pb_clause(tmp_path):
    """cycle4 with an ``in`` clause on pb_model (the one rules/alma/*/clean.rules are to get),
    and the line of that clause."""
    rules = tmp_path / "cycle4"
    shutil.copytree(CYCLE4, rules)
    text = (rules / "clean.rules").read_text()
    m = re.search(r'^param pb_model = "([^"]*)"\n((?:    .*\n)*)', text, re.M)
    if "    in {" not in m.group(2):
        values = dict.fromkeys((m.group(1),) + PB_MODELS)
        clause = "    in {" + ", ".join(f'"{v}"' for v in values) + "}\n"
        text = text[:m.end()] + clause + text[m.end():]
        (rules / "clean.rules").write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("    in {") and '"gaussian"' in t)
    return rules, line


def test_set_string_outside_is_one_line_with_declaration(cycle4_with_pb_clause, capsys):
    rules, line = cycle4_with_pb_clause
    for command in (["eval", EXAMPLE], ["plan", EXAMPLE]):
        assert main(command + ["--rules", str(rules), "--set", "pb_model=gausian"]) == 2
        (err,) = capsys.readouterr().err.splitlines()
        assert err.startswith("almarules: --set pb_model=gausian: param pb_model does not accept gausian: "
                              'it takes one of "')
        assert '"gaussian"' in err
        assert err.endswith(f"(declared at {_shown(rules / 'clean.rules')}:{line}:5) (did you mean 'gaussian'?)")
    assert main(["eval", EXAMPLE, "--rules", str(rules), "--set", "pb_model=gaussian"]) == 0


def test_set_in_corpus_mode_is_checked(cycle4_with_pb_clause, tmp_path, capsys):
    rules, _ = cycle4_with_pb_clause
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(EXAMPLE, corpus)
    assert main(["plan", "--corpus", str(corpus), "--rules", str(rules), "--set", "pb_model=gausian"]) == 2
    assert "param pb_model does not accept gausian" in capsys.readouterr().err


@pytest.mark.parametrize("assignment,accepts", [
    ("robust=3", "a value in [-2, 2]"), ("robust=-2.5", "a value in [-2, 2]"),
    ("imaging.pblimit_image=0", "a value in (0, 1]"), ("pblimit_mask=1.01", "a value in (0, 1]"),
    ("ppb=0", "a value in [1, 20]"), ("max_cube_size=-5GB", "a value in (0, 1000000 GB]"),
    ("tlimit=0", "a value in (0, 100]"),
])
def test_shipped_parameters_refuse_impossible_values(assignment, accepts):
    program = load_program([CYCLE4])
    with pytest.raises(UsageError) as exc:
        run(program, load_summary(EXAMPLE), [assignment])
    name = assignment.split("=")[0].split(".")[-1]
    value = assignment.split("=")[1]
    assert f"param {name} does not accept {value}: it takes {accepts} (declared at " in str(exc.value)


@pytest.mark.parametrize("assignment", ["robust=2", "robust=-2", "pblimit_image=1", "ppb=3", "max_cube_size=1 MB"])
def test_shipped_parameters_accept_their_ends_and_inside(assignment):
    run(load_program([CYCLE4]), load_summary(EXAMPLE), [assignment])


def test_rule_test_set_outside_fails_that_test(tmp_path, capsys):
    rules = tmp_path / "cycle4"
    shutil.copytree(CYCLE4, rules)
    for t in rules.glob("*.test.yaml"):
        t.unlink()
    (rules / "x.test.yaml").write_text(
        "tests:\n  - name: impossible robust\n    given: {}\n    set: {robust: 5}\n"
        "    expect: {dataset.l80: unknown}\n")
    assert main(["test", str(rules), "--no-coverage"]) == 1
    assert "--set robust=5: param robust does not accept 5: it takes a value in [-2, 2]" in capsys.readouterr().out


def test_plan_shows_what_a_parameter_accepts(capsys):
    assert main(["plan", EXAMPLE, "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    i = next(n for n, t in enumerate(lines) if t.lstrip().startswith("param:fft_padding = 1.76   [param fft_padding, "))
    assert lines[i + 1].strip() == "parameter (default)"
    assert re.fullmatch(r" *accepts \[1, 4\]   \[rules/alma/cycle4/estimates\.rules:\d+:5\]", lines[i + 2])


@pytest.mark.parametrize("fmt,shown", [
    ("markdown", "- accepts `[1, 4]   [rules/alma/cycle4/estimates.rules:"),
    ("html", "fft_padding</th><td>1.76</td><td><code>[1, 4]   [rules/alma/cycle4/estimates.rules:")])
def test_plan_markdown_and_html_show_what_a_parameter_accepts(capsys, fmt, shown):
    assert main(["plan", EXAMPLE, "--format", fmt, "--explain"]) == 0
    assert shown in capsys.readouterr().out


@pytest.mark.parametrize("rule_set", ["cycle4", "current", "cycle5"])
def test_shipped_pb_model_accepts_exactly_the_kernel_models_and_casa(rule_set):
    """The accepted pb_model values are the primary-beam kernel's models plus "casa" (tclean's
    choice by telescope): a typo like 'gausian' is refused at --set, not when imaging."""
    from almarules.kernels.primary_beam import MODEL_NAMES

    program = load_program([REPO / "rules" / "alma" / rule_set])
    clause = program.rs.params["pb_model"].allowed
    assert clause is not None and set(clause.values) == {"casa", *MODEL_NAMES}
