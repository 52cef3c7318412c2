"""The weblog's calibration figures: pure functions from arrays to a matplotlib Figure (drawn on
its own Agg canvas, never pyplot), plus `save` (Figure -> PNG and its description) and
`thumbnail` (a smaller copy of a PNG).

Conventions: frequencies in GHz; phases in degrees wrapped to [-180, 180); amplitudes as stored
(gains: dimensionless; visibilities: Jy); times are MS TIME values (MJD seconds, UTC) drawn as
minutes after the first one; flagged values are NaN, so a line breaks there and a flagged
bandpass channel is absent from the plot. Antennas are coloured by their index in `antennas`
(the same colour in every panel of a figure); the reference antenna is drawn black and thicker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from almarules.engine.pipeline.weblog.figures import DPI, FONT, FigureInfo, blank_text, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BandpassPanel", "GainPanel", "FluxPanel", "VisPanel", "bandpass_figure", "bandpass_grid",
           "gain_time_figure", "flux_figure", "amp_uvdist_figure", "phase_time_figure", "flag_bars",
           "findcont_figure",
           "save", "thumbnail", "wrap_deg", "VERSION"]

PANEL_W, PANEL_H = 420, 250  # pixels of one panel (plus margins)
THUMB_W = 720  # pixels: the width of a thumbnail (never enlarged)
VERSION = "1"  # bump when a figure here changes: every calibration picture is drawn again
MAX_GRID = 64  # antennas in a per-antenna grid (more: the grid is not drawn)


@dataclass(frozen=True, eq=False)
class BandpassPanel:
    """One spw of a bandpass table: channel frequencies (GHz, nchan), antenna names (nant) and the
    solutions (nant, nchan, npol) complex, NaN where flagged; `refant` the reference antenna index."""

    spw: int
    freq_ghz: np.ndarray
    antennas: tuple[str, ...]
    gains: np.ndarray
    refant: int = -1


@dataclass(frozen=True, eq=False)
class GainPanel:
    """The gains of one calibrator in one spw: solution times (MJD s, ntime), antenna names (nant)
    and the solutions (nant, ntime, npol) complex, NaN where flagged or absent."""

    title: str
    time: np.ndarray
    antennas: tuple[str, ...]
    gains: np.ndarray
    refant: int = -1
    scan: Optional[np.ndarray] = None  # (ntime,): given, lines are broken where the scan changes


@dataclass(frozen=True, eq=False)
class FluxPanel:
    """A calibrator's derived flux densities (Jy) with 1-sigma errors at frequencies (GHz), and
    the catalogue value at each (NaN where there is none)."""

    name: str
    freq_ghz: np.ndarray
    flux: np.ndarray
    error: np.ndarray
    catalogue: np.ndarray


@dataclass(frozen=True, eq=False)
class VisPanel:
    """Calibrated visibilities of one field (channel- and polarisation-averaged, one point per
    row): uv distance (m), amplitude (Jy), phase (deg), time (MJD s), spw of each point."""

    field: str
    intent: str
    uvdist_m: np.ndarray
    amp: np.ndarray
    phase_deg: np.ndarray
    time: np.ndarray
    spw: np.ndarray
    rows: int = 0  # rows of the field before subsampling


def wrap_deg(phase_deg: np.ndarray) -> np.ndarray:
    """Phases (deg) wrapped to [-180, 180)."""
    return (np.asarray(phase_deg, dtype=float) + 180.0) % 360.0 - 180.0


def _colours(n: int) -> np.ndarray:
    """`n` distinct RGBA colours (tab20 up to 20, else evenly along turbo)."""
    from matplotlib import colormaps

    if n <= 20:
        return colormaps["tab20"](np.arange(max(n, 1)) % 20)
    return colormaps["turbo"](np.linspace(0.05, 0.95, n))


def _grid(n: int, ncol: int, rows_per: int = 1, width: int = PANEL_W, height: int = PANEL_H,
          extra_h: int = 0) -> tuple[Figure, Any]:
    """A figure of `n` groups of `rows_per` stacked axes, `ncol` groups a row, laid out with fixed
    pixel margins (no tight_layout: it lays every text out twice); `extra_h` pixels left free at
    the bottom (a legend)."""
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol) * rows_per
    w, h = ncol * width, nrow * height + extra_h
    fig = new_figure(w, h)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    left, right, top, bottom, gap_x, gap_y = 52, 12, 22, 36, 58, 56  # pixels
    cell_w, cell_h = (w - left - right) / ncol, (h - extra_h - top - bottom) / nrow
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=(bottom + extra_h) / h,
                        wspace=gap_x / max(cell_w - gap_x, 1), hspace=gap_y / max(cell_h - gap_y, 1))
    for ax in axes.flat:
        ax.tick_params(labelsize=FONT)
    return fig, axes


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=FONT + 1, y=1.0, pad=3)  # a fixed y: no title-position search
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.grid(alpha=0.3, lw=0.5)


def _runs(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The (n, 2) pieces of the line (x, y) between NaNs (pieces of one point included)."""
    good = np.isfinite(y)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], good, [False]]).astype(np.int8)))
    return [np.column_stack([x[a:b], y[a:b]]) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _antenna_lines(ax, x: np.ndarray, values: np.ndarray, colours: np.ndarray, refant: int,
                   markers: bool = False) -> None:
    """Every antenna and polarisation a line (values (nant, nx, npol), NaN breaks a line): the
    others thin in their colours in one LineCollection labelled "antennas", the reference antenna
    black and thicker in one labelled "refant"; `markers`: a dot at every value too."""
    from matplotlib.collections import LineCollection

    for group, lw, zorder in (("antennas", 0.5, 2), ("refant", 1.4, 3)):
        segs, cols = [], []
        for a in range(values.shape[0]):
            if (a == refant) != (group == "refant"):
                continue
            for p in range(values.shape[2]):
                pieces = _runs(x, values[a, :, p])
                segs += pieces
                cols += [colours[a] if group == "antennas" else (0, 0, 0, 1)] * len(pieces)
        if not segs:
            continue
        ax.add_collection(LineCollection(segs, colors=cols, linewidths=lw, alpha=0.7 if group == "antennas" else 1,
                                         zorder=zorder, label=group))
        if markers:
            pts = np.concatenate(segs)
            ax.scatter(pts[:, 0], pts[:, 1], s=3, lw=0, zorder=zorder,
                       c=np.repeat(np.asarray(cols), [len(sg) for sg in segs], axis=0))
    ax.autoscale_view()


def bandpass_figure(panels: Sequence[BandpassPanel]) -> Figure:
    """Bandpass amplitude (top) and phase (bottom, deg) against frequency (GHz), a column per spw;
    every antenna and polarisation one thin line, the reference antenna black."""
    fig, axes = _grid(len(panels), len(panels), rows_per=2, height=220, width=460)
    for k, p in enumerate(panels):
        colours = _colours(len(p.antennas))
        ref = p.antennas[p.refant] if 0 <= p.refant < len(p.antennas) else "none"
        amp_ax, ph_ax = axes[0, k], axes[1, k]
        _antenna_lines(amp_ax, p.freq_ghz, np.abs(p.gains), colours, p.refant)
        _antenna_lines(ph_ax, p.freq_ghz, wrap_deg(np.degrees(np.angle(p.gains))), colours, p.refant)
        _style(amp_ax, f"spw {p.spw} amplitude ({len(p.antennas)} antennas, refant {ref} black)", "",
               "amplitude")
        _style(ph_ax, f"spw {p.spw} phase", "frequency (GHz)", "phase (deg)")
        ph_ax.set_ylim(-180, 180)
        ph_ax.set_yticks([-180, -90, 0, 90, 180])
    return fig


def _cell_x(panels: Sequence[BandpassPanel]) -> list[np.ndarray]:
    """x of each spw's channels within a cell of width 1: spws side by side (in `panels` order),
    each spanning its channels linearly in frequency."""
    n, out = len(panels), []
    for k, p in enumerate(panels):
        f = np.asarray(p.freq_ghz, dtype=float)
        lo, hi = float(np.min(f)), float(np.max(f))
        frac = (f - lo) / (hi - lo) if hi > lo else np.full(f.shape, 0.5)
        out.append(0.05 + 0.9 * (k + 0.08 + 0.84 * frac) / n)
    return out


def bandpass_grid(panels: Sequence[BandpassPanel], ncol: int = 8) -> Optional[Figure]:
    """Small multiples on one canvas: a cell per antenna with its bandpass amplitude in every spw
    (spws side by side, each across its band; polarisations blue and orange, the reference antenna
    black), all cells on one amplitude scale from 0 (the title gives its top; the grey line is
    amplitude 1). None for no antennas or more than `MAX_GRID`."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    names = panels[0].antennas if panels else ()
    if not names or len(names) > MAX_GRID:
        return None
    nrow = -(-len(names) // ncol)
    fig = new_figure(ncol * 120, nrow * 72 + 30)
    ax = fig.add_axes((0.005, 0.005, 0.99, 1 - 32 / (nrow * 72 + 30)))
    finite = [np.abs(p.gains)[np.isfinite(p.gains)] for p in panels]
    top = 1.1 * max((float(v.max()) for v in finite if v.size), default=1.0)
    xs = _cell_x(panels)
    pol_colours = colormaps["tab10"](np.arange(10))
    segs, cols, frames = [], [], []
    for a, name in enumerate(names):
        x0, y0 = a % ncol, nrow - 1 - a // ncol
        for p, x in zip(panels, xs, strict=True):
            for pol in range(p.gains.shape[2]):
                pieces = _runs(x0 + x, y0 + 0.08 + 0.72 * np.abs(p.gains[a, :, pol]) / top)
                segs += pieces
                cols += [(0.0, 0.0, 0.0, 1.0) if a == p.refant else pol_colours[pol % 10]] * len(pieces)
        frames += [[(x0 + 0.02, y0 + 0.08 + 0.72 / top), (x0 + 0.98, y0 + 0.08 + 0.72 / top)],
                   [(x0 + 0.02, y0 + 0.02), (x0 + 0.98, y0 + 0.02), (x0 + 0.98, y0 + 0.98),
                    (x0 + 0.02, y0 + 0.98), (x0 + 0.02, y0 + 0.02)]]
        ax.text(x0 + 0.05, y0 + 0.94, name, fontsize=FONT - 1, va="top")
    ax.add_collection(LineCollection(frames, colors="0.7", linewidths=0.5, label="frames"))
    ax.add_collection(LineCollection(segs, colors=cols, linewidths=0.6, label="antennas"))
    ax.set_xlim(0, ncol)
    ax.set_ylim(0, nrow)
    ax.set_axis_off()
    spws = ", ".join(str(p.spw) for p in panels)
    fig.suptitle(f"bandpass amplitude per antenna (spw {spws} left to right, each across its band); "
                 f"cells from 0 to {top:.3g}, grey line at 1", fontsize=FONT + 1, y=1 - 4 / (nrow * 72 + 30),
                 va="top")
    return fig


def _same_x(axes: Sequence[Any], times: Sequence[np.ndarray], t0: float) -> None:
    """One time range (minutes after `t0`, 3 % margins) on every axes of a figure."""
    spans = [(float(np.min(t)), float(np.max(t))) for t in times if t.size]
    if not spans:
        return
    lo, hi = (min(a for a, _ in spans) - t0) / 60.0, (max(b for _, b in spans) - t0) / 60.0
    pad = max(0.03 * (hi - lo), 0.05)
    for ax in axes:
        ax.set_xlim(lo - pad, hi + pad)


def _utc(mjd_s: float) -> str:
    return (datetime(1858, 11, 17) + timedelta(seconds=float(mjd_s))).strftime("%Y-%m-%d %H:%M:%S")


def _legend(fig, antennas: Sequence[str], colours: np.ndarray, refant: int) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="black" if a == refant else colours[a], lw=1.5 if a == refant else 1.0,
                      label=name + (" (ref)" if a == refant else "")) for a, name in enumerate(antennas)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 10), fontsize=FONT - 1.5,
               frameon=False, handlelength=1.2, columnspacing=0.8)


def gain_time_figure(panels: Sequence[GainPanel], quantity: str, ncol: int = 2) -> Figure:
    """Gain phase (deg, `quantity` "phase") or amplitude ("amp") against time (minutes after the
    first solution of the figure), a panel per calibrator and spw, colour by antenna (legend)."""
    if quantity not in ("phase", "amp"):
        raise ValueError(f"quantity must be 'phase' or 'amp', got {quantity!r}")
    antennas = max((p.antennas for p in panels), key=len, default=())
    legend_h = 16 * (-(-len(antennas) // 10)) + 10
    fig, axes = _grid(len(panels), ncol, extra_h=legend_h)
    t0 = min((float(np.min(p.time)) for p in panels if p.time.size), default=0.0)
    colours = _colours(len(antennas))
    for ax, p in zip(list(axes.flat)[:len(panels)], panels, strict=True):
        values = wrap_deg(np.degrees(np.angle(p.gains))) if quantity == "phase" else np.abs(p.gains)
        x = (p.time - t0) / 60.0
        if p.scan is not None and p.time.size:  # a NaN between scans breaks the lines there
            at = np.flatnonzero(np.diff(p.scan)) + 1
            x = np.insert(x, at, np.nan)
            values = np.insert(values, at, np.nan, axis=1)
        if p.time.size:
            _antenna_lines(ax, x, values, colours, p.refant, markers=True)
        else:
            blank_text(ax, "no solutions")
        _style(ax, p.title, f"minutes after {_utc(t0)} UTC", "gain phase (deg)" if quantity == "phase"
               else "gain amplitude")
        if quantity == "phase":
            ax.set_ylim(-180, 180)
            ax.set_yticks([-180, -90, 0, 90, 180])
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _same_x(list(axes.flat)[:len(panels)], [p.time for p in panels], t0)
    refant = panels[0].refant if panels else -1
    _legend(fig, antennas, colours, refant)
    return fig


def flux_figure(panels: Sequence[FluxPanel]) -> Figure:
    """Derived flux density (Jy, 1-sigma error bars) against frequency (GHz), a panel per
    calibrator, with the catalogue values (crosses) where known."""
    fig, axes = _grid(len(panels), 3, width=340, height=240)
    for ax, p in zip(list(axes.flat)[:len(panels)], panels, strict=True):
        ax.errorbar(p.freq_ghz, p.flux, yerr=p.error, fmt="o", ms=4, capsize=3, color="tab:blue",
                    label="derived (gfluxscale)")
        known = np.isfinite(p.catalogue)
        if known.any():
            ax.plot(p.freq_ghz[known], p.catalogue[known], "x", ms=7, mew=1.5, color="tab:red", label="catalogue")
        _style(ax, p.name, "frequency (GHz)", "flux density (Jy)")
        ax.legend(fontsize=FONT - 1, loc="best")
        span = np.nanmax(p.flux + p.error) - np.nanmin(p.flux - p.error) if p.flux.size else 0.0
        lo = np.nanmin(np.concatenate([p.flux - p.error, p.catalogue[known]])) if p.flux.size else 0.0
        hi = np.nanmax(np.concatenate([p.flux + p.error, p.catalogue[known]])) if p.flux.size else 1.0
        pad = max(0.2 * span, 0.05 * abs(hi), 1e-6)
        ax.set_ylim(lo - pad, hi + pad)
        ax.margins(x=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return fig


def findcont_figure(spec: Mapping[str, Any]) -> Figure:
    """findcont's mean spectrum (mJy/beam) against LSRK frequency (GHz), the continuum channels
    it chose shaded, its baseline and the band around it (the spectrum JSON of
    `engine.stages.continuum.findcont.save_spectrum`)."""
    freq = np.asarray(spec["freq_ghz"], dtype=float)
    y = np.array([np.nan if v is None else v for v in spec["spectrum_mjy"]], dtype=float)
    chosen = np.asarray(spec["selected"], dtype=bool)
    base = np.asarray(spec["baseline_mjy"], dtype=float)
    lo, hi = spec["band_mjy"]
    fig, axes = _grid(1, 1, width=760, height=300)
    ax = axes.flat[0]
    half = np.abs(np.gradient(freq)) / 2 if freq.size > 1 else np.full(freq.size, 0.001)
    for a, b in _chosen_runs(chosen):
        ax.axvspan(min(freq[a] - half[a], freq[b] + half[b]), max(freq[a] - half[a], freq[b] + half[b]),
                   color="tab:green", alpha=0.18, lw=0)
    ax.fill_between(freq, base + lo, base + hi, color="0.5", alpha=0.2, lw=0, label="band kept")
    ax.plot(freq, base, color="0.3", lw=1, label="baseline")
    ax.plot(freq, y, color="tab:blue", lw=1, drawstyle="steps-mid", label=f"mean over the {spec['mask']} mask")
    flags = f" [{' '.join(spec['flags'])}]" if spec.get("flags") else ""
    _style(ax, f"{spec['field']} spw {spec['spw']}: continuum channels shaded{flags}", "LSRK frequency (GHz)",
           "mean intensity (mJy/beam)")
    ax.legend(fontsize=FONT - 1, loc="best")
    return fig


def _chosen_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the runs of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _spw_scatter(ax, x: np.ndarray, y: np.ndarray, spw: np.ndarray) -> None:
    """One scatter in the points' own order (spws interleaved, none hidden under another), colour
    by spw (tab10, as RGBA numbers: colour names per point are slow), with a legend of the spws."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    spws, index = np.unique(spw, return_inverse=True)
    palette = colormaps["tab10"](np.arange(max(spws.size, 1)) % 10)
    ax.scatter(x, y, s=1.5, lw=0, c=palette[index] if spws.size else "k")
    if spws.size:
        ax.legend(handles=[Line2D([], [], ls="", marker="o", ms=3, color=palette[k], label=f"spw {s}")
                           for k, s in enumerate(spws)], fontsize=FONT - 1, loc="best")


def amp_uvdist_figure(panels: Sequence[VisPanel], ncol: int = 2) -> Figure:
    """Calibrated amplitude (Jy) against uv distance (m), a panel per field, colour by spw."""
    fig, axes = _grid(len(panels), ncol)
    for ax, p in zip(list(axes.flat)[:len(panels)], panels, strict=True):
        _spw_scatter(ax, p.uvdist_m, p.amp, p.spw)
        _style(ax, f"{p.field} ({p.intent}): {p.amp.size} of {p.rows} rows", "uv distance (m)", "amplitude (Jy)")
        ax.set_ylim(bottom=0)
        if not p.amp.size:
            blank_text(ax, "no unflagged data")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return fig


def phase_time_figure(panels: Sequence[VisPanel], ncol: int = 2) -> Figure:
    """Calibrated phase (deg) against time (minutes after the first point), a panel per field."""
    fig, axes = _grid(len(panels), ncol)
    t0 = min((float(np.min(p.time)) for p in panels if p.time.size), default=0.0)
    for ax, p in zip(list(axes.flat)[:len(panels)], panels, strict=True):
        _spw_scatter(ax, (p.time - t0) / 60.0, p.phase_deg, p.spw)
        _style(ax, f"{p.field} ({p.intent})", f"minutes after {_utc(t0)} UTC", "phase (deg)")
        ax.set_ylim(-180, 180)
        ax.set_yticks([-180, -90, 0, 90, 180])
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _same_x(list(axes.flat)[:len(panels)], [p.time for p in panels], t0)
    return fig


def flag_bars(counts: Mapping[str, float], title: str) -> Figure:
    """Visibilities newly flagged per agent (horizontal bars, the count written at each bar)."""
    labels = list(counts)
    fig = new_figure(520, 60 + 26 * max(len(labels), 1))
    ax = fig.subplots()
    ax.tick_params(labelsize=FONT)
    values = np.array([float(counts[k]) for k in labels])
    ax.barh(np.arange(len(labels)), values, color="tab:orange")
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=FONT)
    ax.set_xlim(0, max(float(values.max()) if values.size else 0.0, 1.0) * 1.25)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(4))
    _style(ax, title, "visibilities newly flagged", "")
    h = fig.bbox.height
    fig.subplots_adjust(left=170 / 520, right=0.97, top=1 - 24 / h, bottom=36 / h)
    return fig


def save(fig: Figure, png_path: str | Path, alt: str, caption: str) -> FigureInfo:
    """Write `fig` as a PNG (atomically; zlib level 1: line plots compress nearly as well, and
    several times faster, than at the default 6) and describe it."""
    import io

    from almarules.engine.io import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": "almarules (matplotlib Agg)"},
                pil_kwargs={"compress_level": 1})
    data = buf.getvalue()
    write_bytes_atomic(png_path, lambda fh: fh.write(data))
    width, height = (int(v) for v in np.round(fig.get_size_inches() * DPI))
    return FigureInfo(path=Path(png_path), width_px=width, height_px=height, alt=alt, caption=caption)


def thumbnail(full_png: str | Path, png_path: str | Path, alt: str, caption: str,
              width_px: int = THUMB_W) -> FigureInfo:
    """A copy of `full_png` scaled to `width_px` wide (never enlarged), written atomically."""
    import io

    from PIL import Image  # matplotlib's own dependency

    from almarules.engine.io import write_bytes_atomic

    with Image.open(full_png) as im:
        scale = min(1.0, width_px / im.width)
        small = im.convert("RGB").resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                                         Image.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    write_bytes_atomic(png_path, lambda fh: fh.write(data))
    return FigureInfo(path=Path(png_path), width_px=small.width, height_px=small.height, alt=alt, caption=caption)
