"""Located findings about rule files, and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from almarules.dsl.ast import Loc


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in a rule file: where, which kind, what."""

    loc: Loc
    code: str
    message: str
    severity: str = "error"  # or "warning"
    hint: Optional[str] = field(default=None, compare=False)

    def render(self, source: Optional[str] = None) -> str:
        """``file:line:col: error[code]: message`` and a caret snippet."""
        head = f"{self.loc}: {self.severity}[{self.code}]: {self.message}"
        lines = [head]
        if source is not None and self.loc.line > 0:
            text_lines = source.splitlines()
            if self.loc.line <= len(text_lines):
                text = text_lines[self.loc.line - 1].expandtabs(8)
                start = max(self.loc.column - 1, 0)
                width = 1
                if self.loc.end_line == self.loc.line and self.loc.end_column > self.loc.column:
                    width = self.loc.end_column - self.loc.column
                text, start, width = _window(*_printable(text, start, width))
                lines.append(f"    {text}")
                lines.append("    " + " " * start + "^" * width)
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


SNIPPET_WIDTH = 120  # characters of a source line shown under a finding


def _window(text: str, start: int, width: int) -> tuple[str, int, int]:
    """At most SNIPPET_WIDTH characters of a long line around the caret (`...` marks a cut);
    the caret's new start and width."""
    if len(text) <= SNIPPET_WIDTH:
        return text, start, width
    lo = max(0, min(start - SNIPPET_WIDTH // 3, len(text) - SNIPPET_WIDTH))
    cut = text[lo:lo + SNIPPET_WIDTH]
    head = "..." if lo > 0 else ""
    tail = "..." if lo + SNIPPET_WIDTH < len(text) else ""
    start = start - lo + len(head)
    width = max(1, min(width, SNIPPET_WIDTH - (start - len(head))))
    return head + cut + tail, start, width


def _shown(ch: str) -> str:
    return ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """`text` with every character that is not printable (an ESC of a terminal sequence, line and
    paragraph separators, NUL, ...) written as its escape (``\\x1b``): a message or snippet made
    from a user's file stays one line of visible text and cannot drive the terminal."""
    return text if text.isprintable() else "".join(map(_shown, text))


def _printable(text: str, start: int, width: int) -> tuple[str, int, int]:
    """`printable` (text), with a caret's start and width moved to match."""
    if text.isprintable():
        return text, start, width
    out: list[str] = []
    pos: list[int] = []  # where each original character starts in the output
    n = 0
    for ch in text:
        pos.append(n)
        out.append(_shown(ch))
        n += len(out[-1])
    pos.append(n)
    end = min(start + width, len(text))
    new_start = pos[min(start, len(text))]
    return "".join(out), new_start, max(1, pos[end] - new_start)


def finding_order(f: Finding) -> tuple:
    """Findings in reading order: file, line, column, then code and message."""
    return (f.loc.file, f.loc.line, f.loc.column, f.code, f.message)


class RuleError(Exception):
    """Raised when rule files cannot be loaded; carries every finding."""

    def __init__(self, findings: list[Finding], sources: Optional[dict[str, str]] = None):
        self.findings = sorted(findings, key=finding_order)
        self.sources = sources or {}
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(f.render(self.sources.get(f.loc.file)) for f in self.findings)

