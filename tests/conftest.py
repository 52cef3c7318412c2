"""Shared fixtures: the repository root, the shipped cycle4 program, the example summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cycle4():
    from almarules.engine.api import load_program

    return load_program([REPO / "rules" / "alma" / "cycle4"])


@pytest.fixture(scope="session")
def cycle5():
    from almarules.engine.api import load_program

    return load_program([REPO / "rules" / "alma" / "cycle5"])
