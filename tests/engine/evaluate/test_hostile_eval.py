"""Hostile rule files: evaluation is bounded in depth, arithmetic, work and cascade size.

Each class of the issue (deep nesting, arithmetic beyond the reals, unbounded fft_size,
exponential cascades) ends in a clear error value or a located finding, never an internal
error, a hang or a blow-up.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import pytest

from almarules.dsl.functions import fft_size, linear_score
from almarules.dsl.limits import MAX_CASCADE_APPLICATIONS, MAX_FFT_SIZE, MAX_NESTING
from almarules.engine.evaluate.api import check_rules, evaluate, load_facts, load_program
from almarules.engine.cli.app import main
from almarules.engine.columnar.results import UNKNOWN, dataset_values, interpreter_values, same_value
from almarules.engine.columnar.tables import Corpus
from almarules.engine.columnar.vevaluate import VProgram
from almarules.engine.evaluate.program import Program

from conftest import EXAMPLES, REPO

EXAMPLE = next(p for p in EXAMPLES if p.name == "12m_single_field_tdm.yaml")


def write_rules(tmp_path: Path, text: str, shipped: bool = False) -> Path:
    """A rule set of `text` (in r.rules), beside the shipped cycle4 rules if `shipped`."""
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    if shipped:
        for f in (REPO / "rules" / "alma" / "cycle4").glob("*.rules"):
            shutil.copy(f, d / f.name)
    (d / "r.rules").write_text(textwrap.dedent(text))
    return d


def cli(argv: list[str], frames: int = 0) -> tuple[int, str, str]:
    """Run the CLI in a fresh thread whose stack is already `frames` Python frames deep."""
    result: list = []

    def nest(n: int) -> int:
        return main(argv) if n == 0 else nest(n - 1)

    def target() -> None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = nest(frames)
        result.append((rc, out.getvalue(), err.getvalue()))

    t = threading.Thread(target=target)
    t.start()
    t.join()
    return result[0]


# ---------------------------------------------------------------- deep nesting
D = MAX_NESTING - 2  # the derive and the formula's own level are inside the parser's limit
DEEP: dict[str, tuple[str, float]] = {  # formula of nesting depth ~D, and its value (one = 1)
    "unary minus": ("-" * D + "one", 1.0),
    "not": ("if " + "not " * (D - 1) + "true then one else 2 * one", 2.0 if (D - 1) % 2 else 1.0),
    "binary chain": (" + ".join(["one"] * (D + 1)), float(D + 1)),
    "constant chain": (" + ".join(["1"] * (D + 1)), float(D + 1)),
    "calls": ("abs(" * D + "-one" + ")" * D, 1.0),
    "if": ("if true then " * D + "one" + " else 0" * D, 1.0),
    "parentheses": ("(" * D + "one" + ")" * D, 1.0),
}


@pytest.mark.parametrize("kind", DEEP)
def test_nesting_at_the_parser_limit_checks_evaluates_and_explains_on_a_deep_stack(tmp_path, kind):
    formula, want = DEEP[kind]
    param = "param one = 1\n" if "one" in formula else ""
    rules = write_rules(tmp_path, f"{param}derive dataset.deep = {formula}\n")
    frames = 350  # the caller's stack is already deep: the engine must not need ~1000 frames
    rc, out, err = cli(["check", str(rules)], frames)
    assert (rc, err) == (0, ""), out
    rc, out, err = cli(["eval", str(EXAMPLE), "--rules", str(rules), "--only", "deep", "--json"], frames)
    assert rc == 0, err
    assert f'"value": {want}' in out.replace(f"{int(want)}.0", f"{want}") or f'"value": {int(want)}' in out
    rc, out, err = cli(["explain", str(EXAMPLE), "--rules", str(rules), "--value", "dataset.deep"], frames)
    assert rc == 0, err
    assert "internal error" not in err


# ---------------------------------------------------------------- arithmetic
ARITH: list[tuple[str, str]] = [
    ("2 ^ (100000 * one)", "2 ^ 100000 overflows"),
    ("10 ^ (400 * one)", "10 ^ 400 overflows"),
    ("(0 * one) ^ -1", "0 to a negative power"),
    ("(-8 * one) ^ 0.5", "(-8) ^ 0.5 is not a real number"),
    ("1e308 * one * 10 - 1e308 * 10", "overflows"),
    ("1e308 * one * 10 - 1e308 * one * 10", "overflows"),
    ("1 / (0 * one)", "division by zero"),
    ("1e200 * one / 1e-200", "overflows"),
    ("percentile(150 * one, s.nchan for s in spws)", "percentile level 150 is outside [0, 100]"),
    ("percentile(-1 * one, s.nchan for s in spws)", "outside [0, 100]"),
    ("sqrt(-1 * one)", "square root of a negative number"),
    ("log(0 * one)", "logarithm of 0"),
    ("log10(-1 * one)", "logarithm of -1"),
    ("exp(1000 * one)", "e ^ 1000 overflows"),
    ("round(one, 400 * one)", "outside [-308, 308]"),
    ("linear_score(one, 0, 2, -1e308, 1e308)", "overflows"),
    ("erf_score(one, one, 1, 0)", "undefined when good == bad"),
    ("linear_score(one, one, 1, 0, 1)", "undefined when x1 == x2"),
    ("fft_size(1e300 * one)", "beyond the largest FFT size 2147483648"),
    ("fft_size(4e15 * one + 1)", "beyond the largest FFT size"),
    ("sum(1e308 * one for s in spws)", "sum(...) overflows"),
    ("mean(1e308 * one for s in spws)", "overflows"),
]


@pytest.mark.parametrize("formula, reason", ARITH)
def test_arithmetic_beyond_the_reals_is_an_error_value_with_its_reason(tmp_path, formula, reason):
    rules = write_rules(tmp_path, f"param one = 1\nderive dataset.x = {formula}\n")
    v = evaluate(load_program([rules]), load_facts(EXAMPLE)).value("dataset.x")
    assert v.status == "error", v
    assert any(reason in e for e in v.errors), v.errors
    rc, out, err = cli(["eval", str(EXAMPLE), "--rules", str(rules), "--only", "dataset.x"])
    assert (rc, err) == (0, "")
    assert "error: " in out and reason.split(" ")[0] in out


def test_error_values_show_in_plan_and_the_columnar_evaluator_agrees(tmp_path):
    text = "param one = 1\n" + "".join(f"derive dataset.x{i} = {f}\n" for i, (f, _) in enumerate(ARITH))
    text += "derive dataset.fine = 2 ^ (10 * one)\n"
    rules = write_rules(tmp_path, text)
    prog = load_program([rules])
    facts = load_facts(EXAMPLE)
    ev = VProgram(prog).run(Corpus([facts, facts], prog.schema), None)
    ref = interpreter_values(prog.run(facts, {}))
    for i in range(2):
        vec = dataset_values(ev, i)
        assert vec.keys() == ref.keys()
        bad = [(k, vec[k], ref[k]) for k in ref if not same_value(vec[k], ref[k])]
        assert not bad, bad
    assert ref[("dataset", "dataset", "fine")] == 1024.0
    assert sum(v == UNKNOWN for v in ref.values()) == len(ARITH)
    rules = write_rules(tmp_path, text, shipped=True)
    rc, out, err = cli(["plan", str(EXAMPLE), "--rules", str(rules), "--format", "json"])
    assert (rc, err) == (0, "")
    assert "2 ^ 100000 overflows" in out and "square root of a negative number" in out


def test_plan_corpus_with_overflowing_rules_finishes_without_warnings(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"d{i}.yaml").write_text(EXAMPLE.read_text())
    rules = write_rules(tmp_path, "param one = 1\nderive dataset.x = 10 ^ (400 * one) - 10 ^ (400 * one)\n"
                                  "derive dataset.y = fft_size(1e300 * one)\n"
                                  "derive dataset.z = sum(1e308 * one for s in spws)\n", shipped=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning either
        rc, out, err = cli(["plan", "--corpus", str(corpus), "--rules", str(rules)])
    assert rc == 0 and err.startswith("3 datasets evaluated"), err
    assert "internal error" not in err and "Warning" not in err


# ---------------------------------------------------------------- fft_size
def brute_fft_size(n: float) -> int:
    m = max(2, math.ceil(n - 1e-9))
    m += m % 2
    while True:
        k = m
        for p in (2, 3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def test_linear_score_of_a_huge_interval_is_not_cut_to_zero():
    assert linear_score(0.0, 1e308, -1e308, 0.0, 1.0) == 0.5


def test_fft_size_matches_brute_force_up_to_10000_and_on_large_sizes():
    for n in range(-3, 10_001):
        assert fft_size(float(n)) == brute_fft_size(n), n
    for n in (10_000.5, 12_345_677.0, 2 ** 30 + 1.0, 999_999_937.0, MAX_FFT_SIZE - 1.0, float(MAX_FFT_SIZE)):
        assert fft_size(n) == brute_fft_size(n), n


@pytest.mark.parametrize("n", [MAX_FFT_SIZE + 1.0, 4e15 + 1, 1e300, math.inf, math.nan])
def test_fft_size_refuses_absurd_sizes_at_once(n):
    start = time.perf_counter()
    with pytest.raises(ValueError):
        fft_size(n)
    assert time.perf_counter() - start < 0.5


def test_a_rule_calling_fft_size_on_a_huge_fact_finishes_quickly(tmp_path):
    rules = write_rules(tmp_path, "derive dataset.side = fft_size(count(spws) * 1e15)\n")
    start = time.perf_counter()
    rc, out, err = cli(["eval", str(EXAMPLE), "--rules", str(rules), "--only", "side"])
    assert time.perf_counter() - start < 20
    assert rc == 0 and "beyond the largest FFT size" in out, (out, err)


# ---------------------------------------------------------------- cascades
def doubling_cascade(levels: int) -> str:
    steps = ['        step "s0":\n            set ppb = ppb + 1\n']
    steps += [f'        step "s{i}":\n            repeat "s{i - 1}", "s{i - 1}"\n' for i in range(1, levels)]
    return ("param ppb = 1\nderive dataset.big = ppb > 1e30\n"
            "cascade grow:\n    until dataset.big\n" + "".join(s[4:] for s in steps))


def test_checker_reports_a_cascade_whose_repeats_expand_past_the_bound(tmp_path):
    rules = write_rules(tmp_path, doubling_cascade(25))
    start = time.perf_counter()
    rc, out, err = cli(["check", str(rules)])
    assert time.perf_counter() - start < 10
    assert rc == 1
    # step sk applies 2^(k+1) - 1 times; s0..sk together 2^(k+2) - 2 - (k+1): 8178 up to s11,
    # 16369 up to s12 (declared on line 5 + 2 * 12), 2^26 - 27 for all 25
    assert "r.rules:29:5: error[cascade-too-large]" in out, out
    assert f"{2 ** 26 - 27} step applications" in out and str(MAX_CASCADE_APPLICATIONS) in out
    rules = write_rules(tmp_path, doubling_cascade(12))  # 8178 applications: within the bound
    assert cli(["check", str(rules)])[0] == 0


def test_a_cascade_past_the_bound_stops_with_an_error_outcome(tmp_path):
    rules = write_rules(tmp_path, doubling_cascade(25))
    rs, result = check_rules([rules])
    assert [f.code for f in result.findings] == ["cascade-too-large"]
    result.findings.clear()  # run it anyway: the evaluator must bound the work on its own
    start = time.perf_counter()
    d = evaluate(Program(rs, result), load_facts(EXAMPLE))
    assert time.perf_counter() - start < 30
    (c,) = d.cascades
    assert c.status == "error" and f"stopped after {MAX_CASCADE_APPLICATIONS} step applications" in c.error
