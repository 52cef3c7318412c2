"""uvcontsub: the line data of the target cubes (issue 15). Each (calibrated) MS is copied to
WORKDIR/line/<ms>; in the copy, the visibilities of the target fields in every spw whose cont.dat
block has ranges get their continuum fitted per row and correlation over the cont.dat channels
(`kernels.uvcontsub`: weighted polynomial, CASA's abscissa) and subtracted, in the column the
images read (CORRECTED_DATA when filled, else DATA); rows without enough fit channels are flagged.
A field/spw without ranges keeps its data (continuum included) and is reported.

The copy is prepared before it is marked complete (`calibration.workcopy.make_copy`), so an
interrupted subtraction is redone, and its identity carries the cont.dat ranges and the order:
an edited cont.dat makes a new copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from almarules.engine.ms import visibilities as msdata
from almarules.engine.products.contdat import ContDat, channel_mask, lookup
from almarules.engine.stages.calibration.visdata import (
    column_filled, read_rows, spw_rows, spw_setups, write_rows)
from almarules.engine.stages.calibration.workcopy import make_copy
from almarules.kernels import uvcontsub

#: rows per chunk: about this many bytes of complex128 visibilities
CHUNK_BYTES = 64 * 1024 ** 2


@dataclass
class Subtracted:
    """What uvcontsub did to one MS."""

    ms: str
    column: str = ""
    done: list[str] = field(default_factory=list)  # "field spw: n rows, k fit channels"
    without_ranges: list[str] = field(default_factory=list)  # "field spw" kept with their continuum
    rows: int = 0
    failed: int = 0  # row/correlation pairs without a fit (flagged)
    fitspec: dict[str, str] = field(default_factory=dict)  # field -> CASA fitspec ("1:0~38;79~119,...")


def line_copy(source: Path, dest: Path, identity: str, fields: Sequence[str], contdat: Optional[ContDat],
              order: int) -> Subtracted:
    """The line copy of `source` at `dest` (module doc); an up-to-date copy is kept as it is."""
    report = Subtracted(ms=Path(source).name)
    make_copy(Path(source), Path(dest), identity,
              prepare=lambda tmp: subtract_continuum(tmp, fields, contdat, order, report))
    return report


def subtract_continuum(ms: Path, fields: Sequence[str], contdat: Optional[ContDat], order: int,
                       report: Subtracted) -> None:
    """Fit and subtract the continuum of `fields` in `ms` (writable) in place (module doc)."""
    column = "CORRECTED_DATA" if column_filled(ms, "CORRECTED_DATA") else "DATA"
    report.column = column
    setups = spw_setups(ms)
    for name in fields:
        ids = msdata.field_rows(ms, name)
        if not ids:
            continue
        for spw, setup in sorted(setups.items()):
            sel = lookup(contdat, name, spw) if contdat is not None else None
            rows = spw_rows(ms, setup, ids)
            if rows.size == 0:
                continue
            if sel is None or not sel.ranges:
                report.without_ranges.append(f"{name} spw {spw}")
                continue
            axis = msdata.spw_axis(ms, spw)
            freq = msdata.lsrk_frequencies(ms, spw, ids[0]) if axis.frame != "LSRK" else axis.freq
            fit_channels = channel_mask(freq, np.abs(axis.width) * (freq / axis.freq), sel)
            step = max(1, CHUNK_BYTES // (16 * setup.freq.size * len(setup.corr_names)))
            for a in range(0, rows.size, step):
                cd = read_rows(ms, setup, rows[a:a + step], column)
                fit = uvcontsub.fit_continuum(cd.vis, cd.weight, cd.flag, setup.freq, fit_channels, order)
                write_rows(ms, cd.rows, {column: uvcontsub.subtract(cd.vis, fit),
                                         "FLAG": uvcontsub.output_flags(cd.flag, fit)})
                report.failed += fit.n_failed
            report.rows += int(rows.size)
            runs = np.flatnonzero(np.diff(np.concatenate([[0], fit_channels.astype(np.int8), [0]])))
            chans = ";".join(f"{a}~{b - 1}" for a, b in zip(runs[::2], runs[1::2], strict=True))
            report.fitspec[name] = ",".join(filter(None, [report.fitspec.get(name, ""), f"{spw}:{chans}"]))
            report.done.append(f"{name} spw {spw}: {rows.size} rows, {int(fit_channels.sum())} of "
                               f"{fit_channels.size} channels in the fit")
