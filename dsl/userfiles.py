"""Reading files users give (summaries, intents, cont.dat, rule files, rule tests): regular files
only, bounded in size, invalid UTF-8 located. Upstream of the engine so the rule loader uses it too."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UserFileError(OSError):
    """A user file that is not read: not a regular file, too large, unreadable or not UTF-8.

    ``str(err)`` is one line naming the file (an `OSError`, so the CLI reports it with exit 2)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _utf8_error(source: str, data: bytes, offset: int, what: str) -> UserFileError:
    """The error for invalid UTF-8 at byte `offset`: line and column (characters) of the bad byte."""
    head = data[:offset]
    line = head.count(b"\n") + 1
    column = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
    return UserFileError(f"{source}:{line}:{column}: invalid UTF-8 (byte 0x{data[offset]:02x}): "
                         f"{what} must be UTF-8 text")


def read_user_bytes(path: str | Path, limit: int, what: str = "the file") -> bytes:
    """The bytes of the regular file `path`, of at most `limit` bytes.

    A FIFO, device, socket or directory is refused after `os.stat`, before it is opened (so a
    FIFO never blocks and ``/dev/zero`` is never read); the file is opened non-blocking and
    checked again with `os.fstat`, and at most ``limit + 1`` bytes are read, so a file that
    grows meanwhile is refused too. Raises `UserFileError` (one line naming `path`).
    """
    source = str(path)
    check_user_file(path, limit, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise UserFileError(f"{source}: cannot read {what}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        _check_regular(source, os.fstat(fd), limit, what)  # the file opened is the file checked
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise UserFileError(f"{source}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UserFileError(f"{source}: {what} grew past {limit} bytes while read (the limit)")
    return data


def check_user_file(path: str | Path, limit: int, what: str = "the file") -> None:
    """Refuse `path` unless it is a regular file of at most `limit` bytes (`os.stat` only: the
    file is not opened). Raises `UserFileError` (one line naming `path`)."""
    source = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserFileError(f"{source}: file not found") from None
    except OSError as exc:
        raise UserFileError(f"{source}: cannot read {what}: {exc.strerror or exc}") from None
    _check_regular(source, st, limit, what)


def _check_regular(source: str, st: os.stat_result, limit: int, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise UserFileError(f"{source}: is a directory, not {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UserFileError(f"{source}: not a regular file ({_file_kind(st.st_mode)}): {what} must be a "
                            f"regular file")
    if st.st_size > limit:
        raise UserFileError(f"{source}: {what} has {st.st_size} bytes, more than the limit of {limit} "
                            f"({limit / 2 ** 20:g} MiB)")


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def read_user_text(path: str | Path, limit: int, what: str = "the file") -> str:
    """The UTF-8 text of the regular file `path` (see `read_user_bytes`); a leading BOM is dropped.

    Invalid UTF-8 raises `UserFileError` naming the line and column of the bad byte."""
    data = read_user_bytes(path, limit, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _utf8_error(str(path), data, exc.start, what) from None
