"""Output at the edges: atomic writes (never a half-written file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def write_bytes_atomic(path: str | Path, writer: Callable[[BinaryIO], None]) -> None:
    """Create `path` via ``writer(fh)`` on a temporary file in the same directory, fsync, rename.

    On any failure the temporary file is removed and an existing `path` is left untouched. The
    file gets the permissions a plain ``open(path, "wb")`` would give (mode 0o666 & ~umask).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (see `write_bytes_atomic`)."""
    write_bytes_atomic(path, lambda fh: fh.write(text.encode("utf-8")))
