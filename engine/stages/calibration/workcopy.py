"""The working copy of an input Measurement Set in WORKDIR: calibration writes only there (FLAG,
CORRECTED_DATA, MODEL_DATA), never into the input.

A copy is made in a temporary directory beside its final place and renamed when complete, with a
marker file naming the input and its identity (`engine.pipeline.inputs.ms_digests`); an existing
copy is reused only when its marker matches the input as it is now. The flag state of the input
is kept as the flag version ``Original`` so that a re-run of the calibration starts from it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from almarules.engine.io import write_atomic
from almarules.engine.stages.calibration.visdata import open_table

MARKER = ".almarules-copy.json"


def copy_path(workdir: Path, source: Path) -> Path:
    """Where the working copy of `source` lives: WORKDIR/calibrated/<name>."""
    return Path(workdir) / "calibrated" / Path(source).name


def current_copy(dest: Path, source: Path, identity: str) -> bool:
    """`dest` is a complete copy of `source` as identified by `identity`."""
    try:
        marker = json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("source") == str(Path(source).resolve()) and marker.get("identity") == identity


def make_copy(source: Path, dest: Path, identity: str, prepare: Optional[Callable[[Path], None]] = None,
              blank: Sequence[str] = ()) -> Path:
    """Copy the MS `source` to `dest` (replacing an out-of-date copy), atomically; returns `dest`.
    `prepare(path)` runs on the complete copy before it is marked and renamed into place (a copy
    that is interrupted while it is prepared is never taken for a finished one). `blank`: files of
    the MS (paths relative to it: tiled storage managers' data files, `tiled_data_files`) made as
    sparse files of zeros of the same size instead of copied -- the columns they hold read as 0
    until `prepare` writes them."""
    source, dest = Path(source), Path(dest)
    if current_copy(dest, source, identity):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        shutil.rmtree(tmp)
        skip = {str((source / b).resolve()) for b in blank}

        def copy(src: str, dst: str) -> str:
            if str(Path(src).resolve()) in skip:
                with open(dst, "wb") as fh:
                    fh.truncate(Path(src).stat().st_size)
                return dst
            return shutil.copy2(src, dst)

        shutil.copytree(source, tmp, copy_function=copy)  # lock files too: some MSs keep their true row counts only there
        for f in tmp.rglob("*"):
            if f.is_file():
                f.chmod(f.stat().st_mode | 0o200)
        if prepare is not None:
            prepare(tmp)
        write_atomic(tmp / MARKER, json.dumps({"source": str(source.resolve()), "identity": identity}) + "\n")
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        versions = dest.with_name(dest.name + ".flagversions")
        shutil.rmtree(versions, ignore_errors=True)  # versions of an older copy do not apply
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


#: storage managers whose column data live in separate files (table.f<N>_TSM<k>), the rest of the
#: manager (its index) in table.f<N>
TILED = ("TiledShapeStMan", "TiledColumnStMan", "TiledCellStMan")


def tiled_data_files(ms: Path, columns: Sequence[str]) -> list[str]:
    """The data files (relative to the MS) of those of `columns` of the main table that a tiled
    storage manager holds alone (no other column in the manager); [] for the others."""
    t = open_table(Path(ms))
    try:
        info = t.getdminfo()
        out = []
        for dm in info.values():
            cols = list(dm.get("COLUMNS", []))
            if dm.get("TYPE") in TILED and len(cols) == 1 and cols[0] in columns:
                out += sorted(p.name for p in Path(ms).glob(f"table.f{int(dm['SEQNR'])}_TSM*"))
        return out
    finally:
        t.close()
