"""Opening casacore tables read-only without waiting on other processes, reading them with
errors that name the table and column, and closing them.

`open_readonly` returns a `ReadTable`: the casacore table behind a thin proxy whose every method
turns casacore's RuntimeError (a truncated or damaged data file, an unreadable cell, ...) into a
`TableAccessError` whose one-line message names the table (its path: the MS, or MS/SUBTABLE),
what it is ("main table", "FIELD subtable") and the column being read.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

__all__ = ["TableAccessError", "ReadTable", "open_readonly", "close_all"]

# methods whose first argument is a column name
_COLUMN_METHODS = frozenset({
    "getcol", "getcolnp", "getcell", "getcellnp", "getcolslice", "getcolslicenp", "getcellslice",
    "getcellslicenp", "getvarcol", "getcolkeywords", "getcolkeyword", "getcoldesc", "iscelldefined",
    "isscalarcol", "isvarcol", "getcolshapestring"})
# methods that return another table (a selection of rows), wrapped in turn
_TABLE_METHODS = frozenset({"selectrows", "query", "sort", "select"})
# what a casacore message means, for the common damaged-file cases
_HINTS = (("incorrect number of bytes read", "a data file of the table is truncated or damaged"),
          ("readBlock", "a data file of the table is truncated or damaged"),
          ("BucketFile", "a data file of the table is truncated or damaged"),
          ("exceeds nr of buckets", "a data file of the table is truncated or damaged"),
          # reading past the end of a cut data file makes casacore try to extend it
          ("is not writable", "casacore tried to extend a data file while reading it: it is probably truncated"),
          ("mismatch in #row", "the table's files disagree on the number of rows"))


class TableAccessError(Exception):
    """A table that cannot be opened, read-locked or read; the message names it (and the column)."""


def _reason(exc: BaseException) -> str:
    """casacore's message on one line, with what it means when that is known."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    for needle, hint in _HINTS:
        if needle in text:
            return f"{text} ({hint})"
    return text


class ReadTable:
    """A read-only casacore table whose read errors are `TableAccessError`s naming the table
    `name` (a path), `what` it is ("main table", "FIELD subtable") and the column.

    Every attribute of the casacore table is available; methods are wrapped, and those that
    return a row selection (`selectrows`, `query`, ...) return a `ReadTable` again.
    """

    def __init__(self, table: Any, name: str, what: str):
        self._t = table
        self.name = name
        self.what = what

    @property
    def raw(self) -> Any:
        """The casacore table itself (errors unconverted)."""
        return self._t

    def _wrap(self, method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                out = fn(*args, **kwargs)
            except RuntimeError as exc:
                column: Optional[str] = None
                if method in _COLUMN_METHODS:
                    column = args[0] if args else kwargs.get("columnname")
                raise TableAccessError(self._message(method, column, exc)) from None
            if method in _TABLE_METHODS:
                return ReadTable(out, self.name, self.what)
            return out

        return call

    def _message(self, method: str, column: Optional[str], exc: BaseException) -> str:
        if column is not None:
            return f"{self.name}: cannot read column {column} of the {self.what}: {_reason(exc)}"
        return f"{self.name}: cannot read the {self.what} ({method}): {_reason(exc)}"

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._t, attr)
        if callable(value) and not attr.startswith("_"):
            return self._wrap(attr, value)
        return value

    def __len__(self) -> int:
        return self.nrows()

    def __getitem__(self, key: Any) -> Any:
        """Rows by index or slice (dicts of column values), as casacore's table gives them."""
        return self._wrap("row access", self._t.__getitem__)(key)

    def __iter__(self) -> Iterator[dict]:
        for row in range(self.nrows()):
            yield self[row]


def open_readonly(name: str, what: str) -> ReadTable:
    """Open table `name` read-only: opening never waits ("usernoread"), then one read-lock attempt,
    so a table locked by another process is an error at once, not a hang. `what` names it in
    messages ("main table", "FIELD subtable")."""
    from almarules.engine.ms.measures import setup_measures

    setup_measures()  # before casacore reads its resource files (once per process; cheap)
    from casacore.tables import table

    try:
        t = table(name, ack=False, readonly=True, lockoptions="usernoread")
    except RuntimeError as exc:
        raise TableAccessError(f"{name}: cannot open the {what}: {_reason(exc)}") from None
    t.lock(False, 1)
    if not t.haslock(False):
        close_all([t])
        raise TableAccessError(f"{name}: the {what} is locked by another process; try again when it is done")
    return ReadTable(t, name, what)


def close_all(tables: Iterable[Any]) -> None:
    """Unlock and close tables (casacore tables or `ReadTable`s), ignoring ones already closed."""
    for t in tables:
        raw = t.raw if isinstance(t, ReadTable) else t
        try:
            raw.unlock()
            raw.close()
        except RuntimeError:
            pass
