"""Opening casacore tables read-only without waiting on other processes, and closing them."""

from __future__ import annotations

from typing import Any, Iterable


class TableAccessError(Exception):
    """A table that cannot be opened or read-locked; the message names it."""


def open_readonly(name: str, what: str) -> Any:
    """Open table `name` read-only: opening never waits ("usernoread"), then one read-lock attempt,
    so a table locked by another process is an error at once, not a hang. `what` names it in
    messages ("main table", "FIELD subtable")."""
    from casacore.tables import table

    try:
        t = table(name, ack=False, readonly=True, lockoptions="usernoread")
    except RuntimeError as exc:
        raise TableAccessError(f"{name}: cannot open the {what}: {str(exc).splitlines()[0]}") from None
    t.lock(False, 1)
    if not t.haslock(False):
        close_all([t])
        raise TableAccessError(f"{name}: the {what} is locked by another process; try again when it is done")
    return t


def close_all(tables: Iterable[Any]) -> None:
    """Unlock and close tables, ignoring ones already closed."""
    for t in tables:
        try:
            t.unlock()
            t.close()
        except RuntimeError:
            pass
