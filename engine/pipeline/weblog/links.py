"""Where things live in the weblog: page paths of stages, images and rule files, and the links
from a rule location (``rules/alma/cycle4/threshold.rules:74:1``) to its line in a rule page.

All paths are relative to ``WORKDIR/weblog/``; a page in a subdirectory prefixes them with
``../`` (its `root`). Page names are deterministic: the same run gives the same names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import almarules

#: a rule location anywhere in a text: path ending in .rules, line, optional column
RULE_AT = re.compile(r"(?P<path>[\w./\\-]*\.rules):(?P<line>\d+)(?::(?P<col>\d+))?")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A file-name-safe form of `text` (image keys, stage names): runs of other characters -> '_'."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def stage_page(index: int, name: str) -> str:
    """The page of the stage at recipe position `index` (from 1)."""
    return f"stages/{index:02d}_{slug(name)}.html"


def image_page(key: str) -> str:
    """The page of the image with key `key` (a key that is not file-name-safe gets a short hash
    of itself, so two keys never share a page)."""
    name = slug(key)
    if name != key:
        name += "-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"images/{name}.html"


@dataclass(frozen=True)
class RuleFile:
    """One rule file shown as a page: its path as the run named it, where it was found, its page."""

    shown: str  # as the rule set names it, e.g. rules/alma/cycle4/threshold.rules
    path: Path  # resolved on this machine
    page: str  # e.g. rules/threshold.rules.html


def _candidates(entry: str, workdir: Path) -> list[Path]:
    """Where a rules path given to the run may be: as given, beside WORKDIR, in the installed package."""
    p = Path(entry)
    if p.is_absolute():
        return [p]
    package_root = Path(almarules.__file__).resolve().parent
    return [Path.cwd() / p, workdir / p, workdir.parent / p, package_root / p]


def _expand(entry: str, workdir: Path) -> list[tuple[str, Path]]:
    """(shown path, resolved path) of each .rules file an entry of RunState.rules names."""
    for cand in _candidates(entry, workdir):
        if cand.is_dir():
            return [(str(Path(entry) / f.name), f.resolve()) for f in sorted(cand.glob("*.rules"))]
        if cand.is_file():
            return [(entry, cand.resolve())]
    return []


class RuleLinks:
    """The rule files of a run and their pages; resolves rule locations to ``page#Lnn`` links."""

    def __init__(self, entries: list[str], workdir: Path) -> None:
        found: list[tuple[str, Path]] = []
        for entry in entries:
            found += [f for f in _expand(entry, workdir) if f[1] not in {p for _, p in found}]
        names = [p.name for _, p in found]
        self.files: list[RuleFile] = []
        for shown, path in found:
            name = path.name if names.count(path.name) == 1 else f"{slug(path.parent.name)}__{path.name}"
            self.files.append(RuleFile(shown=shown, path=path, page=f"rules/{name}.html"))

    def file_for(self, path_text: str) -> Optional[RuleFile]:
        """The rule file a location's path names: the same shown path, else the one whose path
        ends with the same components (``qa.rules`` or ``cycle4/qa.rules``)."""
        parts = Path(path_text.replace("\\", "/")).parts
        exact = [f for f in self.files if f.shown == path_text]
        if exact:
            return exact[0]
        tail = [f for f in self.files if f.path.parts[-len(parts):] == parts]
        return tail[0] if len(tail) == 1 else None

    def href(self, at: Optional[str]) -> Optional[str]:
        """``rules/x.rules.html#L74`` for the first rule location in `at`, or None."""
        if not at:
            return None
        m = RULE_AT.search(at)
        if m is None:
            return None
        f = self.file_for(m.group("path"))
        return None if f is None else f"{f.page}#L{int(m.group('line'))}"
