"""What a person watching ``almarules run`` sees: one live line per stage on a terminal (what runs,
items done of total, elapsed time, the time left from the plan's cost model), one line per event
otherwise; nothing but warnings with ``--quiet``. Everything also goes to ``WORKDIR/logs/run.log``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional, TextIO


def duration(seconds: Optional[float]) -> str:
    """'0.4 s', '12 s', '3 min 5 s', '2 h 01 min'."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Progress:
    """Stage lines on stderr and the run log."""

    def __init__(self, log: Callable[[str], None], quiet: bool = False, stream: TextIO = sys.stderr):
        self.log = log
        self.quiet = quiet
        self.stream = stream
        self.live = stream.isatty() and not quiet
        self._line = ""
        self._t0 = time.monotonic()
        self._stage = ""
        self._estimate: Optional[float] = None
        self._total = 0

    def _write(self, text: str, final: bool) -> None:
        if self.quiet:
            return
        if self.live:
            pad = max(0, len(self._line) - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self._line = "" if final else text
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def stage(self, label: str, total: int = 0, estimate: Optional[float] = None) -> None:
        """A stage starts: `total` items, `estimate` seconds from the plan."""
        self._stage, self._total, self._estimate = label, total, estimate
        self._t0 = time.monotonic()
        self.log(f"start {label}")
        self._write(self._status(0), final=not self.live)

    def _status(self, done: int) -> str:
        elapsed = time.monotonic() - self._t0
        text = f"{self._stage}"
        if self._total:
            text += f": {done}/{self._total}"
        text += f", {duration(elapsed)}"
        if self._estimate and done < max(self._total, 1):
            left = max(self._estimate - elapsed, 0.0)
            text += f", about {duration(left)} left (plan)"
        return text

    def item(self, done: int, what: str) -> None:
        """An item of the current stage finished."""
        self.log(f"{self._stage}: {what}")
        if self.live:
            self._write(self._status(done) + f" — {what}", final=False)
        else:
            self._write(f"{self._stage} [{done}/{self._total}] {what}", final=True)

    def end(self, summary: str) -> None:
        """The stage ended: the live line goes (the runner prints the stage's line)."""
        self.log(f"end {self._stage}: {summary}")
        if self.live and self._line:
            self.stream.write("\r" + " " * len(self._line) + "\r")
            self._line = ""

    def say(self, text: str) -> None:
        """A line for people (kept in quiet mode only when it is a WARNING)."""
        self.log(text)
        if self.quiet and not text.startswith(("WARNING", "ERROR")):
            return
        if self.live and self._line:
            self.stream.write("\r" + " " * len(self._line) + "\r")
            self._line = ""
        self.stream.write(text + "\n")
        self.stream.flush()


def file_logger(path: Path) -> Callable[[str], None]:
    """Append timestamped lines to `path`."""
    from almarules.engine.pipeline.context import now

    path.parent.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{now()} {text}\n")
    return log
