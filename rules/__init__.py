"""The shipped rule sets (``rules/alma/cycle4`` ...), as package data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str = "alma/cycle4") -> Path:
    """Filesystem path of a shipped rule set, e.g. ``path("alma/cycle4")``."""
    return Path(str(resources.files("almarules.rules").joinpath(name)))
