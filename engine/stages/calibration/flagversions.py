"""Flag versions of a working Measurement Set, stored as CASA's ``flagmanager`` stores them.

Layout (measured on CASA 6.7's ``flagmanager(mode='save')``): beside ``<ms>`` a directory
``<ms>.flagversions/`` holding

* ``FLAG_VERSION_LIST``: one line per version, ``name : comment``, in the order they were saved;
* one casacore table ``flags.<name>`` per version with as many rows as the MS and two columns,
  ``FLAG`` (Bool array, ndim 2, (nchan, ncorr) per row, in a ``TiledShapeStMan`` of group
  ``TiledFlag``) and ``FLAG_ROW`` (Bool scalar, ``StandardStMan``); no table or column keywords.

CASA lists and restores versions written here, and these functions read CASA's. Writes are
atomic: a version table is built under a temporary name in the same directory and renamed, the
list is rewritten through a temporary file. `restore` writes FLAG and FLAG_ROW of the MS in
place (the working copy), chunk by chunk.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from almarules.engine.io import write_atomic

__all__ = ["FlagVersionError", "versions_dir", "versions", "save", "restore", "delete"]

LIST_FILE = "FLAG_VERSION_LIST"
#: rows copied per chunk (FLAG of 10^5 rows x 4k channels x 4 corr = 1.6 GB worst case; typical ALMA far less)
CHUNK_ROWS = 100_000
_NAME = re.compile(r"^[A-Za-z0-9_.+\-]+$")


class FlagVersionError(ValueError):
    """A flag version that does not exist, a bad name, or a version that does not fit the MS."""


def versions_dir(ms: str | Path) -> Path:
    """``<ms>.flagversions`` beside the MS (trailing slashes ignored)."""
    return Path(str(ms).rstrip("/") + ".flagversions")


def versions(ms: str | Path) -> list[tuple[str, str]]:
    """The saved versions as (name, comment), oldest first; [] when there are none."""
    path = versions_dir(ms) / LIST_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        name, _, comment = line.partition(" : ")
        out.append((name.strip(), comment.strip()))
    return out


def _write_list(ms: str | Path, entries: list[tuple[str, str]]) -> None:
    write_atomic(versions_dir(ms) / LIST_FILE, "".join(f"{n} : {c}\n" for n, c in entries))


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise FlagVersionError(f"bad flag version name {name!r}: use letters, digits and _ . + - only")


def _shape_runs(tab, start: int, nrow: int) -> Iterator[tuple[int, int]]:
    """(first row, row count) of the runs of rows in [start, start+nrow) whose FLAG cells have one shape."""
    shapes = _shapes(tab, start, nrow)
    run = 0
    for i in range(1, nrow + 1):
        if i == nrow or shapes[i] != shapes[run]:
            yield start + run, i - run
            run = i


def _shapes(tab, start: int, nrow: int) -> list[str]:
    """The FLAG cell shapes of rows [start, start+nrow) (casacore gives one string for a fixed-shape column)."""
    shapes = tab.getcolshapestring("FLAG", start, nrow)
    return shapes * nrow if len(shapes) == 1 else shapes


def _chunks(nrows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, nrows, CHUNK_ROWS):
        yield start, min(CHUNK_ROWS, nrows - start)


def _copy_flags(src, dst) -> None:
    """FLAG and FLAG_ROW of every row of table `src` into table `dst` (same row count)."""
    for start, n in _chunks(src.nrows()):
        for first, count in _shape_runs(src, start, n):
            dst.putcol("FLAG", src.getcol("FLAG", first, count), first, count)
        dst.putcol("FLAG_ROW", src.getcol("FLAG_ROW", start, n), start, n)


def save(ms: str | Path, name: str, comment: str = "") -> Path:
    """Save the MS's FLAG and FLAG_ROW as version `name` (replacing a version of that name, whose
    place in the list is kept); the version table's path."""
    from casacore.tables import makearrcoldesc, makescacoldesc, maketabdesc, table

    _check_name(name)
    root = versions_dir(ms)
    root.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".flags.{name}.", suffix=".tmp", dir=root))
    shutil.rmtree(tmp)
    try:
        desc = maketabdesc([
            makearrcoldesc("FLAG", False, ndim=2, datamanagertype="TiledShapeStMan", datamanagergroup="TiledFlag"),
            makescacoldesc("FLAG_ROW", False, datamanagertype="StandardStMan", datamanagergroup="StandardStMan")])
        with table(str(ms), ack=False) as src:
            with table(str(tmp), desc, nrow=src.nrows(), ack=False) as dst:
                _copy_flags(src, dst)
        _replace_dir(tmp, root / f"flags.{name}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    entries = [(n, c) for n, c in versions(ms)]
    if name in (n for n, _ in entries):
        entries = [(n, comment if n == name else c) for n, c in entries]
    else:
        entries.append((name, comment))
    _write_list(ms, entries)
    return root / f"flags.{name}"


def _replace_dir(new: Path, target: Path) -> None:
    """Rename directory `new` to `target`, an existing `target` being moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _version_table(ms: str | Path, name: str) -> Path:
    path = versions_dir(ms) / f"flags.{name}"
    if name not in (n for n, _ in versions(ms)) or not path.is_dir():
        known = ", ".join(n for n, _ in versions(ms)) or "none"
        raise FlagVersionError(f"no flag version {name!r} of {ms} (saved: {known})")
    return path


def restore(ms: str | Path, name: str) -> None:
    """Set the MS's FLAG and FLAG_ROW to those saved as version `name` (CASA's merge='replace')."""
    from casacore.tables import table

    path = _version_table(ms, name)
    with table(str(path), ack=False) as src, table(str(ms), readonly=False, ack=False) as dst:
        if src.nrows() != dst.nrows():
            raise FlagVersionError(f"flag version {name!r} has {src.nrows()} rows, {ms} has {dst.nrows()}")
        for start, n in _chunks(src.nrows()):
            for first, count in _shape_runs(src, start, n):
                have = _shapes(src, first, 1)[0]
                bad = [i for i, s in enumerate(_shapes(dst, first, count)) if s != have]
                if bad:
                    raise FlagVersionError(f"flag version {name!r} row {first + bad[0]}: FLAG shape {have} "
                                           "does not match the MS's")
                dst.putcol("FLAG", src.getcol("FLAG", first, count), first, count)
            dst.putcol("FLAG_ROW", np.asarray(src.getcol("FLAG_ROW", start, n), dtype=bool), start, n)


def delete(ms: str | Path, name: str) -> None:
    """Remove version `name` (its table and its line in the list)."""
    path = _version_table(ms, name)
    _write_list(ms, [(n, c) for n, c in versions(ms) if n != name])
    shutil.rmtree(path)
