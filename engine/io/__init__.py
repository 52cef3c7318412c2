"""The edges: atomic writes (never a half-written file), safe reads of user files
(`almarules.dsl.userfiles`, re-exported here), and where independent tasks run (`parallel`: this
process or Dask). Imports: dsl only (the lowest engine layer)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from almarules.dsl.userfiles import (UserFileError, check_user_file, read_user_bytes,  # noqa: F401
                                      read_user_text)


#: Temporary files of our atomic writes: ``.<target name>.<8 random characters>.tmp`` (mkstemp's).
TEMP_PATTERN = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp$")


class WriteError(OSError):
    """An output file that could not be written (disk full, quota, read-only, permissions, I/O):
    ``str(err)`` is one line naming the file, e.g. ``no space left on device writing out/x.fits``."""

    def __init__(self, path: str | Path, cause: OSError):
        super().__init__(cause.errno, cause.strerror)
        self.path, self.cause = str(path), cause
        what = (cause.strerror or str(cause) or type(cause).__name__).lower()
        self.message = f"{what} writing {path}"

    def __str__(self) -> str:
        return self.message


def write_error(path: str | Path, exc: OSError) -> WriteError:
    """`exc` raised while writing `path`, as a one-line `WriteError` (kept if it already is one)."""
    return exc if isinstance(exc, WriteError) else WriteError(path, exc)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write that becomes `path` only when the block ends without an error: a
    temporary file in the same directory, fsynced and renamed.

    On any failure the temporary file is removed and an existing `path` is left untouched; an
    `OSError` (disk full, read-only, ...) becomes a `WriteError` naming `path`. The file gets the
    permissions a plain ``open(path, "wb")`` would give (mode 0o666 & ~umask).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise write_error(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise write_error(target, exc) from None
        raise


def write_bytes_atomic(path: str | Path, writer: Callable[[BinaryIO], None]) -> None:
    """Create `path` via ``writer(fh)`` atomically (see `atomic_file`)."""
    with atomic_file(path) as fh:
        writer(fh)


def write_atomic(path: str | Path, text: str | bytes) -> None:
    """Write `text` (str as UTF-8, or bytes) to `path` atomically (see `write_bytes_atomic`)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    write_bytes_atomic(path, lambda fh: fh.write(data))


class Busy(Exception):
    """Another process holds the lock file (`exclusive`)."""


@contextlib.contextmanager
def exclusive(path: str | Path, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on `path` (created) for the block; `Busy` at once when another
    process holds it. The kernel releases it when the holder is killed; `remove` deletes the file
    at the end (while still held). An OSError creating it propagates."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(str(path)) from None
        try:
            yield
        finally:
            if remove:
                Path(path).unlink(missing_ok=True)
    finally:
        os.close(fd)
