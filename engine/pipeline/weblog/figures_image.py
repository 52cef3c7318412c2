"""Figures of FITS image products: a thumbnail of one plane, the peak spectrum of a cube, and
its integrated intensity (moment 0).

Conventions: pixels and channels are 0-based; a plane is ``data[y, x]`` as astropy reads it,
shown with ``origin="lower"`` on `astropy.visualization.wcsaxes` axes (RA, Dec labels). Extra
axes (Stokes) take their first plane. Frequencies come from the WCS spectral axis (converted to
frequency when it is a velocity axis with RESTFRQ); beams from BMAJ/BMIN/BPA (deg) or, per
channel, the CASA ``BEAMS`` table (arcsec). Blank (NaN) pixels are drawn in `BACKGROUND`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from almarules.engine.pipeline.weblog.figures import (FONT, ImageFigure, Moment0Figure, SpectrumFigure,
                                                      axes_box_px, blank_text, new_figure, save_png)

__all__ = ["KINDS", "image_thumbnail", "peak_spectrum", "moment0"]

#: Product kinds a thumbnail knows (engine/stages/imaging/writer.py).
KINDS = ("image", "pbcor", "residual", "model", "psf", "pb", "mask", "alpha", "alpha.error", "weight")
_BEAM_KINDS = {"image", "pbcor", "residual"}
_UNITLESS = {"psf": "PSF (peak 1)", "pb": "PB gain", "mask": "clean mask", "image": "(no unit)",
             "pbcor": "(no unit)", "residual": "(no unit)", "model": "(no unit)", "alpha": "spectral index",
             "alpha.error": "spectral index error", "weight": "sum of squared beams (pointings)"}
_KIND_NAMES = {"image": "image (not PB-corrected)", "pbcor": "PB-corrected image", "residual": "residual",
               "model": "clean model", "psf": "PSF", "pb": "primary beam", "mask": "clean mask",
               "alpha": "spectral index", "alpha.error": "spectral index error", "weight": "mosaic weight"}
#: the range shown of a spectral-index map (steep synchrotron to optically thin dust)
ALPHA_RANGE = (-3.0, 4.0)
BACKGROUND = "#d0d0d0"
"""Colour of blank (NaN) pixels: light grey, outside every colour map used."""
C_KMS = 299792.458  # speed of light (km/s)
_FWHM_AREA = math.pi / (4.0 * math.log(2.0))  # Gaussian beam area / (bmaj * bmin)
_SAMPLE = 1 << 16  # pixels used for percentiles and the rms of a plane (a strided sample)
_IMAGE_RECT = (0.2, 0.13, 0.6, 0.72)  # thumbnail axes (figure fractions: left, bottom, width, height)
_CBAR_RECT = (0.83, 0.13, 0.035, 0.72)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Cube:
    """An open FITS image: data (nchan, ny, nx) (memory-mapped), its header, the celestial WCS,
    channel frequencies and widths (Hz, None without a spectral axis), per-channel beams
    (bmaj, bmin deg, bpa deg) or None."""

    data: np.ndarray
    header: Any
    celestial: Any
    frequency_hz: np.ndarray | None
    width_hz: np.ndarray | None
    beams: list[tuple[float, float, float]] | None

    @property
    def nchan(self) -> int:
        return int(self.data.shape[0])

    def plane(self, k: int) -> np.ndarray:
        return np.array(self.data[k], dtype=np.float64)

    @property
    def bunit(self) -> str:
        return str(self.header.get("BUNIT", "")).strip()

    def pixel_area_deg2(self) -> float:
        from astropy.wcs.utils import proj_plane_pixel_area

        return float(proj_plane_pixel_area(self.celestial))

    def beam_px(self, k: int) -> tuple[float, float, float] | None:
        """The beam of channel k: major, minor FWHM in pixels (of the Dec axis), PA (deg)."""
        if not self.beams:
            return None
        bmaj, bmin, bpa = self.beams[min(k, len(self.beams) - 1)]
        if not (bmaj > 0 and bmin > 0):
            return None
        pix = math.sqrt(self.pixel_area_deg2())
        return bmaj / pix, bmin / pix, bpa


def _wcs(header: Any) -> Any:
    """The header's WCS, with wcslib's standard fixes applied quietly (no FITSFixedWarning: the
    global warning filters are not touched, so this is safe in threads)."""
    from astropy.wcs import WCS

    w = WCS(header, fix=False)
    w.wcs.fix()
    w.wcs.set()
    return w


def _axes_view(data: np.ndarray, naxis: int, lng: int, lat: int, spec: int) -> np.ndarray:
    """`data` (numpy order: last FITS axis first) as (nchan, ny, nx): other axes take index 0."""
    index = tuple(slice(None) if i in (lng, lat, spec) else 0 for i in reversed(range(naxis)))
    view = data[index]
    kept = [i for i in reversed(range(naxis)) if i in (lng, lat, spec)]  # FITS axes in view order
    if spec < 0:
        view, kept = view[np.newaxis], [-1, *kept]
    return np.transpose(view, [kept.index(a) for a in (spec, lat, lng)])


def _spectral(w: Any, spec: int, nchan: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Channel centre frequencies and widths (Hz) from the spectral axis (FITS index `spec`)."""
    if spec < 0:
        return None, None
    s = w.sub([spec + 1])
    if not s.wcs.ctype[0].upper().startswith("FREQ"):
        try:
            s.wcs.sptr("FREQ-???")
        except Exception:  # noqa: BLE001 - wcslib cannot convert (no rest frequency): no frequencies
            return None, None
    k = np.arange(nchan, dtype=np.float64)
    f = np.asarray(s.pixel_to_world_values(k), dtype=np.float64)
    width = np.abs(np.asarray(s.pixel_to_world_values(k + 0.5)) - np.asarray(s.pixel_to_world_values(k - 0.5)))
    return f, width


def _beams(hdul: Any, header: Any, nchan: int) -> list[tuple[float, float, float]] | None:
    """Per-channel beams (deg, deg, deg) from a CASA BEAMS table, else the header's one beam."""
    if "BEAMS" in hdul:
        t = hdul["BEAMS"]
        rows = t.data
        scale = {"arcsec": 1 / 3600.0, "deg": 1.0, "rad": math.degrees(1.0)}
        sa = scale.get((t.columns["BMAJ"].unit or "arcsec").strip().lower(), 1 / 3600.0)
        by_chan = {int(c): (float(a) * sa, float(b) * sa, float(p))
                   for c, a, b, p, pol in zip(rows["CHAN"], rows["BMAJ"], rows["BMIN"], rows["BPA"],
                                              rows["POL"], strict=True) if int(pol) == 0}
        if len(by_chan) == nchan:
            return [by_chan[k] for k in range(nchan)]
    if all(key in header for key in ("BMAJ", "BMIN", "BPA")):
        return [(float(header["BMAJ"]), float(header["BMIN"]), float(header["BPA"]))]
    return None


@contextlib.contextmanager
def _open(path: str | Path) -> Iterator[_Cube]:
    """Open the FITS image `path` (its primary HDU) as a `_Cube`, memory-mapped."""
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        header = hdul[0].header
        if hdul[0].data is None:
            raise ValueError(f"{path}: the primary HDU has no data")
        w = _wcs(header)
        lng, lat, spec = w.wcs.lng, w.wcs.lat, w.wcs.spec
        if lng < 0 or lat < 0:
            raise ValueError(f"{path}: no celestial (RA/Dec) axes in the header")
        data = _axes_view(hdul[0].data, w.naxis, lng, lat, spec)
        freq, width = _spectral(w, spec, data.shape[0])
        celestial = w.sub([lng + 1, lat + 1])  # RA then Dec, the order of the (y, x) planes' x and y
        yield _Cube(data, header, celestial, freq, width, _beams(hdul, header, data.shape[0]))


def _mask_plane(mask_fits: str | Path, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Plane k (or the only plane) of a clean mask, as booleans; its shape must be `shape`."""
    with _open(mask_fits) as m:
        plane = m.plane(min(k, m.nchan - 1))
    if plane.shape != shape:
        raise ValueError(f"{mask_fits}: mask plane {plane.shape} does not match the image plane {shape}")
    return np.nan_to_num(plane) > 0.5


# ---------------------------------------------------------------- stretches


@dataclass(frozen=True)
class _Display:
    """How a plane is shown: data to draw (scaled to `unit`), norm, colour map, stretch name,
    colour range and rms (in `unit`), and the scale applied to the FITS values."""

    data: np.ndarray
    norm: Any
    cmap: Any
    stretch: str
    vmin: float
    vmax: float
    unit: str
    rms: float | None
    scale: float


def _sample(plane: np.ndarray) -> np.ndarray:
    """Finite values of a strided sample of at most about `_SAMPLE` pixels."""
    step = max(1, int(math.sqrt(plane.size / _SAMPLE)))
    v = plane[::step, ::step]
    return v[np.isfinite(v)]


def robust_rms(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from the median (the rms of Gaussian noise)."""
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _unit_scale(bunit: str, amax: float) -> tuple[float, str]:
    """(factor, unit) that make values of up to `amax` readable: Jy -> mJy or uJy when small."""
    if not bunit.startswith("Jy") or not amax > 0:
        return 1.0, bunit
    for factor, prefix in ((1.0, ""), (1e3, "m"), (1e6, "\u00b5")):
        if amax * factor >= 1.0:
            return factor, prefix + bunit
    return 1e6, "\u00b5" + bunit


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=BACKGROUND)


def _signed_display(plane: np.ndarray, bunit: str, *, symmetric: bool) -> _Display:
    """Images and residuals: asinh stretch (linear within 3 rms) from the 0.5 percentile to the
    peak; residuals (symmetric): linear, +-max(|0.5|, |99.5| percentile), diverging map."""
    from matplotlib.colors import AsinhNorm, Normalize

    vals = _sample(plane)
    rms = robust_rms(vals)
    lo, hi = (float(v) for v in np.percentile(vals, [0.5, 99.5]))
    peak = float(np.nanmax(plane))
    scale, unit = _unit_scale(bunit, max(abs(lo), abs(peak)))
    if symmetric:
        top = max(abs(lo), abs(hi)) * scale or 1.0
        return _Display(plane * scale, Normalize(-top, top), _cmap("RdBu_r"), "linear", -top, top, unit,
                        rms * scale, scale)
    vmin, vmax = lo * scale, peak * scale
    if not vmax > vmin:
        vmin, vmax = vmin - 1.0, vmin + 1.0
    width = max(3.0 * rms * scale, 1e-3 * (vmax - vmin))
    return _Display(plane * scale, AsinhNorm(linear_width=width, vmin=vmin, vmax=vmax), _cmap("inferno"),
                    "asinh", vmin, vmax, unit, rms * scale, scale)


def _model_display(plane: np.ndarray, bunit: str) -> _Display:
    """Clean model: log stretch of the positive components over 3 decades below the brightest;
    non-positive pixels are shown in the colour map's lowest colour."""
    from matplotlib.colors import LogNorm

    peak = float(np.nanmax(plane))
    scale, unit = _unit_scale(bunit, peak)
    vmax = peak * scale if peak > 0 else 1.0
    vmin = vmax * 1e-3
    data = np.where(plane > 0, plane * scale, vmin * 0.5)
    data[~np.isfinite(plane)] = np.nan
    return _Display(data, LogNorm(vmin, vmax), _cmap("magma").with_extremes(under="black", bad=BACKGROUND),
                    "log", vmin, vmax, unit, None, scale)


def _display(kind: str, plane: np.ndarray, bunit: str) -> _Display:
    """The stretch of a `kind` plane (see the module's KINDS)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize

    if kind in ("image", "pbcor"):
        return _signed_display(plane, bunit, symmetric=False)
    if kind == "residual":
        return _signed_display(plane, bunit, symmetric=True)
    if kind == "model":
        return _model_display(plane, bunit)
    if kind == "psf":
        return _Display(plane, Normalize(-0.2, 1.0), _cmap("viridis"), "linear", -0.2, 1.0, bunit, None, 1.0)
    if kind == "pb":
        return _Display(plane, Normalize(0.0, 1.0), _cmap("viridis"), "linear", 0.0, 1.0, bunit, None, 1.0)
    if kind == "alpha":
        lo, hi = ALPHA_RANGE
        return _Display(plane, Normalize(lo, hi), _cmap("RdYlBu_r").with_extremes(bad=BACKGROUND), "linear", lo, hi,
                        bunit, None, 1.0)
    if kind in ("alpha.error", "weight"):
        finite = plane[np.isfinite(plane)]
        hi = float(np.percentile(finite, 99.5)) if finite.size and kind == "alpha.error" else (
            float(finite.max()) if finite.size else 1.0)
        hi = hi if hi > 0 else 1.0
        return _Display(plane, Normalize(0.0, hi), _cmap("viridis").with_extremes(bad=BACKGROUND), "linear", 0.0, hi,
                        bunit, None, 1.0)
    cmap = ListedColormap(["#2b2b2b", "#f2c14e"]).with_extremes(bad=BACKGROUND)
    return _Display(np.where(np.isnan(plane), np.nan, (plane > 0.5).astype(float)), BoundaryNorm([-0.5, 0.5, 1.5], 2),
                    cmap, "binary", 0.0, 1.0, bunit, None, 1.0)


def _block_max(data: np.ndarray, factor: int) -> np.ndarray:
    """Maximum over factor x factor blocks (NaN-padded), so single-pixel components stay visible."""
    ny, nx = data.shape
    py, px = -ny % factor, -nx % factor
    padded = np.pad(data, ((0, py), (0, px)), constant_values=np.nan)
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1)  # fmax skips NaN; all-NaN stays NaN


def blank_reason(plane: np.ndarray) -> str | None:
    """Why a plane shows nothing: "all NaN" (no finite pixel), "all zero", or None."""
    finite = np.isfinite(plane)
    if not finite.any():
        return "all pixels blank (NaN)"
    if not np.any(plane[finite]):
        return "all pixels zero"
    return None


# ---------------------------------------------------------------- drawing helpers


def _sky_panel(wcs: Any, plane: np.ndarray, size_px: int) -> tuple[Any, Any, Optional[str]]:
    """A square figure with WCS axes for `plane`; when the plane cannot be shown (`blank_reason`),
    the axes already say why and the reason is returned."""
    fig = new_figure(size_px, size_px)
    ax = _wcs_axes(fig, wcs)
    blank = blank_reason(plane)
    if blank:
        blank_text(ax, blank)
    return fig, ax, blank


def _wcs_axes(fig: Any, wcs: Any, rect: tuple[float, float, float, float] = _IMAGE_RECT) -> Any:
    """WCS axes with small RA/Dec labels."""
    ax = fig.add_axes(rect, projection=wcs)
    ra, dec = ax.coords[0], ax.coords[1]
    ra.set_axislabel("RA (ICRS)", size=FONT, minpad=0.3)
    dec.set_axislabel("Dec (ICRS)", size=FONT, minpad=-0.2)
    for c in (ra, dec):
        c.set_ticklabel(size=FONT - 1, exclude_overlapping=True)
        c.set_ticks(number=3)
    ra.set_major_formatter("hh:mm:ss.s")
    dec.set_major_formatter("dd:mm:ss")
    ax.set_facecolor(BACKGROUND)
    return ax


def _show(fig: Any, ax: Any, disp: _Display, kind: str, shape: tuple[int, int]) -> None:
    """Draw the plane and its colour bar."""
    ny, nx = shape
    data = disp.data
    factor = math.ceil(max(nx, ny) / max(ax.get_window_extent().width, 1.0))  # image pixels per screen pixel
    if kind == "model" and factor > 1:
        data = _block_max(data, factor)
    im = ax.imshow(data, origin="lower", norm=disp.norm, cmap=disp.cmap, interpolation="nearest" if
                   factor <= 1 else "antialiased", extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    cax = fig.add_axes(_CBAR_RECT)
    cb = fig.colorbar(im, cax=cax, extend="neither")
    cb.ax.tick_params(labelsize=FONT - 1, length=2, pad=1)
    if kind == "mask":
        cb.set_ticks([0, 1], labels=["out", "in"])
    elif disp.stretch == "asinh":
        cb.set_ticks(_asinh_ticks(disp.norm), labels=[f"{t:g}" for t in _asinh_ticks(disp.norm)])
    cb.set_label(disp.unit or _UNITLESS[kind], size=FONT, labelpad=2)


def _asinh_ticks(norm: Any, n: int = 6) -> list[float]:
    """Colour-bar ticks of an asinh norm: evenly spaced in the stretched scale, rounded to two
    significant digits, with 0 when inside the range."""
    raw = [float(norm.inverse(q)) for q in np.linspace(0.0, 1.0, n)]
    ticks = {float(f"{t:.2g}") for t in raw} | ({0.0} if norm.vmin < 0 < norm.vmax else set())
    span = norm.vmax - norm.vmin
    inside = sorted(t for t in ticks if norm.vmin - 1e-9 * span <= t <= norm.vmax + 1e-9 * span)
    return [t for i, t in enumerate(inside) if i == 0 or float(norm(t)) - float(norm(inside[i - 1])) > 0.08]


def _draw_beam(ax: Any, beam_px: tuple[float, float, float], shape: tuple[int, int]) -> None:
    """The restoring beam (FWHM ellipse) in the lower-left corner. RA increases to the left, so a
    PA east of north turns the major axis anticlockwise from up: matplotlib's angle convention."""
    from matplotlib.patches import Ellipse

    bmaj, bmin, bpa = beam_px
    pad = 0.04 * max(shape) + bmaj / 2
    ax.add_patch(Ellipse((pad - 0.5, pad - 0.5), width=bmin, height=bmaj, angle=bpa, facecolor="white",
                         edgecolor="black", linewidth=0.6, alpha=0.9, zorder=5))


def _pick_channel(nchan: int, channel: int | None) -> int:
    if channel is None:
        return nchan // 2
    if not 0 <= channel < nchan:
        raise ValueError(f"channel {channel} outside 0..{nchan - 1}")
    return channel


def _plane_words(cube: _Cube, k: int, channel: int | None) -> str:
    if cube.nchan == 1:
        return "single plane" if cube.frequency_hz is None else f"{cube.frequency_hz[0] / 1e9:.4f} GHz"
    which = "middle channel" if channel is None else "channel"
    at = "" if cube.frequency_hz is None else f" at {cube.frequency_hz[k] / 1e9:.4f} GHz"
    return f"{which} {k} of 0..{cube.nchan - 1}{at}"


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _q(v: float, unit: str) -> str:
    """A value with its unit (3 significant digits)."""
    return f"{_fmt(v)} {unit}".rstrip()


# ---------------------------------------------------------------- the figures


def image_thumbnail(fits_path: str | Path, png_path: str | Path, kind: str, *, size_px: int = 320,
                    mask_fits: str | Path | None = None, channel: int | None = None,
                    pblimit: float | None = None) -> ImageFigure:
    """A `size_px` square PNG of one plane of a `kind` product (one of `KINDS`).

    The plane: the only one, or channel `channel` of a cube (default: the middle channel,
    ``nchan // 2``). Stretches: image/pbcor asinh (linear within 3 rms) from the 0.5 percentile
    to the peak; residual linear, symmetric about 0 at the larger of the 0.5/99.5 percentiles;
    psf linear -0.2..1; pb linear 0..1 with a contour at `pblimit` when given; model log over 3
    decades below its peak; mask binary. Image kinds get the restoring beam in the lower left;
    `mask_fits` adds the clean-mask outline (cyan). A plane with no finite or no non-zero pixel
    still gives a PNG that says so. Returns what was drawn (`ImageFigure`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    with _open(fits_path) as cube:
        k = _pick_channel(cube.nchan, channel)
        plane = cube.plane(k)
        wcs, bunit, obj = cube.celestial, cube.bunit, str(cube.header.get("OBJECT", "")).strip()
        beam = cube.beam_px(k) if kind in _BEAM_KINDS else None
        where = _plane_words(cube, k, channel)
        nchan = cube.nchan
    outline = _mask_plane(mask_fits, k, plane.shape) if mask_fits is not None else None
    fig, ax, blank = _sky_panel(wcs, plane, size_px)
    disp = None
    if blank:
        ax.set_xlim(-0.5, plane.shape[1] - 0.5)
        ax.set_ylim(-0.5, plane.shape[0] - 0.5)
    else:
        disp = _display(kind, plane, bunit)
        _show(fig, ax, disp, kind, plane.shape)
        if kind == "pb" and pblimit is not None:
            ax.contour(np.nan_to_num(plane), levels=[pblimit], colors="white", linewidths=0.7)
        if outline is not None and outline.any():
            ax.contour(outline.astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
        if beam is not None:
            _draw_beam(ax, beam, plane.shape)
    title = f"{obj} {kind}".strip()
    fig.text(0.5, 0.975, title, ha="center", va="top", fontsize=FONT + 1)
    fig.text(0.5, 0.925, where, ha="center", va="top", fontsize=FONT - 1, color="0.3")
    caption = _thumbnail_caption(kind, obj, where, disp, blank, beam, wcs, pblimit, outline is not None)
    width, height = save_png(fig, png_path)
    return ImageFigure(path=Path(png_path), width_px=width, height_px=height,
                       alt=f"Thumbnail of the {_KIND_NAMES[kind]} of {obj or 'the field'}, {where}",
                       caption=caption, stretch=disp.stretch if disp else "none",
                       vmin=disp.vmin if disp else None, vmax=disp.vmax if disp else None,
                       unit=disp.unit if disp else bunit, channel=k if nchan > 1 else None, nchan=nchan,
                       rms=disp.rms if disp else None, blank=blank, beam_px=beam, axes_px=axes_box_px(fig, ax))


def _thumbnail_caption(kind: str, obj: str, where: str, disp: _Display | None, blank: str | None,
                       beam: tuple[float, float, float] | None, wcs: Any, pblimit: float | None,
                       masked: bool) -> str:
    name = _KIND_NAMES[kind]
    parts = [f"{name[0].upper()}{name[1:]} of {obj or 'the field'}, {where}."]
    if blank or disp is None:
        return " ".join([*parts, f"Nothing to show: {blank}."])
    parts.append(f"{disp.stretch} stretch, {_fmt(disp.vmin)} to {_q(disp.vmax, disp.unit)}.")
    if disp.rms is not None:
        parts.append(f"rms {_q(disp.rms, disp.unit)} (1.4826 MAD of the plane).")
    if beam is not None:
        from astropy.wcs.utils import proj_plane_pixel_area

        arcsec = math.sqrt(float(proj_plane_pixel_area(wcs))) * 3600.0
        parts.append(f"Beam {beam[0] * arcsec:.3g}\u2033 \u00d7 {beam[1] * arcsec:.3g}\u2033, PA {beam[2]:.0f}\u00b0 "
                     "(lower left).")
    if kind == "pb" and pblimit is not None:
        parts.append(f"White contour: PB = {pblimit:g}.")
    if masked:
        parts.append("Cyan contour: clean mask.")
    parts.append("Grey: blank pixels.")
    return " ".join(parts)


# ---------------------------------------------------------------- cubes


def _cube_peak(cube: _Cube) -> tuple[int, int, int] | None:
    """(channel, y, x) of the largest finite value of the cube, read plane by plane; None if none."""
    best, where = -np.inf, None
    for k in range(cube.nchan):
        plane = cube.plane(k)
        finite = np.isfinite(plane)
        if not finite.any():
            continue
        flat = int(np.argmax(np.where(finite, plane, -np.inf)))
        if plane.flat[flat] > best:
            best, where = float(plane.flat[flat]), (k, *np.unravel_index(flat, plane.shape))
    return None if where is None else tuple(int(v) for v in where)


def _mask_flux(cube: _Cube, mask_fits: str | Path) -> np.ndarray | None:
    """Per channel: sum of the pixels inside the mask / beam area in pixels (Jy for Jy/beam);
    None without a beam."""
    if not cube.beams:
        return None
    pix = cube.pixel_area_deg2()
    out = np.empty(cube.nchan)
    with _open(mask_fits) as m:
        if m.data.shape[1:] != cube.data.shape[1:]:
            raise ValueError(f"{mask_fits}: mask planes {m.data.shape[1:]} do not match the cube's {cube.data.shape[1:]}")
        for k in range(cube.nchan):
            inside = np.nan_to_num(m.plane(min(k, m.nchan - 1))) > 0.5
            bmaj, bmin, _ = cube.beams[min(k, len(cube.beams) - 1)]
            out[k] = np.nansum(cube.plane(k)[inside]) / (_FWHM_AREA * bmaj * bmin / pix)
    return out


def peak_spectrum(cube_fits: str | Path, png_path: str | Path, *, mask_fits: str | Path | None = None,
                  width_px: int = 480, height_px: int = 300) -> SpectrumFigure:
    """The spectrum at the cube's peak pixel (the largest finite value over all channels) against
    frequency (GHz, from the WCS spectral axis; channel numbers on the top axis), with the
    flux density within `mask_fits` (sum / beam area, right axis) when given. Returns the
    plotted arrays (`SpectrumFigure`)."""
    with _open(cube_fits) as cube:
        peak = _cube_peak(cube)
        obj, bunit = str(cube.header.get("OBJECT", "")).strip(), cube.bunit
        k, y, x = peak if peak is not None else (0, 0, 0)
        spec = np.array(cube.data[:, y, x], dtype=np.float64)
        freq = cube.frequency_hz / 1e9 if cube.frequency_hz is not None else None
        flux = _mask_flux(cube, mask_fits) if mask_fits is not None and peak is not None else None
        mask_unit = bunit.replace("/beam", "") if flux is not None else ""
    chans = np.arange(spec.size)
    fig = new_figure(width_px, height_px)
    ax = fig.add_axes((0.14, 0.16, 0.72 if flux is not None else 0.8, 0.64))
    xs = freq if freq is not None else chans
    scale, unit = _unit_scale(bunit, float(np.nanmax(np.abs(spec))) if peak is not None else 0.0)
    if peak is None:
        blank_text(ax, "all pixels blank (NaN)")
    else:
        _plot_spectrum(ax, xs, spec * scale, k, freq is not None, unit, flux, mask_unit)
    ax.set_xlabel("frequency (GHz)" if freq is not None else "channel", fontsize=FONT)
    ax.set_ylabel(f"peak pixel ({unit})" if unit else "peak pixel", fontsize=FONT, color="C0")
    ax.tick_params(labelsize=FONT - 1)
    fig.text(0.5, 0.98, f"{obj} peak spectrum".strip(), ha="center", va="top", fontsize=FONT + 1)
    where = f"pixel (x={x}, y={y}), peak in channel {k}" + (f" at {freq[k]:.5f} GHz" if freq is not None else "")
    caption = (f"Spectrum of {obj or 'the cube'} at its brightest {where}"
               f"{'; right axis: flux density inside the clean mask' if flux is not None else ''}."
               if peak is not None else "The cube has no finite pixel.")
    w, h = save_png(fig, png_path)
    return SpectrumFigure(path=Path(png_path), width_px=w, height_px=h, alt=f"Peak spectrum of {obj or 'the cube'}",
                          caption=caption, unit=unit, channel=chans, frequency_ghz=freq if freq is not None
                          else np.full(spec.size, np.nan), peak=spec, peak_pixel=(x, y), peak_channel=k,
                          mask_flux=flux)


def _plot_spectrum(ax: Any, xs: np.ndarray, ys: np.ndarray, k: int, has_freq: bool, unit: str,
                   flux: np.ndarray | None, flux_unit: str) -> None:
    """Draw the peak spectrum (steps), the peak channel, the channel axis on top, the mask flux."""
    ax.step(xs, ys, where="mid", color="C0", linewidth=0.9, label="peak pixel")
    ax.axvline(xs[k], color="0.5", linestyle=":", linewidth=0.8)
    ax.axhline(0.0, color="0.7", linewidth=0.5)
    if has_freq and xs.size > 1 and xs[1] != xs[0]:
        f0, df = float(xs[0]), float(xs[1] - xs[0])
        top = ax.secondary_xaxis("top", functions=(lambda f: (f - f0) / df, lambda c: f0 + c * df))
        top.set_xlabel("channel", fontsize=FONT)
        top.tick_params(labelsize=FONT - 1)
    if flux is not None:
        ax2 = ax.twinx()
        ax2.step(xs, flux, where="mid", color="C1", linewidth=0.9, label="in mask")
        ax2.set_ylabel(f"in mask ({flux_unit})", fontsize=FONT, color="C1")
        ax2.tick_params(labelsize=FONT - 1, colors="C1")


def _rest_frequency(header: Any) -> float | None:
    for key in ("RESTFRQ", "RESTFREQ"):
        v = header.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    return None


def _integrate(cube: _Cube, first: int, last: int, dx: np.ndarray) -> np.ndarray:
    """sum_k I_k dx_k over channels first..last; NaN where every channel is NaN."""
    total = np.zeros(cube.data.shape[1:])
    seen = np.zeros(cube.data.shape[1:], dtype=bool)
    for k in range(first, last + 1):
        plane = cube.plane(k)
        finite = np.isfinite(plane)
        total += np.where(finite, plane, 0.0) * dx[k]
        seen |= finite
    return np.where(seen, total, np.nan)


def moment0(cube_fits: str | Path, png_path: str | Path, *, size_px: int = 320,
            channels: tuple[int, int] | None = None) -> Moment0Figure:
    """Integrated intensity sum_k I_k dx_k over channels (first, last) (default: all), no
    continuum subtracted. dx_k is the channel width as radio velocity, c |dnu_k| / RESTFRQ
    (Jy/beam.km/s) when the header has a rest frequency, else |dnu_k| in GHz (Jy/beam.GHz).
    Drawn like an image thumbnail (asinh stretch, beam). Returns the map (`Moment0Figure`)."""
    with _open(cube_fits) as cube:
        if cube.width_hz is None:
            raise ValueError(f"{cube_fits}: no spectral axis to integrate over")
        first, last = channels if channels is not None else (0, cube.nchan - 1)
        if not 0 <= first <= last < cube.nchan:
            raise ValueError(f"channels ({first}, {last}) outside 0..{cube.nchan - 1}")
        rest = _rest_frequency(cube.header)
        dx = cube.width_hz * C_KMS / rest if rest else cube.width_hz / 1e9
        mom = _integrate(cube, first, last, dx)
        bunit = cube.bunit or "Jy/beam"
        unit = f"{bunit}.km/s" if rest else f"{bunit}.GHz"
        beam = cube.beam_px((first + last) // 2)
        wcs, obj = cube.celestial, str(cube.header.get("OBJECT", "")).strip()
        freqs = cube.frequency_hz[[first, last]] / 1e9
    fig, ax, blank = _sky_panel(wcs, mom, size_px)
    disp = None
    if not blank:
        disp = _signed_display(mom, unit, symmetric=False)
        _show(fig, ax, disp, "image", mom.shape)
        if beam is not None:
            _draw_beam(ax, beam, mom.shape)
    span = f"channels {first}..{last} ({freqs[0]:.4f}\u2013{freqs[1]:.4f} GHz)"
    fig.text(0.5, 0.975, f"{obj} moment 0".strip(), ha="center", va="top", fontsize=FONT + 1)
    fig.text(0.5, 0.925, span, ha="center", va="top", fontsize=FONT - 1, color="0.3")
    how = (f"velocity widths from RESTFRQ {rest / 1e9:.6f} GHz (radio)" if rest else
           "no rest frequency: integrated over frequency in GHz")
    caption = (f"Integrated intensity (moment 0) of {obj or 'the cube'} over {span}, no continuum subtracted; "
               f"{how}." + (f" {disp.stretch} stretch, {_fmt(disp.vmin)} to {_q(disp.vmax, disp.unit)}."
                            if disp else f" Nothing to show: {blank}."))
    w, h = save_png(fig, png_path)
    return Moment0Figure(path=Path(png_path), width_px=w, height_px=h,
                         alt=f"Integrated intensity map of {obj or 'the cube'}", caption=caption,
                         stretch=disp.stretch if disp else "none", vmin=disp.vmin if disp else None,
                         vmax=disp.vmax if disp else None, unit=disp.unit if disp else unit,
                         moment=mom * disp.scale if disp else mom,
                         channels=(first, last))
