"""The calibration stages' solutions as CASA calibration tables (`engine.ms.caltable`), in
WORKDIR/caltables: ``<ms>.<kind>.tbl`` for gain tables (every spw and calibrator in one table),
``<ms>.spw<N>.bandpass.tbl`` for bandpasses (one per spw: CASA's B tables of spws with different
channel counts cannot share a table). A table is replaced whole (written beside, then renamed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from almarules.engine.ms import caltable
from almarules.engine.stages.calibration.session import CalSession, MSInfo
from almarules.engine.stages.calibration.solve import Bandpass
from almarules.engine.stages.calibration.visdata import CalData
from almarules.kernels import gaincal


def bandpass_part(bp: Bandpass, info: MSInfo, field: str, spw: int) -> caltable.CalSolutions:
    """The B-table rows of one spw's bandpass."""
    ref = int(np.max(bp.phaseup.refant)) if bp.phaseup.refant.size else -1
    return caltable.from_bandpass(bp.solution, bp.flags, time=bp.time, interval=0.0, field_id=info.fields[field],
                                  spw_id=spw, refant=ref)


def gain_part(table: gaincal.GainTable, info: MSInfo, field: str, spw: int, cd: CalData) -> caltable.CalSolutions:
    """The G-table rows of one calibrator's gains in one spw; SCAN_NUMBER of each solution from
    the data it was solved on, INTERVAL the span of its timestamps."""
    ut, first = np.unique(cd.time, return_index=True)
    if table.times.size and ut.size:
        scans = cd.scan[first][np.abs(ut[None, :] - table.times[:, None]).argmin(axis=1)]
        interval = np.array([_span(cd.time, cd.scan, int(sc)) for sc in scans])
    else:
        scans, interval = np.zeros(0, int), np.zeros(0)
    return caltable.from_gain_table(table, field_id=info.fields[field], spw_id=spw, interval=interval, scans=scans)


def _span(time: np.ndarray, scan: np.ndarray, s: int) -> float:
    t = time[scan == s]
    return float(t.max() - t.min()) if t.size else 0.0


def write(s: CalSession, parts: dict[int, list[caltable.CalSolutions]], kind: str) -> list[str]:
    """Write the tables of `kind` for each MS (index -> its parts); the paths written."""
    out = []
    folder = Path(s.workdir) / "caltables"
    folder.mkdir(parents=True, exist_ok=True)
    for k, rows in parts.items():
        info = s.ms[k]
        if kind == "bandpass.tbl":
            for part in rows:
                spw = int(part.spw_id[0])
                path = folder / f"{info.source.name}.spw{spw}.{kind}"
                caltable.write_caltable(path, part, info.path, overwrite=True)
                out.append(str(path))
        elif rows:
            path = folder / f"{info.source.name}.{kind}"
            caltable.write_caltable(path, caltable.concat(rows), info.path, overwrite=True)
            out.append(str(path))
    s.tables.extend(p for p in out if p not in s.tables)
    return out
