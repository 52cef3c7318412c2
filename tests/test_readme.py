"""The README's figures are what the commands print: its `diff` excerpt, line by line."""

from __future__ import annotations

import re

from almarules.engine.cli.app import main

from conftest import REPO


def _block(text: str, first_line: str) -> list[str]:
    start = text.index("```\n" + first_line) + 4
    return text[start:text.index("```", start)].splitlines()


def test_the_readme_diff_excerpt_is_the_diff_of_the_shipped_examples(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    readme = (REPO / "README.md").read_text()
    shown = _block(readme, "diff rules/alma/cycle4 -> rules/alma/current")
    assert main(["diff", "--base", "rules/alma/cycle4", "--new", "rules/alma/current", "--corpus", "examples"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for line in shown:
        if line.strip() in ("", "..."):
            continue
        assert line in printed, f"README line not printed by diff: {line!r}"
    assert re.search(r"\d+ datasets change, \d+ values in \d+ attributes", "\n".join(shown))
