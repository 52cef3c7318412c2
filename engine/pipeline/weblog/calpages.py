"""The calibration stages' pictures on their weblog pages: which figures (`figures_cal`) each stage
gets, the arrays they are drawn from, and their caching.

* bandpass: amplitude and phase against frequency per spw, and a per-antenna grid, from
  ``WORKDIR/caltables/<ms>.spw<N>.bandpass.tbl``;
* timegaincal: gain phase against time of ``<ms>.phase_int.tbl`` and ``<ms>.phase_scan.tbl`` and
  gain amplitude of ``<ms>.amp_scan.tbl``, a panel per calibrator and spw;
* gfluxscale: the derived flux densities (the stage's ``numbers["derived"]``) against frequency,
  with the catalogue values its notes give;
* applycal: calibrated amplitude against uv distance (every field) and phase against time (the
  calibrators), from CORRECTED_DATA of the working copy ``WORKDIR/calibrated/<ms>``, averaged over
  the unflagged channels and parallel-hand correlations, at most `MAX_POINTS` rows a figure
  (evenly spaced in row order, so in time);
* flagdata: visibilities newly flagged per agent (the stage's ``numbers``);
* findcont (a continuum stage, drawn the same way): each searched field/spw's mean spectrum with
  the continuum channels shaded, from ``WORKDIR/findcont/<field>.spw<N>.json``.

A picture is drawn only for a stage that ran ("done"), and is cached (`thumbs.Pictures`) on what
it reads: name, size and modification time of every file of the tables or MS, or the stage's
numbers and notes. Each picture is a full-size PNG and a thumbnail (`Thumb.src` the thumbnail,
`Thumb.full` the PNG).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from almarules.engine.pipeline.state import RunState, StageRun
from almarules.engine.pipeline.weblog import figures_cal as fc
from almarules.engine.pipeline.weblog.model import StageView, Thumb
from almarules.engine.pipeline.weblog.thumbs import Pictures, file_key

MAX_POINTS = 20_000  # rows drawn in one visibility figure (split evenly between its panels)
GAIN_TABLES = (("phase_int", "phase", "gain phase per integration"),
               ("phase_scan", "phase", "gain phase per scan"),
               ("amp_scan", "amp", "gain amplitude per scan"))
_CATALOGUE = re.compile(r"^(?P<name>.+?) spw (?P<spw>\d+): .*catalogue (?P<flux>[-+0-9.eE]+) Jy")
_PARALLEL = (1, 5, 8, 9, 12)  # Stokes I, RR, LL, XX, YY (casacore Stokes enumeration)


@dataclass(frozen=True)
class Drawing:
    """One picture of a stage: kind and label (as `Pictures.picture`), the file stem, what it
    depends on, and `make()` -> (Figure, alt text, caption)."""

    kind: str
    label: str
    stem: str
    depends: str
    make: Callable[[], tuple[Any, str, str]]


# ---------------------------------------------------------------- reading
def tree_key(path: Path) -> str:
    """What a picture of a table (a directory) depends on: `file_key` of each of its files."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "table.lock")
    return ";".join(f"{p.relative_to(path)}|{file_key(p)}" for p in files)


def _table(path: Path):
    from casacore.tables import table

    return table(str(path), ack=False, readonly=True)


def _names(table_path: Path, sub: str) -> tuple[str, ...]:
    with _table(table_path / sub) as t:
        return tuple(str(n) for n in t.getcol("NAME")) if t.nrows() else ()


def _chan_freq_ghz(table_path: Path, spw: int) -> np.ndarray:
    with _table(table_path / "SPECTRAL_WINDOW") as t:
        return np.asarray(t.getcell("CHAN_FREQ", spw), dtype=float) / 1e9


def _refant(sol: Any) -> int:
    ref = sol.antenna2[sol.antenna2 >= 0]
    return int(np.bincount(ref).argmax()) if ref.size else -1


def _masked(sol: Any) -> np.ndarray:
    return np.where(sol.flag, np.nan + 0j, sol.cparam)


def load_bandpass(path: Path) -> fc.BandpassPanel:
    """The bandpass of one B table (one spw; the last solution of each antenna)."""
    from almarules.engine.ms.caltable import read_caltable

    sol = read_caltable(path)
    spw = int(sol.spw_id[0])
    antennas = _names(path, "ANTENNA")
    nchan, npol = sol.cparam.shape[1:]
    gains = np.full((len(antennas), nchan, npol), np.nan + 0j)
    values = _masked(sol)
    for r in np.argsort(sol.time, kind="stable"):
        gains[sol.antenna1[r]] = values[r]
    return fc.BandpassPanel(spw=spw, freq_ghz=_chan_freq_ghz(path, spw), antennas=antennas, gains=gains,
                            refant=_refant(sol))


def load_gains(path: Path) -> list[fc.GainPanel]:
    """The gains of one G table: a panel per (calibrator, spw), in field then spw order."""
    from almarules.engine.ms.caltable import read_caltable

    sol = read_caltable(path)
    antennas, fields = _names(path, "ANTENNA"), _names(path, "FIELD")
    values = _masked(sol)[:, 0, :]
    panels = []
    for f, s in sorted({(int(f), int(s)) for f, s in zip(sol.field_id, sol.spw_id, strict=True)}):
        rows = np.flatnonzero((sol.field_id == f) & (sol.spw_id == s))
        times, at = np.unique(sol.time[rows], return_inverse=True)
        gains = np.full((len(antennas), times.size, values.shape[1]), np.nan + 0j)
        gains[sol.antenna1[rows], at] = values[rows]
        name = fields[f] if f < len(fields) else f"field {f}"
        scan = np.zeros(times.size, dtype=np.int64)
        scan[at] = sol.scan[rows]
        per_int = np.unique(scan).size < times.size  # several solutions a scan: not joined across scans
        panels.append(fc.GainPanel(title=f"{name} spw {s}", time=times, antennas=antennas, gains=gains,
                                   refant=_refant(sol), scan=scan if per_int else None))
    return panels


def load_flux(stage: StageRun) -> list[fc.FluxPanel]:
    """The derived flux densities of a gfluxscale stage (``numbers["derived"]``), with the
    catalogue values (a "catalogue" number of an entry, else the stage's notes)."""
    catalogue: dict[tuple[str, str], float] = {}
    for note in stage.notes:
        m = _CATALOGUE.match(note)
        if m:
            catalogue[(m["name"], m["spw"])] = float(m["flux"])
    panels = []
    for name, per_spw in sorted((stage.numbers.get("derived") or {}).items()):
        spws = sorted(per_spw, key=lambda s: float(per_spw[s]["frequency"]))
        panels.append(fc.FluxPanel(
            name=name, freq_ghz=np.array([float(per_spw[s]["frequency"]) / 1e9 for s in spws]),
            flux=np.array([float(per_spw[s]["flux"]) for s in spws]),
            error=np.array([float(per_spw[s]["error"]) for s in spws]),
            catalogue=np.array([_catalogue_value(per_spw[s], catalogue.get((name, s))) for s in spws])))
    return panels


def _catalogue_value(entry: dict[str, Any], from_notes: Optional[float]) -> float:
    """The catalogue flux (Jy) of one derived entry: its own "catalogue" number if the stage
    records one, else the value its notes give, else NaN."""
    value = entry.get("catalogue", from_notes)
    return float(value) if value is not None else np.nan


def _intents(workdir: Path) -> dict[str, str]:
    """Field name -> its intents ("PHASE", "AMPLITUDE,BANDPASS", ...) from WORKDIR/facts.json."""
    try:
        facts = json.loads((workdir / "facts.json").read_text())
    except (OSError, ValueError):
        return {}
    return {f["name"]: ",".join(f.get("intents") or []) for f in facts.get("fields") or [] if f.get("name")}


def _spread(rows: np.ndarray, cap: int) -> np.ndarray:
    """At most `cap` of `rows`, evenly spaced."""
    if rows.size <= cap:
        return rows
    return rows[np.unique(np.linspace(0, rows.size - 1, cap).round().astype(np.int64))]


def _average(t: Any, rows: np.ndarray, parallel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector mean over the unflagged channels and parallel hands of CORRECTED_DATA in `rows`
    (one data description); (mean, has_data)."""
    sub = t.selectrows(rows.tolist())
    try:
        data = sub.getcol("CORRECTED_DATA")[:, :, parallel]
        good = ~sub.getcol("FLAG")[:, :, parallel]
    finally:
        sub.close()
    n = good.sum(axis=(1, 2))
    mean = np.where(good, data, 0).sum(axis=(1, 2)) / np.maximum(n, 1)
    return mean, n > 0


def load_vis(ms: Path, intents: dict[str, str], max_points: int = MAX_POINTS) -> list[fc.VisPanel]:
    """Calibrated visibilities of every field with an intent (calibrators first, then targets)."""
    with _table(ms / "DATA_DESCRIPTION") as t:
        dd_spw, dd_pol = t.getcol("SPECTRAL_WINDOW_ID"), t.getcol("POLARIZATION_ID")
    with _table(ms / "POLARIZATION") as t:
        corr = [np.asarray(t.getcell("CORR_TYPE", r)) for r in range(t.nrows())]
    fields = _names(ms, "FIELD")
    with _table(ms) as t:
        if "CORRECTED_DATA" not in t.colnames():
            raise ValueError(f"{ms.name} has no CORRECTED_DATA")
        a1, a2, fid = t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("FIELD_ID")
        dd, flag_row = t.getcol("DATA_DESC_ID"), t.getcol("FLAG_ROW")
        cross = (a1 != a2) & ~flag_row
        named = [(f, n, intents[n]) for f, n in enumerate(fields) if intents.get(n)]
        named.sort(key=lambda x: ("TARGET" in x[2], x[0]))
        cap = max(1, max_points // max(len(named), 1))
        uvw, time = t.getcol("UVW"), t.getcol("TIME")
        return [_field_panel(t, name, intent, np.flatnonzero(cross & (fid == f)), cap, uvw, time, dd,
                             dd_spw, dd_pol, corr) for f, name, intent in named]


def _field_panel(t: Any, name: str, intent: str, rows: np.ndarray, cap: int, uvw: np.ndarray, time: np.ndarray,
                 dd: np.ndarray, dd_spw: np.ndarray, dd_pol: np.ndarray, corr: list[np.ndarray]) -> fc.VisPanel:
    picked = _spread(rows, cap)
    mean, ok = np.zeros(picked.size, complex), np.zeros(picked.size, bool)
    for d in np.unique(dd[picked]):
        at = np.flatnonzero(dd[picked] == d)
        parallel = np.flatnonzero(np.isin(corr[dd_pol[d]], _PARALLEL))
        mean[at], ok[at] = _average(t, picked[at], parallel)
    keep = picked[ok]
    return fc.VisPanel(field=name, intent=intent, uvdist_m=np.hypot(uvw[keep, 0], uvw[keep, 1]),
                       amp=np.abs(mean[ok]), phase_deg=np.degrees(np.angle(mean[ok])), time=time[keep],
                       spw=dd_spw[dd[keep]], rows=int(rows.size))


# ---------------------------------------------------------------- what each stage draws
def _ms_names(state: RunState) -> list[str]:
    return [Path(m).name for m in state.ms]


class _Once:
    """The value of `load()`, computed on first use (two pictures of one stage share their data;
    a picture taken from the previous weblog reads nothing)."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load, self._value, self._done = load, None, False

    def __call__(self) -> Any:
        if not self._done:
            self._value, self._done = self._load(), True
        return self._value


def _spw_of(table: Path) -> int:
    return int(re.search(r"\.spw(\d+)\.bandpass\.tbl$", table.name)[1])


def _load_bandpasses(tables: list[Path]) -> list[fc.BandpassPanel]:
    return [load_bandpass(p) for p in tables]


def _bandpass_pictures(panels: _Once, what: str) -> tuple[Any, str, str]:
    return (fc.bandpass_figure(panels()), f"bandpass amplitude and phase against frequency, {what}",
            f"{what}: every antenna and polarisation a thin line, the reference antenna black; flagged "
            "channels left out")


def _bandpass_grid(panels: _Once, what: str) -> tuple[Any, str, str]:
    fig = fc.bandpass_grid(panels())
    if fig is None:
        raise ValueError(f"more than {fc.MAX_GRID} antennas: no per-antenna grid")
    return (fig, f"bandpass amplitude per antenna, {what}",
            f"{what}: a cell per antenna, every spw, polarisations blue and orange, the reference antenna black")


def _bandpass(stage: StageRun, state: RunState, workdir: Path) -> list[Drawing]:
    out = []
    for ms in _ms_names(state):
        tables = sorted((workdir / "caltables").glob(f"{ms}.spw*.bandpass.tbl"), key=_spw_of)
        if not tables:
            continue
        depends = ";".join(tree_key(p) for p in tables)
        panels = _Once(partial(_load_bandpasses, tables))
        what = f"{ms} spw {', '.join(str(_spw_of(p)) for p in tables)}"
        out += [Drawing("bandpass", "bandpass", ms, depends, partial(_bandpass_pictures, panels, what)),
                Drawing("bandpass-antennas", "bandpass per antenna", ms, depends,
                        partial(_bandpass_grid, panels, what))]
    return out


def _gain_picture(path: Path, quantity: str, label: str) -> tuple[Any, str, str]:
    return (fc.gain_time_figure(load_gains(path), quantity), f"{label} against time, {path.name}",
            f"{path.name}: a panel per calibrator and spw, colour by antenna (reference antenna black)")


def _timegaincal(stage: StageRun, state: RunState, workdir: Path) -> list[Drawing]:
    out = []
    for ms in _ms_names(state):
        for kind, quantity, label in GAIN_TABLES:
            path = workdir / "caltables" / f"{ms}.{kind}.tbl"
            if path.is_dir():
                out.append(Drawing(kind, label, ms, tree_key(path), partial(_gain_picture, path, quantity, label)))
    return out


def _flux_picture(stage: StageRun) -> tuple[Any, str, str]:
    return (fc.flux_figure(load_flux(stage)), "derived flux density against frequency per calibrator",
            "flux density derived by gfluxscale (1-sigma error bars); crosses: the catalogue value")


def _gfluxscale(stage: StageRun, state: RunState, workdir: Path) -> list[Drawing]:
    if not stage.numbers.get("derived"):
        return []
    depends = json.dumps({"numbers": stage.numbers, "notes": stage.notes}, sort_keys=True, default=str)
    return [Drawing("fluxes", "derived flux densities", "gfluxscale", depends, partial(_flux_picture, stage))]


def _uv_picture(panels: _Once, ms: str) -> tuple[Any, str, str]:
    return (fc.amp_uvdist_figure(panels()), f"calibrated amplitude against uv distance per field, {ms}",
            f"{ms} CORRECTED_DATA, vector mean over unflagged channels and parallel hands, one point a row "
            f"(at most {MAX_POINTS:,} rows in all, evenly spaced in time)")


def _phase_picture(panels: _Once, ms: str) -> tuple[Any, str, str]:
    calibrators = [p for p in panels() if "TARGET" not in p.intent] or panels()
    return (fc.phase_time_figure(calibrators), f"calibrated phase against time per calibrator, {ms}",
            f"{ms} CORRECTED_DATA of the calibrators, averaged as in the amplitude plot")


def _applycal(stage: StageRun, state: RunState, workdir: Path) -> list[Drawing]:
    out = []
    intents = _intents(workdir)
    for ms in _ms_names(state):
        copy = workdir / "calibrated" / ms
        if not copy.is_dir() or not intents:
            continue
        depends = tree_key(copy) + "|" + json.dumps(intents, sort_keys=True)
        panels = _Once(partial(load_vis, copy, intents))
        out += [Drawing("amp-uvdist", "amplitude vs uv distance", ms, depends, partial(_uv_picture, panels, ms)),
                Drawing("phase-time", "calibrator phase vs time", ms, depends, partial(_phase_picture, panels, ms))]
    return out


def _flag_picture(per: dict[str, Any], ms: str) -> tuple[Any, str, str]:
    return (fc.flag_bars({k: float(v) for k, v in per.items()}, ms), f"visibilities newly flagged per agent, {ms}",
            f"{ms}: visibilities (channel x correlation samples) each agent flagged that were not flagged before")


def _flagdata(stage: StageRun, state: RunState, workdir: Path) -> list[Drawing]:
    return [Drawing("flagged", "newly flagged per agent", ms, json.dumps(per, sort_keys=True, default=str),
                    partial(_flag_picture, per, ms))
            for ms, per in sorted(stage.numbers.items()) if isinstance(per, dict) and per]


def _spectrum_picture(path: Path) -> tuple[Any, str, str]:
    spec = json.loads(path.read_text())
    return (fc.findcont_figure(spec), f"findcont mean spectrum of {spec['field']} spw {spec['spw']}",
            f"{spec['field']} spw {spec['spw']}: the coarse dirty cube's mean over the {spec['mask']} mask "
            f"({spec['mask_pixels']} pixels); shaded: the channels written to cont.dat; grey: the baseline and the "
            f"band around it")


def _findcont(stage: StageRun, state: RunState, workdir: Path) -> list[Drawing]:
    return [Drawing("findcont", "continuum channels", p.stem, file_key(p), partial(_spectrum_picture, p))
            for p in sorted((workdir / "findcont").glob("*.json"))]


DRAWINGS: dict[str, Callable[[StageRun, RunState, Path], list[Drawing]]] = {
    "bandpass": _bandpass, "timegaincal": _timegaincal, "gfluxscale": _gfluxscale, "applycal": _applycal,
    "flagdata": _flagdata, "findcont": _findcont,
}


# ---------------------------------------------------------------- drawing
def _draw(pics: Pictures, d: Drawing) -> Thumb:
    """The full PNG of `d` and its thumbnail (drawn or reused), as one Thumb."""

    def full(png: Path) -> Any:
        fig, alt, caption = d.make()
        return fc.save(fig, png, alt, caption)

    depends = f"{fc.VERSION}|{d.depends}"
    big = pics.picture(d.kind, d.label, d.stem, depends, full)
    if big.src is None:
        return big

    def small(png: Path) -> Any:
        return fc.thumbnail(pics.build / big.src, png, big.alt, big.caption)

    thumb = pics.picture(f"{d.kind}-thumb", d.label, d.stem, f"{depends}|{fc.THUMB_W}", small)
    if thumb.src is None:
        return big
    thumb.full, thumb.kind = big.src, d.kind
    return thumb


def stage_figures(pics: Pictures, stage: StageRun, state: RunState, workdir: Path) -> list[Thumb]:
    """The pictures of one stage (none unless it ran and is a calibration stage drawn here)."""
    chooser = DRAWINGS.get(stage.name)
    if chooser is None or stage.status != "done":
        return []
    try:
        drawings = chooser(stage, state, Path(workdir))
    except (OSError, ValueError, RuntimeError) as exc:  # unreadable inputs must not stop the weblog
        return [Thumb(kind=stage.name, label=stage.name, missing=f"not drawn: {type(exc).__name__}: {exc}")]
    return [_draw(pics, d) for d in drawings]


def attach(pics: Optional[Pictures], views: list[StageView], state: RunState, workdir: Path,
           progress: Optional[Callable[[str], None]] = None) -> None:
    """Give each stage view its pictures (`views` in the order of ``state.stages``)."""
    if pics is None:
        return
    for view, stage in zip(views, state.stages, strict=True):
        drawn = pics.drawn
        view.figures = stage_figures(pics, stage, state, workdir)
        if pics.drawn > drawn and progress is not None:
            progress(f"weblog: pictures of stage {stage.index} {stage.name}")
