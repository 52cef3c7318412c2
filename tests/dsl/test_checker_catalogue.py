"""A catalogue of broken rule files and exactly what the checker says about each.

Every file in ``broken/`` shows one kind of problem (multi-file cases live in their
own subdirectory, entered through the file named there). For each, the checker must
report exactly the findings listed in ``checker_catalogue_cases.py`` -- same count, file,
line, column, code, message and hint -- and never raise. Paths are relative to ``broken/``
(the tests chdir there).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from almarules.dsl.errors import Finding
from almarules.engine.evaluate.api import check_rules
from almarules.engine.cli.app import main
from checker_catalogue_cases import CASES  # tests/dsl/checker_catalogue_cases.py

BROKEN = Path(__file__).resolve().parent / "broken"
REPO = Path(__file__).resolve().parents[2]

CASE_IDS = [c[0] for c in CASES]


@pytest.fixture
def in_broken(monkeypatch):
    monkeypatch.chdir(BROKEN)
    return BROKEN


def _findings(entry: str) -> tuple[list[Finding], dict[str, str]]:
    rs, result = check_rules([entry])  # must never raise
    return result.findings, rs.sources


@pytest.mark.parametrize("entry, expected", CASES, ids=CASE_IDS)
def test_catalogue_findings(in_broken, entry, expected):
    findings, _ = _findings(entry)
    got = [(f.loc.file, f.loc.line, f.loc.column, f.code, f.message, f.hint) for f in findings]
    assert got == expected
    assert all(f.severity == "error" for f in findings)


@pytest.mark.parametrize("entry, expected", CASES, ids=CASE_IDS)
def test_catalogue_findings_render_with_location_and_caret(in_broken, entry, expected):
    findings, sources = _findings(entry)
    for f in findings:
        text = f.render(sources.get(f.loc.file))
        lines = text.splitlines()
        assert lines[0] == f"{f.loc.file}:{f.loc.line}:{f.loc.column}: error[{f.code}]: {f.message}"
        if f.loc.line > 0:
            caret = lines[2]
            assert re.fullmatch(r" *\^+", caret), text
            assert caret.index("^") == 4 + f.loc.column - 1  # under the reported column
        if f.hint:
            assert lines[-1] == f"    hint: {f.hint}"


def test_catalogue_lists_every_broken_file():
    """Each top-level file is an entry; each subdirectory is entered through one file."""
    entries = set(CASE_IDS)
    assert len(entries) == len(CASES), "an entry is listed twice"
    top = {p.name for p in BROKEN.glob("*.rules")}
    assert top == {e for e in entries if "/" not in e}
    subdirs = {p.name for p in BROKEN.iterdir() if p.is_dir()}
    assert subdirs == {e.split("/")[0] for e in entries if "/" in e}
    for e in entries:
        assert (BROKEN / e).is_file(), e


def test_catalogue_size_and_codes():
    assert len(CASES) >= 30
    assert all(expected for _, expected in CASES), "every broken file has at least one finding"
    codes = {f[3] for _, expected in CASES for f in expected}
    assert codes >= {
        "syntax", "unknown-name", "unknown-attribute", "unknown-kind", "derive-fact", "unknown-unit",
        "unit-mismatch", "type-mismatch", "unknown-function", "arity", "cycle", "conflict",
        "coverage-gap", "coverage-overlap", "coverage-outside", "bad-interval", "duplicate",
        "step-never-applies", "cascade-until", "unused", "import-missing", "import-cycle",
        "override-nothing", "never-true", "not-constant", "out-of-range", "collection-shape",
        "score-start", "encoding", "bad-repeat", "conflicting-clauses",
    }


@pytest.mark.parametrize("entry", [c[0] for c in CASES if "/" not in c[0]])
def test_truncated_broken_files_never_crash_the_checker(tmp_path, monkeypatch, entry):
    """Every prefix (by lines) of a broken file is checked without an exception."""
    data = (BROKEN / entry).read_bytes()
    lines = data.splitlines(keepends=True)
    monkeypatch.chdir(tmp_path)
    for n in range(len(lines) + 1):
        for cut in (b"".join(lines[:n]), b"".join(lines[:n]).rstrip(b"\n")):
            (tmp_path / "cut.rules").write_bytes(cut)
            _, result = check_rules(["cut.rules"])
            for f in result.findings:
                assert f.loc.file == "cut.rules"


# ---------------------------------------------------------------- the command line
def _alone(tmp_path: Path, monkeypatch, *entries: str) -> None:
    """Copy broken files into a scratch directory of their own and chdir there: the CLI checks
    a file inside a directory of .rules files as part of that rule set, and ``broken/`` is a
    catalogue of independent files, not a set."""
    for entry in entries:
        src = BROKEN / entry
        if "/" in entry:  # a multi-file case: its own directory is its rule set
            shutil.copytree(src.parent, tmp_path / src.parent.name)
        else:
            (tmp_path / entry).write_bytes(src.read_bytes())
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("entry,checked", [
    ("unknown_name.rules", "unknown_name.rules"), ("unterminated_string.rules", "unterminated_string.rules"),
    ("table_gap.rules", "table_gap.rules"),
    # a file of a set is checked in its set and only its own findings are shown: the cycle is found at cycle_b
    ("circular_import/cycle_a.rules", "circular_import/cycle_b.rules")])
def test_cli_check_broken_file_exits_1_with_location_and_caret(tmp_path, monkeypatch, capsys, entry, checked):
    expected = dict(CASES)[entry]
    _alone(tmp_path, monkeypatch, entry)
    assert main(["check", checked]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    for file, line, column, code, message, _hint in expected:
        head = f"{file}:{line}:{column}: error[{code}]: {message}"
        assert head in lines
        caret = lines[lines.index(head) + 2]
        assert re.fullmatch(r" *\^+", caret) and caret.index("^") == 4 + column - 1
    n = len(expected)
    assert lines[-1] == f"{n} finding{'s' if n != 1 else ''} in 1 rule set"


def test_cli_check_several_files_reports_each(tmp_path, monkeypatch, capsys):
    for sub, entry in (("a", "table_overlap.rules"), ("b", "unused_param.rules")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / entry).write_bytes((BROKEN / entry).read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main(["check", "a/table_overlap.rules", "b/unused_param.rules"]) == 1
    out = capsys.readouterr().out
    assert "a/table_overlap.rules:3:5: error[coverage-overlap]:" in out
    assert "b/unused_param.rules:1:1: error[unused]: parameter 'robust' is never used" in out
    assert out.splitlines()[-1] == "2 findings in 2 rule sets"


def test_cli_check_file_of_a_rule_set_is_checked_in_its_set(capsys):
    """threshold.rules uses names that other cycle4 files declare (the image collection, tables):
    checked alone it had 15 findings; as part of its set it has none."""
    path = str(REPO / "rules" / "alma" / "cycle4" / "threshold.rules")
    assert main(["check", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 1 rule set") and "no findings" in out


def test_cli_check_file_in_a_set_reports_only_that_files_findings(tmp_path, capsys):
    """Two files of one set, each with a problem: checking one file names only its own."""
    (tmp_path / "a.rules").write_text("param p = 1\nderive dataset.a = p + nosuch\n")
    (tmp_path / "b.rules").write_text("derive dataset.b = dataset.a + 1 GHz\n")
    assert main(["check", str(tmp_path / "b.rules")]) == 1
    out = capsys.readouterr().out
    *shown, last = out.splitlines()
    assert "b.rules:1:20: error[unit-mismatch]" in shown[0]
    assert not any("nosuch" in line or "a.rules" in line for line in shown)
    assert last == f"1 finding in 1 rule set; 1 more in other files of {tmp_path} (check the directory to see them)"
    assert main(["check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "2 findings in 1 rule set"


def test_cli_check_clean_file_says_its_set_has_findings_elsewhere(tmp_path, monkeypatch, capsys):
    """'ok' for one file must not read as 'the set is fine' when other files of it have findings."""
    _alone(tmp_path, monkeypatch, "circular_import/cycle_a.rules")
    assert main(["check", "circular_import/cycle_a.rules"]) == 0
    assert capsys.readouterr().out == ("ok: 1 rule set, 2 files, no findings in the files given; "
                                       "1 more in other files of circular_import (check the directory to see them)\n")


def test_cli_check_nonexistent_path_exits_2_with_one_line(capsys):
    assert main(["check", "/nonexistent"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "almarules: no such file or directory: /nonexistent\n"


def test_cli_check_nonexistent_path_in_a_process_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "almarules", "check", "/nonexistent"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == ["almarules: no such file or directory: /nonexistent"]


def test_cli_check_shipped_rules_is_clean(capsys):
    assert main(["check", str(REPO / "rules")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "no findings" in out
