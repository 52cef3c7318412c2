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
`write_image` writes an array held in memory; `CubeWriter` streams a cube plane by plane.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from astropy.io import fits

from almarules.engine.io import write_bytes_atomic, write_error
from almarules.kernels.beam import Beam

if TYPE_CHECKING:
    from astropy.wcs import WCS

_MJD0 = datetime(1858, 11, 17)  # MJD 0, the origin of MS TIME (seconds)

__all__ = [
    "INTENT_ABBREVIATIONS",
    "sanitize_name",
    "field_tokens",
    "product_name",
    "write_image",
    "CubeWriter",
    "Observation",
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

#: SPECSYS -> VELREF (AIPS convention, as CASA's exportfits writes it): 1 LSR, 2 heliocentric,
#: 3 observatory, +256 for the radio velocity definition.
_VELREF: dict[str, int] = {"LSRK": 257, "BARYCENT": 258, "HELIOCEN": 258, "TOPOCENT": 259}


@dataclass(frozen=True)
class Observation:
    """What the data say about the observation, for the header (as CASA's exportfits writes it).

    date_obs_mjd_s: the first integration imaged, MJD seconds in UTC (the MS TIME of the earliest
    row) -> DATE-OBS (ISO, UTC), MJD-OBS (days), TIMESYS = 'UTC'. observer -> OBSERVER.
    obsgeo_m: ITRF (X, Y, Z) of the array reference position, metres -> OBSGEO-X/Y/Z and the
    geodetic OBSGEO-L/B/H (deg, deg, m) exactly as wcslib would derive them (`_wcslib_geodetic`).
    """

    date_obs_mjd_s: float | None = None
    observer: str | None = None
    obsgeo_m: tuple[float, float, float] | None = None


def _observation_cards(h: fits.Header, obs: Observation, ra: float, dec: float, telescope: str) -> None:
    h["INSTRUME"] = telescope
    if obs.observer:
        h["OBSERVER"] = obs.observer
    if obs.date_obs_mjd_s is not None:
        t = _finite("date_obs_mjd_s", obs.date_obs_mjd_s)
        when = _MJD0 + timedelta(seconds=t)  # UTC; a date inside a leap second is not representable
        h["DATE-OBS"] = (when.isoformat(timespec="microseconds"), "first integration imaged (UTC)")
        h["MJD-OBS"] = (t / 86400.0, "DATE-OBS as MJD (UTC, days)")
        h["TIMESYS"] = ("UTC", "time scale of DATE-OBS and MJD-OBS")
    h["OBSRA"] = (ra, "pointing centre RA (deg)")
    h["OBSDEC"] = (dec, "pointing centre Dec (deg)")
    if obs.obsgeo_m is not None:
        xyz = [_finite("obsgeo_m", v) for v in obs.obsgeo_m]
        for axis, v in zip("XYZ", xyz, strict=True):
            h[f"OBSGEO-{axis}"] = (v, f"array reference position ITRF {axis} (m)")
        for axis, v, what in zip("LBH", _wcslib_geodetic(xyz), ("longitude (deg)", "latitude (deg)", "height (m)"),
                                 strict=True):
            h[f"OBSGEO-{axis}"] = (v, f"array reference {what}")


def _wcslib_geodetic(xyz: Sequence[float]) -> tuple[float, float, float]:
    """(OBSGEO-L, -B, -H) in deg, deg, m as wcslib derives them from OBSGEO-X/Y/Z (its 'obsfix'):
    on the IAU 1976 ellipsoid of WCS Paper VII (a = 6378140 m, f = 1 / 298.2577), latitude by
    four fixed-point iterations of zeta = z / (1 - n e^2 / rho). Written with X/Y/Z, readers
    built on wcslib (astropy, CARTA) find the pair consistent (to 1 m) and change nothing; the
    height differs from a WGS84 one by metres, below any use in imaging."""
    a, f = 6378140.0, 1.0 / 298.2577
    e2 = (2.0 - f) * f
    x, y, z = (float(v) for v in xyz)
    r2 = x * x + y * y
    zeta, rho, sinlat, n = z, 0.0, 0.0, a
    for _ in range(4):
        rho = math.sqrt(r2 + zeta * zeta)
        sinlat = zeta / rho
        n = a / math.sqrt(1.0 - e2 * sinlat * sinlat)
        zeta = z / (1.0 - n * e2 / rho)
    return math.degrees(math.atan2(y, x)), math.degrees(math.asin(sinlat)), rho - n


#: FITS Stokes axis codes (WCS Paper I, table 7).
_STOKES_CODE: dict[str, int] = {"I": 1, "Q": 2, "U": 3, "V": 4, "RR": -1, "LL": -2, "RL": -3, "LR": -4,
                                "XX": -5, "YY": -6, "XY": -7, "YX": -8}

#: BITPIX -> numpy dtype of the data.
_DTYPES: dict[int, type[np.floating]] = {-32: np.float32, -64: np.float64}

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")
_TOKEN = re.compile(r"^[A-Za-z0-9_+-]+$")
_PROV_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
PROVENANCE_PREFIX = "ALMARULES"


# --------------------------------------------------------------------------- names

#: Longest name component (field, OUS id) in a product name, in characters (= bytes: ASCII).
MAX_COMPONENT = 64


def sanitize_name(text: str) -> str:
    """`text` as one component of a product name, in the ALMA pipeline's character set.

    Every character outside ``[A-Za-z0-9_.+-]`` (slashes, spaces, NUL, any non-ASCII character)
    becomes ``_``; a run of dots becomes ``_`` and so do leading and trailing dots, so a component
    never holds ``..`` nor makes one with the dots that join components; an empty text is ``_``.
    A result longer than `MAX_COMPONENT` characters keeps its first 55 and ends in ``-`` and 8 hex
    digits of the SHA-256 of `text`, so distinct long names stay distinct. Names that need no
    change (``SIMGAL_1``, ``J1520-2500``) are kept as they are; ``NGC 2872`` becomes ``NGC_2872``
    and ``../../etc/x`` becomes ``____etc_x`` (see `field_tokens` for names that would collide).
    """
    out = _UNSAFE.sub("_", text)
    out = re.sub(r"\.{2,}", "_", out)
    out = re.sub(r"^\.|\.$", "_", out) or "_"
    if len(out) > MAX_COMPONENT:
        out = f"{out[:MAX_COMPONENT - 9]}-{_digest(text)}"
    return out


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def field_tokens(names: Iterable[str]) -> dict[str, str]:
    """Each name -> its component in product names: `sanitize_name`, except that names which
    would share one component (``a/b`` and ``a b``) each get ``-`` and 8 hex digits of their own
    SHA-256 appended, so two fields never write to the same products."""
    names = sorted(set(names))
    plain = {n: sanitize_name(n) for n in names}
    count: dict[str, int] = {}
    for token in plain.values():
        count[token] = count.get(token, 0) + 1
    return {n: (t if count[t] == 1 else f"{t[:MAX_COMPONENT - 9]}-{_digest(n)}") for n, t in plain.items()}


def product_name(mous_id: str, field: str, intent: str, spw_ids: Iterable[int | str] | int | str,
                 specmode: str, stokes: str = "I", kind: str = "pbcor", field_token: str | None = None) -> str:
    """The product FITS file name (pipeline.md "Products").

    mous_id: ``uid://A001/X2fa/X2dd`` (or already ``uid___A001_X2fa_X2dd``); field: the field
    name, sanitised; intent: TARGET, CHECK, PHASE, BANDPASS, AMPLITUDE or POLARIZATION (any
    case); spw_ids: one id or several, joined by ``_`` in the order given; specmode (mfs, cont,
    cube, ...) and stokes are single tokens without dots, kind (pbcor, pb, tt0.pbcor, alpha.error, ...)
    tokens joined by dots; field_token:
    the field's component when given (`field_tokens`), else ``sanitize_name(field)``.
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
    for label, token in (("specmode", specmode), ("stokes", stokes)):
        if not _TOKEN.match(token or ""):
            raise ValueError(f"{label} must be a non-empty token of [A-Za-z0-9_+-], got {token!r}")
    if not all(_TOKEN.match(part) for part in (kind or "").split(".")):
        raise ValueError(f"kind must be tokens of [A-Za-z0-9_+-] joined by dots (tt0.pbcor), got {kind!r}")
    token = sanitize_name(field) if field_token is None else field_token
    parts = [sanitize_name(mous_id), f"{token}_{abbrev}", "spw" + "_".join(spws),
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


def _beam_list(beam: Beam | Sequence[Beam] | None, nchan: int) -> list[Beam]:
    """[] (no beam), [one beam] (a single or all-identical beams) or one beam per channel."""
    if beam is None:
        return []
    if isinstance(beam, Beam):
        return [_check_beam(beam)]
    beams = [_check_beam(b) for b in beam]
    if len(beams) != nchan:
        raise ValueError(f"{len(beams)} beams given for {nchan} channels")
    return beams[:1] if len(set(beams)) == 1 else beams


def _primary_header(nx: int, ny: int, nchan: int, *, ra_deg: float, dec_deg: float, cell_arcsec: float,
                    freq_hz: float, chan_width_hz: float, specframe: str, beams: Sequence[Beam], bunit: str,
                    object_name: str, telescope: str, restfreq_hz: float | None,
                    provenance: Mapping[str, str | float | int | bool] | None, history: Iterable[str],
                    stokes: str, bitpix: int, date: datetime | None,
                    observation: Observation | None = None) -> fits.Header:
    """The validated primary header of an ``(1, nchan, ny, nx)`` image (see `write_image`).

    beams: as returned by `_beam_list`; more than one: CASAMBM = T and the median-area beam.
    """
    if bitpix not in _DTYPES:
        raise ValueError(f"bitpix must be -32 or -64, got {bitpix}")
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

    h = fits.Header()
    h["SIMPLE"] = (True, "conforms to FITS standard")
    h["BITPIX"] = (bitpix, "array data type")
    h["NAXIS"] = (4, "number of array dimensions")
    for i, n in enumerate((nx, ny, nchan, 1), start=1):
        h[f"NAXIS{i}"] = n
    h["EXTEND"] = True
    h["BTYPE"] = "Intensity"
    h["BUNIT"] = (bunit, "brightness (pixel) unit")
    h["OBJECT"] = object_name
    h["TELESCOP"] = telescope
    h["ORIGIN"] = "almarules"
    h["DATE"] = ((date or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                 "written (UTC; image: the run's start)")
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
    if specsys in _VELREF:
        h["VELREF"] = (_VELREF[specsys], "1 LSR, 2 HEL, 3 OBS, +256 radio (AIPS)")
    _observation_cards(h, observation or Observation(), ra, dec, telescope)
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
    return h


def write_image(path: str | Path, data: np.ndarray, *, ra_deg: float, dec_deg: float, cell_arcsec: float,
                freq_hz: float, chan_width_hz: float, specframe: str = "LSRK",
                beam: Beam | Sequence[Beam] | None = None, bunit: str = "Jy/beam", object_name: str,
                telescope: str = "ALMA", restfreq_hz: float | None = None,
                provenance: Mapping[str, str | float | int | bool] | None = None,
                history: Iterable[str] = (), stokes: str = "I", bitpix: int = -32,
                date: datetime | None = None, observation: Observation | None = None) -> Path:
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
    observation: DATE-OBS, MJD-OBS, TIMESYS, OBSERVER, OBSGEO-* (see `Observation`); OBSRA/OBSDEC
    (the phase centre), INSTRUME (= telescope) and, for LSRK/BARYCENT/TOPOCENT, VELREF are always
    written, as CASA's exportfits does.
    Cubes larger than memory: `CubeWriter`.
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None, :, :]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"data must have shape (nx, ny) or (nchan, nx, ny), got {np.shape(data)}")
    _check_real(arr)
    nchan, nx, ny = arr.shape
    beams = _beam_list(beam, nchan)
    header = _primary_header(nx, ny, nchan, ra_deg=ra_deg, dec_deg=dec_deg, cell_arcsec=cell_arcsec,
                             freq_hz=freq_hz, chan_width_hz=chan_width_hz, specframe=specframe, beams=beams,
                             bunit=bunit, object_name=object_name, telescope=telescope,
                             restfreq_hz=restfreq_hz, provenance=provenance, history=history,
                             stokes=stokes, bitpix=bitpix, date=date, observation=observation)
    cube = np.ascontiguousarray(arr.transpose(0, 2, 1), dtype=_DTYPES[bitpix])[None]  # (1, nchan, ny, nx)
    hdu = fits.PrimaryHDU(cube)  # SIMPLE ... EXTEND from the data (PrimaryHDU(header=) would drop EXTEND)
    hdu.header.extend(header, strip=True, end=True)  # the rest of the cards, in order
    hdul = fits.HDUList([hdu] + ([_beams_hdu(beams)] if len(beams) > 1 else []))
    hdul.verify("exception")
    target = Path(path)
    # verified just above: writeto need not verify every card again (a third of the write time).
    # Serialised in memory first: astropy's free-space check turns a write's OSError (a full disk)
    # into an AttributeError; our own write reports it as one line naming the file (WriteError).
    buf = io.BytesIO()
    hdul.writeto(buf, checksum=True, output_verify="ignore")
    write_bytes_atomic(target, lambda fh: fh.write(buf.getbuffer()))
    return target


def _check_real(arr: np.ndarray) -> None:
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"data must be real numbers, got dtype {arr.dtype}")


# --------------------------------------------------------------------------- streaming cubes

_BLOCK = 2880  # FITS block (bytes)
_CARD = 80  # FITS header card (bytes)


def _ones_complement_sum(buf: np.ndarray | bytes, total: int = 0) -> int:
    """32-bit ones' complement sum (FITS checksum convention) of big-endian words, added to `total`.

    buf: a whole number of 4-byte words, at a 4-byte offset in the HDU.
    """
    words = np.frombuffer(buf, dtype=">u4")
    for start in range(0, words.size, 1 << 30):  # uint64 partial sums cannot overflow
        total += int(words[start:start + (1 << 30)].sum(dtype=np.uint64))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def _encode_checksum(total: int) -> str:
    """The 16-character CHECKSUM value that makes the HDU sum to -0 (FITS checksum, A.7.2)."""
    value = ~total & 0xFFFFFFFF
    excluded = set(range(0x3A, 0x41)) | set(range(0x5B, 0x61))  # punctuation between 0-9, A-Z, a-z
    chars = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        ch = [byte // 4 + 0x30 + byte % 4] + [byte // 4 + 0x30] * 3
        moved = True
        while moved:
            moved = False
            for j in (0, 2):
                if ch[j] in excluded or ch[j + 1] in excluded:
                    ch[j] += 1
                    ch[j + 1] -= 1
                    moved = True
        for j in range(4):
            chars[4 * j + i] = ch[j]
    return bytes(chars[15:] + chars[:15]).decode("ascii")


def _header_bytes(header: fits.Header, size: int) -> bytes:
    """`header` as exactly `size` bytes (a multiple of 2880), END in the last block.

    Blank cards (legal, ignored) fill the gap before END when the header needs fewer blocks.
    """
    body = header.tostring(sep="", endcard=False, padding=False)
    if len(body) + _CARD > size:
        raise RuntimeError(f"header needs {len(body) + _CARD} bytes, only {size} reserved")
    text = body.ljust(max(len(body), size - _BLOCK)) + "END".ljust(_CARD)
    return text.ljust(size).encode("ascii")


def _extension_bytes(hdu: fits.BinTableHDU) -> bytes:
    """`hdu` as written after a primary HDU: header and padded data, with CHECKSUM/DATASUM."""
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf, checksum=True)
    raw = buf.getvalue()
    with fits.open(io.BytesIO(raw)) as hdul:
        start = hdul.fileinfo(1)["hdrLoc"]
    return raw[start:]


class CubeWriter:
    """Stream a FITS cube to `path` one channel plane at a time, atomically (memory: ~one plane).

    The header keywords are those of `write_image`; ``nx, ny, nchan`` give the shape of the
    gridding-convention cube ``(nchan, nx, ny)``. Use as a context manager::

        with CubeWriter(path, nx, ny, nchan, ra_deg=..., ..., object_name="NGC 2872") as cw:
            for k in range(nchan):
                cw.write_plane(k, plane_k, beam=beam_k)   # plane_k[ix, iy], written transposed

    Entering creates a temporary ``.<name>.<random>.tmp`` in the target's directory (as
    `engine.io.write_bytes_atomic` does). A clean exit with all planes written completes the
    file (below), fsyncs it and renames it onto `path` (0o666 & ~umask); an exception in the
    block, an incomplete cube (ValueError) or a failure while completing removes the temporary
    file and leaves an existing `path` untouched.

    Beams: ``set_beams(beam)`` (one Beam or one per channel, any time before exit) or a beam with
    every `write_plane` (not both); the result is as `write_image` with that ``beam``. Because the
    primary header precedes the data, its space is reserved when entering: the header is built
    (and validated) with the largest beam card set (BMAJ/BMIN/BPA, CASAMBM, its COMMENT) plus
    CHECKSUM/DATASUM. At exit the final header (the same `_primary_header`, the real beams) is
    rewritten in place over that fixed-size block range; any cards it no longer needs become blank
    cards before END. This never moves the data (astropy's update mode may rewrite the whole
    file when a header shrinks). The BEAMS table, if any, is appended after the padded data.

    DATE is the time the file is completed unless ``date`` is given.

    Checksums: DATASUM is accumulated plane by plane (the ones' complement sum is additive over
    4-byte-aligned pieces; the zero padding adds nothing) and CHECKSUM is computed from the final
    header, so both verify with astropy without re-reading the cube. The BEAMS table gets its own.
    """

    def __init__(self, path: str | Path, nx: int, ny: int, nchan: int, *, ra_deg: float, dec_deg: float,
                 cell_arcsec: float, freq_hz: float, chan_width_hz: float, specframe: str = "LSRK",
                 beam: Beam | Sequence[Beam] | None = None, bunit: str = "Jy/beam", object_name: str,
                 telescope: str = "ALMA", restfreq_hz: float | None = None,
                 provenance: Mapping[str, str | float | int | bool] | None = None,
                 history: Iterable[str] = (), stokes: str = "I", bitpix: int = -32,
                 date: datetime | None = None, observation: Observation | None = None) -> None:
        for name, n in (("nx", nx), ("ny", ny), ("nchan", nchan)):
            if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n <= 0:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        self.path = Path(path)
        self.nx, self.ny, self.nchan = int(nx), int(ny), int(nchan)
        self._keywords = dict(ra_deg=ra_deg, dec_deg=dec_deg, cell_arcsec=cell_arcsec, freq_hz=freq_hz,
                              chan_width_hz=chan_width_hz, specframe=specframe, bunit=bunit,
                              object_name=object_name, telescope=telescope, restfreq_hz=restfreq_hz,
                              provenance=dict(provenance or {}), history=[str(x) for x in history],
                              stokes=stokes, bitpix=bitpix, date=date, observation=observation)
        widest = [Beam(2.0, 1.0, 0.0), Beam(1.0, 1.0, 0.0)]  # the header with every beam card
        self._header_size = len(self._header(widest, 0, "0" * 16).tostring())  # validates the keywords
        self._dtype = np.dtype(_DTYPES[bitpix]).newbyteorder(">")
        self._beams: list[Beam] | None = None  # from set_beams
        self._plane_beams: list[Beam] = []  # from write_plane
        if beam is not None:
            self.set_beams(beam)
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None
        self._state = "new"  # -> "open" -> "done"
        self._next = 0  # the next plane to write
        self._datasum = 0

    # -- header

    def _header(self, beams: Sequence[Beam], datasum: int, checksum: str) -> fits.Header:
        h = _primary_header(self.nx, self.ny, self.nchan, beams=beams, **self._keywords)
        h["CHECKSUM"] = (checksum, "HDU checksum")
        h["DATASUM"] = (str(datasum), "data unit checksum")
        return h

    def _final_header_bytes(self, beams: Sequence[Beam]) -> bytes:
        """The final primary header, padded to the reserved size, with a valid CHECKSUM."""
        h = self._header(beams, self._datasum, "0" * 16)
        total = _ones_complement_sum(_header_bytes(h, self._header_size), self._datasum)
        h["CHECKSUM"] = _encode_checksum(total)
        return _header_bytes(h, self._header_size)

    # -- beams and planes

    def set_beams(self, beam: Beam | Sequence[Beam]) -> None:
        """One Beam for the cube or one per channel (then a BEAMS table unless all are identical)."""
        if self._plane_beams:
            raise ValueError("beams were given with the planes; do not also call set_beams")
        beams = _beam_list(beam, self.nchan)
        self._beams = beams

    def write_plane(self, k: int, plane: np.ndarray, beam: Beam | None = None) -> None:
        """Append channel `k` (0-based, in order): ``plane[ix, iy]``, shape (nx, ny); its beam, if any."""
        if self._state != "open" or self._fh is None:
            raise RuntimeError("write_plane outside the with block")
        if k != self._next:
            raise ValueError(f"planes must be written in order: expected plane {self._next}, got {k}")
        arr = np.asarray(plane)
        if arr.shape != (self.nx, self.ny):
            raise ValueError(f"plane must have shape (nx, ny) = {(self.nx, self.ny)}, got {arr.shape}")
        _check_real(arr)
        if beam is not None and self._beams is not None:
            raise ValueError("beams were given with set_beams; do not also give them with the planes")
        if k > 0 and (beam is not None) != bool(self._plane_beams):
            raise ValueError("give a beam with every plane or with none")
        if beam is not None:
            self._plane_beams.append(_check_beam(beam))
        raw = np.ascontiguousarray(arr.T, dtype=self._dtype)  # FITS plane (ny, nx), big-endian
        try:
            self._fh.write(raw.data)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        self._datasum = _ones_complement_sum(raw, self._datasum)
        self._next += 1

    # -- context manager

    def __enter__(self) -> CubeWriter:
        if self._state != "new":
            raise RuntimeError("a CubeWriter can be entered only once")
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        self._tmp = Path(tmp)
        self._state = "open"
        try:
            self._fh = os.fdopen(fd, "wb")
            self._fh.write(b" " * self._header_size)  # reserved; written at exit
        except BaseException as exc:
            self._discard()
            if isinstance(exc, OSError):
                raise write_error(self.path, exc) from None
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self._discard()
            return
        if self._next != self.nchan:
            self._discard()
            raise ValueError(f"only {self._next} of {self.nchan} planes written; {self.path} not written")
        try:
            self._complete()
        except BaseException as exc:
            self._discard()
            if isinstance(exc, OSError):
                raise write_error(self.path, exc) from None
            raise

    def _complete(self) -> None:
        assert self._fh is not None and self._tmp is not None
        fh = self._fh
        beams = self._beams if self._beams is not None else _beam_list(self._plane_beams or None, self.nchan)
        data_bytes = self.nchan * self.nx * self.ny * self._dtype.itemsize
        fh.write(b"\0" * (-data_bytes % _BLOCK))
        if len(beams) > 1:
            fh.write(_extension_bytes(_beams_hdu(beams)))
        fh.seek(0)
        fh.write(self._final_header_bytes(beams))
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        with fits.open(self._tmp) as hdul:  # headers only: the data are not read
            hdul.verify("exception")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        self._state = "done"

    def _discard(self) -> None:
        self._state = "done"
        if self._fh is not None:
            self._fh.close()
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass


# --------------------------------------------------------------------------- reading (tests, tools)

def read_image_wcs(path: str | Path) -> tuple["WCS", fits.Header]:
    """The 4-D WCS and the primary header of a FITS image."""
    from astropy.wcs import WCS

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
