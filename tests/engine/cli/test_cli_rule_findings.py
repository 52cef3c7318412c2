"""Commands given a rule set with several findings print every finding (file:line:col, as
``check`` does) and exit 2; they used to crash sorting the findings (exit 3)."""

from __future__ import annotations

import re
import shutil

import pytest

from almarules.dsl.ast import Loc
from almarules.dsl.errors import Finding, RuleError
from almarules.engine.cli.app import main

from conftest import REPO

EXAMPLE = str(REPO / "examples" / "12m_single_field_tdm.yaml")
BROKEN_LINES = "\nderive image.zz = 3 GHz + 2 Jy\n\nderive image.yy = nosuchname\n"


@pytest.fixture()
def broken_set(tmp_path):
    """The shipped cycle4 set (with its tests) plus two broken rules at known places."""
    rules = tmp_path / "cycle4"
    shutil.copytree(REPO / "rules" / "alma" / "cycle4", rules)
    text = (rules / "threshold.rules").read_text()
    (rules / "threshold.rules").write_text(text + BROKEN_LINES)
    first = text.count("\n") + 2  # the line of 'derive image.zz'
    return rules, [f"threshold.rules:{first}:19: error[unit-mismatch]: cannot add Jy to GHz",
                   f"threshold.rules:{first + 2}:19: error[unknown-name]: unknown name 'nosuchname'"]


def _assert_findings_shown(text: str, expected: list[str]) -> None:
    assert "internal error" not in text
    for head in expected:
        assert sum(head in line for line in text.splitlines()) == 1, head


@pytest.mark.parametrize("command", [["eval", EXAMPLE], ["plan", EXAMPLE],
                                     ["explain", EXAMPLE, "--value", "dataset.l80"]])
def test_dataset_commands_print_every_finding_and_exit_2(broken_set, capsys, command):
    rules, expected = broken_set
    assert main(command + ["--rules", str(rules)]) == 2
    captured = capsys.readouterr()
    _assert_findings_shown(captured.err, expected)
    assert captured.err.splitlines()[-1] == ("almarules: the rules have 2 problems; "
                                             "run 'almarules check' on them")


def test_image_prints_every_finding_and_exits_2(broken_set, tmp_path, capsys):
    rules, expected = broken_set
    ms = tmp_path / "x.ms"
    ms.mkdir()
    (ms / "table.dat").write_bytes(b"")  # the rules are loaded before the MS is read
    assert main(["image", str(ms), "--all", "-o", str(tmp_path / "out"), "--rules", str(rules)]) == 2
    _assert_findings_shown(capsys.readouterr().err, expected)


def test_test_command_prints_the_findings_once_and_exits_2(broken_set, capsys):
    rules, expected = broken_set
    assert main(["test", str(rules)]) == 2
    captured = capsys.readouterr()
    _assert_findings_shown(captured.out, expected)
    assert "the rules have problems" in captured.err


def test_rule_error_orders_findings_by_file_line_column():
    a = Finding(Loc("b.rules", 1, 5), "x", "m")
    b = Finding(Loc("a.rules", 9, 1), "y", "m")
    c = Finding(Loc("a.rules", 2, 7), "z", "m")
    assert [f.loc.line for f in RuleError([a, b, c]).findings] == [2, 9, 1]


def test_image_refuses_a_set_value_the_parameter_does_not_accept(tmp_path, capsys):
    """``--set`` is checked before any imaging: one line naming the parameter, the value, what it
    accepts and where that is declared; exit 2."""
    from tiny_ms import make_tiny_ms

    ms = make_tiny_ms(tmp_path / "tiny.ms")
    assert main(["image", str(ms), "--all", "-o", str(tmp_path / "out"), "--set", "robust=5"]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err.startswith("almarules: --set robust=5: param robust does not accept 5: it takes a value in [-2, 2] "
                          "(declared at ")
    assert re.search(r"rules/alma/cycle4/imaging\.rules:\d+:5\)$", err)
    assert not list((tmp_path / "out").glob("*.fits"))
