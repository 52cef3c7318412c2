"""Image products: pipeline product names and FITS image files (written atomically).

Names follow /work/shared/spec/pipeline.md ("Products"):

    <oussid>.<field>_<intent>.spw<ids joined by _>.<specmode>.<stokes>.<kind>.fits

e.g. ``uid___A001_X2fa_X2dd.NGC_2872_sci.spw25.cube.I.pbcor.fits``.

FITS images are 4-D (RA---SIN, DEC--SIN, FREQ, STOKES), astropy data shape
``(1, nchan, ny, nx)``, built from arrays in the `kernels.gridding` convention: ``image[ix, iy]``
(2-D mfs) or ``cube[k, ix, iy]``, phase centre at pixel ``(nx // 2, ny // 2)``, RA increasing
towards ix = 0, so the FITS plane is ``image.T`` with CDELT1 = -cell, CRPIX1 = nx // 2 + 1,
CRPIX2 = ny // 2 + 1 (FITS pixels are 1-based). Channel k (0-based) is at
``freq_hz + k * chan_width_hz`` (CRPIX3 = 1).

Units: angles in degrees in the header (cells and beam axes are given in arcsec), frequencies
in Hz. Per-channel beams of a cube are written as a CASA-style ``BEAMS`` binary table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from almarules.engine.io import write_bytes_atomic
from almarules.kernels.beam import Beam

__all__ = [
    "INTENT_ABBREVIATIONS",
    "sanitize_name",
    "product_name",
    "write_image",
    "read_image_wcs",
    "read_image",
    "read_provenance",
    "write_bytes_atomic",
]

#: Intent -> abbreviation used in product names (pipeline.md).
INTENT_ABBREVIATIONS: dict[str, str] = {
    "TARGET": "sci",
    "CHECK": "chk",
    "PHASE": "ph",
    "BANDPASS": "bp",
    "AMPLITUDE": "flux",
    "POLARIZATION": "pol",
}

#: CASA frequency-frame names -> FITS SPECSYS values (FITS names are accepted as they are).
_SPECSYS: dict[str, str] = {
    "LSRK": "LSRK", "LSRD": "LSRD", "BARY": "BARYCENT", "BARYCENT": "BARYCENT",
    "TOPO": "TOPOCENT", "TOPOCENT": "TOPOCENT", "GEO": "GEOCENTR", "GEOCENTR": "GEOCENTR",
    "HELIOCEN": "HELIOCEN", "GALACTO": "GALACTOC", "GALACTOC": "GALACTOC",
    "LGROUP": "LOCALGRP", "LOCALGRP": "LOCALGRP", "CMB": "CMBDIPOL", "CMBDIPOL": "CMBDIPOL",
    "REST": "SOURCE", "SOURCE": "SOURCE",
}

#: FITS Stokes axis codes (WCS Paper I, table 7).
_STOKES_CODE: dict[str, int] = {"I": 1, "Q": 2, "U": 3, "V": 4, "RR": -1, "LL": -2, "RL": -3, "LR": -4,
                                "XX": -5, "YY": -6, "XY": -7, "YX": -8}

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")
_TOKEN = re.compile(r"^[A-Za-z0-9_+-]+$")
_PROV_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
PROVENANCE_PREFIX = "ALMARULES"


# --------------------------------------------------------------------------- names

def sanitize_name(text: str) -> str:
    """`text` with every character outside ``[A-Za-z0-9_.+-]`` replaced by ``_``."""
    return _UNSAFE.sub("_", text)


def product_name(mous_id: str, field: str, intent: str, spw_ids: Iterable[int | str] | int | str,
                 specmode: str, stokes: str = "I", kind: str = "pbcor") -> str:
    """The product FITS file name (pipeline.md "Products").

    mous_id: ``uid://A001/X2fa/X2dd`` (or already ``uid___A001_X2fa_X2dd``); field: the field
    name, sanitised; intent: TARGET, CHECK, PHASE, BANDPASS, AMPLITUDE or POLARIZATION (any
    case); spw_ids: one id or several, joined by ``_`` in the order given; specmode (mfs, cont,
    cube, ...), stokes and kind (pbcor, pb, ...) are single tokens without dots.
    """
    if not mous_id or not field:
        raise ValueError("mous_id and field must be non-empty")
    try:
        abbrev = INTENT_ABBREVIATIONS[intent.upper()]
    except KeyError:
        raise ValueError(f"unknown intent {intent!r}; expected one of {sorted(INTENT_ABBREVIATIONS)}") from None
    ids = [spw_ids] if isinstance(spw_ids, (int, str)) else list(spw_ids)
    if not ids:
        raise ValueError("spw_ids must name at least one spectral window")
    spws: list[str] = []
    for s in ids:
        text = str(s).strip()
        if isinstance(s, bool) or not text.isdigit():
            raise ValueError(f"spw id must be a non-negative integer, got {s!r}")
        spws.append(str(int(text)))
    for label, token in (("specmode", specmode), ("stokes", stokes), ("kind", kind)):
        if not _TOKEN.match(token or ""):
            raise ValueError(f"{label} must be a non-empty token of [A-Za-z0-9_+-], got {token!r}")
    parts = [sanitize_name(mous_id), f"{sanitize_name(field)}_{abbrev}", "spw" + "_".join(spws),
             specmode, stokes, kind, "fits"]
    return ".".join(parts)


# --------------------------------------------------------------------------- writing

def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _check_beam(b: Beam) -> Beam:
    if not isinstance(b, Beam):
        raise TypeError(f"beam must be a kernels.beam.Beam, got {type(b).__name__}")
    for name in ("bmaj_arcsec", "bmin_arcsec"):
        if not (math.isfinite(getattr(b, name)) and getattr(b, name) > 0):
            raise ValueError(f"beam {name} must be positive and finite, got {b}")
    if not math.isfinite(b.bpa_deg):
        raise ValueError(f"beam bpa_deg must be finite, got {b}")
    return b


def _median_area_beam(beams: Sequence[Beam]) -> Beam:
    """The beam of median area (the lower median for an even count), as CASA reports for cubes."""
    order = sorted(range(len(beams)), key=lambda i: beams[i].bmaj_arcsec * beams[i].bmin_arcsec)
    return beams[order[(len(order) - 1) // 2]]


def _beams_hdu(beams: Sequence[Beam]) -> fits.BinTableHDU:
    """CASA ``BEAMS`` table: BMAJ, BMIN (arcsec), BPA (deg), CHAN, POL (0-based), one row a channel."""
    n = len(beams)
    cols = [
        fits.Column(name="BMAJ", format="1D", unit="arcsec", array=np.array([b.bmaj_arcsec for b in beams])),
        fits.Column(name="BMIN", format="1D", unit="arcsec", array=np.array([b.bmin_arcsec for b in beams])),
        fits.Column(name="BPA", format="1D", unit="deg", array=np.array([b.bpa_deg for b in beams])),
        fits.Column(name="CHAN", format="1J", array=np.arange(n, dtype=np.int32)),
        fits.Column(name="POL", format="1J", array=np.zeros(n, dtype=np.int32)),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="BEAMS")
    hdu.header["EXTVER"] = 1
    hdu.header["NCHAN"] = (n, "number of channels with a beam")
    hdu.header["NPOL"] = (1, "number of polarizations with a beam")
    return hdu


def _provenance_cards(header: fits.Header, provenance: Mapping[str, str | float | int | bool]) -> None:
    for key, value in provenance.items():
        if not _PROV_KEY.match(key):
            raise ValueError(f"provenance key {key!r} must match [A-Za-z0-9_.-]{{1,40}}")
        if isinstance(value, str):
            if not value.isascii() or not value.isprintable():
                raise ValueError(f"provenance {key!r}: FITS strings must be printable ASCII, got {value!r}")
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, (int, np.integer)):
            value = int(value)
        elif isinstance(value, (float, np.floating)):
            value = _finite(f"provenance {key!r}", value)
        else:
            raise TypeError(f"provenance {key!r}: value must be str, float, int or bool, got {type(value).__name__}")
        # HIERARCH keeps the key's case and length; long strings continue on CONTINUE cards.
        header[f"HIERARCH {PROVENANCE_PREFIX} {key}"] = value


def write_image(path: str | Path, data: np.ndarray, *, ra_deg: float, dec_deg: float, cell_arcsec: float,
                freq_hz: float, chan_width_hz: float, specframe: str = "LSRK",
                beam: Beam | Sequence[Beam] | None = None, bunit: str = "Jy/beam", object_name: str,
                telescope: str = "ALMA", restfreq_hz: float | None = None,
                provenance: Mapping[str, str | float | int | bool] | None = None,
                history: Iterable[str] = (), stokes: str = "I", bitpix: int = -32,
                date: datetime | None = None) -> Path:
    """Write a 4-D FITS image (RA---SIN, DEC--SIN, FREQ, STOKES) atomically; return the path.

    data: ``(nx, ny)`` (mfs) or ``(nchan, nx, ny)`` in the gridding convention; written as
    ``(1, nchan, ny, nx)``. ra_deg, dec_deg: phase centre (ICRS, deg), at pixel (nx//2, ny//2).
    cell_arcsec: square cell (arcsec). freq_hz: centre of channel 0 (Hz); chan_width_hz: channel
    spacing (Hz, may be negative; for mfs the bandwidth). specframe: CASA or FITS frame name,
    written as SPECSYS. beam: one Beam, or one per channel (a cube): then a ``BEAMS`` table
    (CASAMBM = T) and the median-area beam as BMAJ/BMIN/BPA; identical beams collapse to one.
    provenance: ``HIERARCH ALMARULES <key>`` keywords (long strings on CONTINUE cards; trailing
    blanks are not significant in FITS). history: HISTORY cards (wrapped at 72 characters).
    bitpix: -32 (float32, as CASA exports) or -64. date: DATE (UTC; default now).
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None, :, :]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"data must have shape (nx, ny) or (nchan, nx, ny), got {np.shape(data)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"data must be real numbers, got dtype {arr.dtype}")
    dtypes = {-32: np.float32, -64: np.float64}
    if bitpix not in dtypes:
        raise ValueError(f"bitpix must be -32 or -64, got {bitpix}")
    nchan, nx, ny = arr.shape
    cube = np.ascontiguousarray(arr.transpose(0, 2, 1), dtype=dtypes[bitpix])[None]  # (1, nchan, ny, nx)

    ra = _finite("ra_deg", ra_deg) % 360.0
    dec = _finite("dec_deg", dec_deg)
    cell = _finite("cell_arcsec", cell_arcsec)
    freq = _finite("freq_hz", freq_hz)
    width = _finite("chan_width_hz", chan_width_hz)
    if not -90.0 <= dec <= 90.0:
        raise ValueError(f"dec_deg must lie in [-90, 90], got {dec_deg}")
    if cell <= 0 or freq <= 0 or width == 0:
        raise ValueError("cell_arcsec and freq_hz must be positive and chan_width_hz non-zero")
    try:
        specsys = _SPECSYS[specframe.upper()]
    except KeyError:
        raise ValueError(f"unknown specframe {specframe!r}; expected one of {sorted(_SPECSYS)}") from None
    if stokes.upper() not in _STOKES_CODE:
        raise ValueError(f"stokes must be one of {sorted(_STOKES_CODE)}, got {stokes!r}")

    beams: list[Beam] = []
    if isinstance(beam, Beam):
        beams = [_check_beam(beam)]
    elif beam is not None:
        beams = [_check_beam(b) for b in beam]
        if len(beams) != nchan:
            raise ValueError(f"{len(beams)} beams given for {nchan} channels")
        if len(set(beams)) == 1:
            beams = beams[:1]

    hdu = fits.PrimaryHDU(cube)
    h = hdu.header
    h["BTYPE"] = "Intensity"
    h["BUNIT"] = (bunit, "brightness (pixel) unit")
    h["OBJECT"] = object_name
    h["TELESCOP"] = telescope
    h["ORIGIN"] = "almarules"
    h["DATE"] = ((date or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                 "file written (UTC)")
    h["RADESYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    h["LONPOLE"] = 180.0
    h["LATPOLE"] = dec
    axes = [
        ("RA---SIN", ra, nx // 2 + 1, -cell / 3600.0, "deg"),
        ("DEC--SIN", dec, ny // 2 + 1, cell / 3600.0, "deg"),
        ("FREQ", freq, 1, width, "Hz"),
        ("STOKES", float(_STOKES_CODE[stokes.upper()]), 1, 1.0, ""),
    ]
    for i, (ctype, crval, crpix, cdelt, cunit) in enumerate(axes, start=1):
        h[f"CTYPE{i}"] = ctype
        h[f"CRVAL{i}"] = crval
        h[f"CRPIX{i}"] = float(crpix)
        h[f"CDELT{i}"] = cdelt
        h[f"CUNIT{i}"] = cunit
    h["SPECSYS"] = (specsys, "frame of the FREQ axis")
    if restfreq_hz is not None:
        rest = _finite("restfreq_hz", restfreq_hz)
        if rest <= 0:
            raise ValueError("restfreq_hz must be positive")
        h["RESTFRQ"] = (rest, "rest frequency (Hz)")
    if beams:
        ref = beams[0] if len(beams) == 1 else _median_area_beam(beams)
        h["BMAJ"] = (ref.bmaj_arcsec / 3600.0, "beam major axis FWHM (deg)")
        h["BMIN"] = (ref.bmin_arcsec / 3600.0, "beam minor axis FWHM (deg)")
        h["BPA"] = (float(ref.bpa_deg), "beam position angle, east of north (deg)")
        if len(beams) > 1:
            h["CASAMBM"] = (True, "per-channel beams in the BEAMS table")
            h.add_comment("BMAJ/BMIN/BPA: the median-area beam; per-channel beams in extension BEAMS.")
    if provenance:
        h.add_comment(f"Provenance: HIERARCH {PROVENANCE_PREFIX} <key> keywords.")
        _provenance_cards(h, provenance)
    for line in history:
        h.add_history(str(line))

    hdul = fits.HDUList([hdu] + ([_beams_hdu(beams)] if len(beams) > 1 else []))
    hdul.verify("exception")
    target = Path(path)
    write_bytes_atomic(target, lambda fh: hdul.writeto(fh, checksum=True))
    return target


# --------------------------------------------------------------------------- reading (tests, tools)

def read_image_wcs(path: str | Path) -> tuple[WCS, fits.Header]:
    """The 4-D WCS and the primary header of a FITS image."""
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
    return WCS(header), header


def read_image(path: str | Path) -> tuple[np.ndarray, fits.Header, list[Beam]]:
    """(data in the gridding convention: ``(nchan, nx, ny)``, primary header, beams).

    Beams: one per channel from a ``BEAMS`` table, else the single BMAJ/BMIN/BPA beam, else [].
    """
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        cube = np.array(hdul[0].data)
        beams: list[Beam] = []
        if "BEAMS" in hdul:
            t = hdul["BEAMS"].data
            beams = [Beam(float(a), float(b), float(p)) for a, b, p in zip(t["BMAJ"], t["BMIN"], t["BPA"])]
        elif "BMAJ" in header:
            beams = [Beam(header["BMAJ"] * 3600.0, header["BMIN"] * 3600.0, float(header["BPA"]))]
    if cube.ndim != 4 or cube.shape[0] != 1:
        raise ValueError(f"expected a (1, nchan, ny, nx) image, got shape {cube.shape}")
    return cube[0].transpose(0, 2, 1), header, beams


def read_provenance(header: fits.Header) -> dict[str, str | float | int | bool]:
    """The ``HIERARCH ALMARULES <key>`` keywords of `header`, by key (case as written)."""
    prefix = PROVENANCE_PREFIX + " "
    return {k[len(prefix):]: header[k] for k in header.keys() if k.upper().startswith(prefix)}
