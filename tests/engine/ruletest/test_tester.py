"""The rule-test runner: failures show a diff with provenance; coverage lists what was missed."""

from __future__ import annotations

import textwrap
from pathlib import Path

from almarules.engine.cli.app import main
from almarules.engine.ruletest.tester import parse_expected, run_tests

from conftest import REPO

RULES = textwrap.dedent('''
    param limit = 10 GB
    table corr(x) over [0, inf):
        [0, 5]   -> 1.0
        (5, inf) -> 2.0
    derive dataset.total = sum(s.nchan for s in spws) * 1 GB * corr(count(spws))
        unit GB
    derive dataset.big = dataset.total > limit
''')

FACTS = "{spws: [{id: 0, nchan: 4}, {id: 1, nchan: 3}]}"


def write(tmp_path: Path, expect: str) -> Path:
    (tmp_path / "set.rules").write_text(RULES)
    test = tmp_path / "set.test.yaml"
    test.write_text(f"tests:\n  - name: sizes\n    given: {FACTS}\n    expect:\n{expect}")
    return test


def test_passing_file(tmp_path):
    write(tmp_path, "      dataset.total: 7 GB\n      dataset.big: false\n")
    report = run_tests([tmp_path])
    assert report.ok
    assert "1 passed, 0 failed" in report.text
    # the (5, inf) row was never exercised
    assert "never exercised: table corr row (5, inf)" in report.text


def test_failure_shows_expected_got_and_rule(tmp_path):
    write(tmp_path, "      dataset.total: 8 GB ± 1%\n")
    report = run_tests([tmp_path])
    assert not report.ok
    assert "FAIL  sizes" in report.text
    assert "dataset.total: expected 8 GB ± 1%, got 7 GB" in report.text
    assert "from derive dataset.total (" in report.text
    assert "0 passed, 1 failed" in report.text


def test_unit_mismatch_in_expectation_fails(tmp_path):
    write(tmp_path, "      dataset.total: 7 arcsec\n")
    report = run_tests([tmp_path])
    assert "the expectation's unit does not fit" in report.text


def test_absolute_tolerance_in_other_unit(tmp_path):
    write(tmp_path, "      dataset.total: 7000 MB ± 1 MB\n")
    assert run_tests([tmp_path]).ok


def test_unknown_value_path_suggests(tmp_path):
    write(tmp_path, "      dataset.totl: 7 GB\n")
    report = run_tests([tmp_path])
    assert "dataset.totl: no such value (did you mean dataset.total?)" in report.text


def test_cli_exit_codes(tmp_path, capsys):
    write(tmp_path, "      dataset.total: 7 GB\n")
    assert main(["test", str(tmp_path)]) == 0
    write(tmp_path, "      dataset.total: 6 GB\n")
    assert main(["test", str(tmp_path)]) == 1


def test_parse_expected():
    e = parse_expected("0.4 mJy/beam ± 0.1%")
    assert e.kind == "number" and abs(e.rtol - 0.001) < 1e-15
    assert parse_expected("green").kind == "text"
    assert parse_expected("unknown (waits for x)").kind == "status"
    assert parse_expected(True).kind == "bool"


def test_shipped_rule_tests_pass_with_full_coverage():
    report = run_tests([REPO / "rules"])
    assert report.ok, report.text
    assert report.coverage, "coverage was reported"
    for rules, (items, missing) in report.coverage.items():
        assert items > 0
        assert missing == [], f"{rules}: {missing}"


def test_coverage_merges_across_sets_from_any_working_directory(monkeypatch, tmp_path):
    # files imported through "../cycle4" must be the same files as cycle4's own
    monkeypatch.chdir(tmp_path)
    report = run_tests([REPO / "rules"])
    assert report.ok, report.text
    assert all(missing == [] for _, missing in report.coverage.values()), report.coverage
