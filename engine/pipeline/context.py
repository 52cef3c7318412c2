"""The working directory of a run: its layout, its lock, its state file and its logs.

Layout (``WORKDIR/``): ``run.json`` (`RunState`), ``plan.json`` (the dry-run plan made at the
start), ``facts.json`` (the dataset facts), ``images/`` (every image's FITS products and
record), ``products/`` (what the pipeline delivers, written by ``exportdata``), ``logs/`` (one log
per stage and ``run.log``), ``weblog/``. Every file is written atomically (a temporary file in the
same directory, then a rename), so a run killed at any moment leaves each file whole or absent.
One run at a time: ``WORKDIR/.almarules-run.lock`` is held with ``flock`` for the whole run (the
kernel releases it when a run is killed).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from almarules.engine.io import Busy, exclusive, write_atomic
from almarules.engine.pipeline.state import RunState, StageRun

STATE = "run.json"
PLAN = "plan.json"
FACTS = "facts.json"
LOCK = ".almarules-run.lock"
#: where the image tasks leave the weblog pictures they drew (`weblog.thumbs.predraw`)
PREDRAWN = ".weblog-pictures"


class WorkdirError(Exception):
    """A WORKDIR that cannot be used (another run holds it, it cannot be written, its state is
    from another dataset); the message says which and what to do."""


def now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Workdir:
    """Paths inside one WORKDIR."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.images = self.root / "images"
        self.products = self.root / "products"
        self.logs = self.root / "logs"
        self.weblog = self.root / "weblog"

    def rel(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    def stage_log(self, stage: StageRun) -> Path:
        return self.logs / f"{stage.index:02d}_{stage.name}.log"

    def load_state(self) -> Optional[RunState]:
        """The state of an earlier run here, or None (no run yet, or a state this version cannot read:
        then the run starts afresh)."""
        try:
            return RunState.model_validate_json((self.root / STATE).read_bytes())
        except (OSError, ValueError):
            return None

    def save_state(self, state: RunState) -> None:
        state.updated = now()
        write_atomic(self.root / STATE, state.to_json())


def prepare(root: Path) -> Workdir:
    """Create WORKDIR and its folders; refuse in one line a path that is not a writable directory."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise WorkdirError(f"{root} exists and is not a directory")
    try:
        for sub in ("", "images", "products", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".almarules-probe.", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise WorkdirError(f"cannot write in {root}: {(exc.strerror or str(exc)).lower()}") from None
    return Workdir(root)


@contextlib.contextmanager
def locked(wd: Workdir) -> Iterator[None]:
    """Hold WORKDIR's run lock; a second run on the same WORKDIR is refused at once."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive(wd.root / LOCK))
        except Busy:
            raise WorkdirError(f"another 'almarules run' is using {wd.root}; wait for it to finish "
                               f"(or stop it) and run again") from None
        yield
