"""Writing one image's products: FITS files named as pipeline.md says (``.pbcor.fits`` and
``.pb.fits``; with extra products also the non-pbcor ``.image``, ``.residual``, ``.model``,
``.psf`` and ``.mask``) and the JSON record (``.record.json``), all atomically. Cubes stream
plane by plane (`engine.products.CubeWriter`), so memory does not grow with the channels.

Headers: SIN projection at the field's phase centre (converted to ICRS), the frequency axis in
LSRK, Stokes I, BMAJ/BMIN/BPA (a cube: per-channel beams in a BEAMS table), BUNIT, the keywords
CASA's exportfits writes about the observation (TELESCOP, INSTRUME, OBSERVER, OBJECT, DATE-OBS of
the earliest row imaged, MJD-OBS, TIMESYS, OBSRA/OBSDEC, OBSGEO-X/Y/Z of the array reference
position, RESTFRQ: the spw's rest frequency, else as CASA the centre of the selected channels,
SPECSYS, VELREF), and provenance keywords: the rule set and its hash, the ``--set`` assignments, the image parameters
with the rule lines that set them, the threshold, the MSs and the data column.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import numpy as np

from almarules import __version__
from almarules.engine.products import fits as fitsio
from almarules.engine.stages.imaging.job import ImageJob, split_key
from almarules.engine.stages.imaging.record import ImageRecord, Product
from almarules.engine.io import TEMP_PATTERN, write_atomic, write_error
from almarules.engine.ms.facts import observation_info
from almarules.engine.ms import visibilities as msdata
from almarules.kernels.beam import Beam

if TYPE_CHECKING:
    from almarules.engine.stages.imaging.stage import Stage

BASIC = ("pbcor", "pb")
EXTRA = ("image", "residual", "model", "psf", "mask", "weight")
#: multi-term (mtmfs, nterms 2) images, named as the pipeline names CASA's .ttN products
TAYLOR_BASIC = ("tt0.pbcor", "pb.tt0", "alpha", "alpha.error")
TAYLOR_EXTRA = ("tt1.pbcor", "image.tt0", "image.tt1", "residual.tt0", "residual.tt1", "model.tt0", "model.tt1",
                "psf.tt0", "psf.tt1", "psf.tt2", "mask", "weight")
_BUNIT = {"pbcor": "Jy/beam", "image": "Jy/beam", "residual": "Jy/beam", "model": "Jy/pixel", "psf": "",
          "pb": "", "mask": "", "weight": "", "alpha": "", "alpha.error": ""}
_HAS_BEAM = {"pbcor", "image", "residual"}


def base_kind(kind: str) -> str:
    """The single-term kind a Taylor kind is of: tt0.pbcor -> pbcor, image.tt1 -> image."""
    return ".".join(part for part in kind.split(".") if not (part.startswith("tt") and part[2:].isdigit()))


_OBSERVATORY_ALIASES = {"EVLA": "VLA", "JVLA": "VLA"}


def _itrf_xyz(position: dict) -> tuple[float, float, float]:
    """(X, Y, Z) in metres of a casacore position measure, converted to ITRF."""
    from casacore.measures import measures

    p = measures().measure(position, "ITRF")
    lon, lat, r = p["m0"]["value"], p["m1"]["value"], p["m2"]["value"]
    return (r * math.cos(lat) * math.cos(lon), r * math.cos(lat) * math.sin(lon), r * math.sin(lat))


def _array_position(telescope: str, antenna_centre: Optional[tuple[float, float, float]]
                    ) -> Optional[tuple[float, float, float]]:
    """ITRF (X, Y, Z) in metres of the observatory named `telescope` in casacore's observatory
    table (as CASA uses it), else `antenna_centre` (the mean antenna position)."""
    from casacore.measures import measures

    dm = measures()
    name = _OBSERVATORY_ALIASES.get(telescope.upper(), telescope.upper())
    known = {o.upper(): o for o in dm.obslist()}
    if name in known:
        return _itrf_xyz(dm.observatory(known[name]))
    return antenna_centre


#: casacore direction frames that need no epoch or position to convert to ICRS
_FIXED_FRAMES = frozenset({"ICRS", "J2000", "B1950", "B1950_VLA", "GALACTIC", "SUPERGAL", "ECLIPTIC"})


def to_icrs(ra_deg: float, dec_deg: float, frame: str) -> tuple[float, float]:
    """(RA, Dec) in ICRS (deg) of a direction in one of casacore's time-independent celestial
    frames (`_FIXED_FRAMES`); a direction in any other frame is returned unchanged."""
    from casacore.measures import measures

    if frame.upper() not in _FIXED_FRAMES:
        return ra_deg, dec_deg
    dm = measures()
    d = dm.measure(dm.direction(frame.upper(), f"{ra_deg!r}deg", f"{dec_deg!r}deg"), "ICRS")
    return math.degrees(d["m0"]["value"]) % 360.0, math.degrees(d["m1"]["value"])


#: The kinds of FITS products an image can have.
KINDS = tuple(dict.fromkeys(BASIC + EXTRA + TAYLOR_BASIC + TAYLOR_EXTRA))
#: A product of ours: ``<stem>.<kind>.fits`` with the stem of `engine.products.product_name`
#: (``<ous>.<field>_<intent>.spw<ids>.<specmode>.I``); its record is ``<stem>.record.json``.
_PRODUCT = re.compile(r"^(?P<stem>[A-Za-z0-9_.+-]+_[a-z]+\.spw\d+(?:_\d+)*\.[A-Za-z0-9_+-]+\.I)"
                      r"\.(?P<kind>" + "|".join(re.escape(k) for k in sorted(KINDS, key=len, reverse=True))
                      + r"|record)\.(?:fits|json)$")


def leftovers(out: Path) -> list[tuple[Path, str]]:
    """What killed runs left in the directory `out`, with the reason to remove each: temporary
    files of our atomic writes of products (``.<product>.<random>.tmp``), and FITS products
    written by almarules (header ORIGIN) of an image whose record is missing: the record is
    written last, so such a set is incomplete. Nothing else is ever listed."""
    found = []
    for path in sorted(out.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        tmp = TEMP_PATTERN.match(path.name)
        if tmp and _PRODUCT.match(tmp["target"]):
            found.append((path, "the temporary file of an interrupted write"))
            continue
        m = _PRODUCT.match(path.name)
        if (m and m["kind"] != "record" and not (out / f"{m['stem']}.record.json").exists()
                and _ours(path)):
            found.append((path, "a product of an image without its record (an interrupted run); "
                                "the image is made again"))
    return found


def _ours(path: Path) -> bool:
    """A FITS file almarules wrote (ORIGIN = 'almarules' in its primary header)."""
    from astropy.io import fits

    try:
        return fits.getheader(path).get("ORIGIN") == "almarules"
    except Exception:  # noqa: BLE001 - not a readable FITS file: not ours to remove
        return False


class ProductWriter:
    """Names, headers and atomic writes of one image's products."""

    def __init__(self, stage: "Stage", job: ImageJob, rec: ImageRecord):
        self.stage, self.job, self.rec = stage, job, rec
        taylor = job.nterms > 1 and job.specmode != "cube"
        basic, extra = (TAYLOR_BASIC, TAYLOR_EXTRA) if taylor else (BASIC, EXTRA)
        self.kinds = basic + (extra if stage.extra_products else ())

    def expected_kinds(self, rec: ImageRecord) -> list[str]:
        """The kinds a complete set of `rec`'s products has: the weight image only for a mosaic's
        2-D image."""
        mosaic = rec.data is not None and rec.data.pointings > 1 and rec.specmode != "cube"
        return [k for k in self.kinds if k != "weight" or mosaic]

    # ------------------------------------------------------------ names
    def mous(self) -> str:
        """The OUS id that starts the names: --mous, the data's, else the project code or MS name."""
        f = self.stage.facts
        name = self.stage.mous or f.mous_id
        if name:
            return name
        fallback = f.project or self.stage.ms_paths[0].stem
        note = f"the data hold no MOUS id: product names start with {fallback!r} (give one with --mous)"
        if note not in self.rec.warnings:
            self.rec.warnings.append(note)
        return fallback

    def field_token(self) -> str:
        """The field's component of the names: sanitised (`engine.products.sanitize_name`), with
        a hash appended when another field of the imaging list would share it (and a warning)."""
        tokens = fitsio.field_tokens(split_key(k)[0] for k in self.stage.keys())
        token = tokens.get(self.job.field) or fitsio.sanitize_name(self.job.field)
        if token != fitsio.sanitize_name(self.job.field):
            note = (f"field {self.job.field!r} and another field share the product name "
                    f"{fitsio.sanitize_name(self.job.field)!r} once sanitised: its products are named {token!r}")
            if note not in self.rec.warnings:
                self.rec.warnings.append(note)
        return token

    def path(self, kind: str, suffix: str = "fits") -> Path:
        name = fitsio.product_name(self.mous(), self.job.field, self.job.intent, self.job.spws, self.job.specmode,
                                   "I", kind, field_token=self.field_token())
        if suffix != "fits":
            name = name[: -len("fits")] + suffix
        return self.stage.out_dir / name

    # ------------------------------------------------------------ headers
    def _centre(self) -> tuple[float, float]:
        """The phase centre in ICRS (deg), converted from the FIELD table's frame by casacore's
        measures as CASA does (J2000 -> ICRS is the IAU 2000 frame bias, ~20 mas: not astropy's
        FK5, whose catalogue frame differs from the dynamical J2000 by another ~20 mas)."""
        data = self.rec.data
        if data is not None and data.phase_centre is not None:
            return to_icrs(*data.phase_centre)
        ms = data.measurement_sets[0] if data else str(self.stage.ms_paths[0])
        fid = (data.field_ids.get(ms) or [0])[0] if data else msdata.field_rows(ms, self.job.field)[0]
        ra, dec, frame = msdata.phase_centre(ms, fid)
        return to_icrs(ra, dec, frame)

    def _provenance(self) -> dict[str, str | float | int | bool]:
        rec, job = self.rec, self.job
        prov: dict[str, str | float | int | bool] = {
            "version": __version__, "rules": ", ".join(rec.rules), "rules_sha256": rec.rules_sha256,
            "image": job.key, "set": "; ".join(rec.settings) or "none",
        }
        for name, s in job.settings.items():
            prov[f"param.{name}"] = s.value if not isinstance(s.value, float) or math.isfinite(s.value) else "nan"
            prov[f"param.{name}.rule"] = s.source
        if rec.weblog.threshold:
            prov["threshold_mJy"] = float(rec.weblog.threshold.value)
            prov["threshold.rule"] = rec.weblog.threshold.source
        if rec.data:
            prov["ms"] = ", ".join(Path(m).name for m in rec.data.measurement_sets)
            prov["column"] = rec.data.column
            prov["channels"] = rec.data.channel_selection
        return prov

    def _observation(self) -> tuple[str, fitsio.Observation]:
        """(TELESCOP, the observation's header facts): DATE-OBS from the earliest row imaged (over
        the MSs), OBSERVER and the array position from the first MS (printable ASCII only, as FITS
        requires); the telescope from the facts, else the MS."""
        data = self.rec.data
        if data is None:
            return self.stage.facts.telescope or "ALMA", fitsio.Observation()
        infos = [observation_info(ms, data.field_ids.get(ms, []), self.job.spws) for ms in data.measurement_sets]
        first = min((i.first_time_utc for i in infos if i.first_time_utc is not None), default=None)
        observer = infos[0].observer
        if observer is not None and not (observer.isascii() and observer.isprintable()):
            observer = None
        telescope = self.stage.facts.telescope or infos[0].telescope or "ALMA"
        return telescope, fitsio.Observation(date_obs_mjd_s=first, observer=observer,
                                             obsgeo_m=_array_position(telescope, infos[0].antenna_centre_m))

    def _restfreq(self, freq_hz: float) -> float:
        """The spw's rest frequency (Hz) when the data give one, else, as CASA's tclean ("no rest
        frequency info, using the center of the selected spw(s)"), the mid point of the spws'
        channel frequencies in their own frame."""
        spws = {s.id: s for s in (self.stage.facts.spws or [])}
        for sid in self.job.spws:
            rf = getattr(spws.get(sid), "rest_frequencies", None)
            if rf:
                return float(rf[0])
        data = self.rec.data
        if data is None:
            return freq_hz
        freqs = np.concatenate([msdata.spw_axis(data.measurement_sets[0], sid).freq for sid in self.job.spws])
        return float(freqs.min() + freqs.max()) / 2

    def _header(self, freq_hz: float, width_hz: float) -> dict:
        ra, dec = self._centre()
        telescope, observation = self._observation()
        return dict(ra_deg=ra, dec_deg=dec, cell_arcsec=self.job.cell_arcsec, freq_hz=freq_hz,
                    chan_width_hz=width_hz, specframe="LSRK", object_name=self.job.field,
                    telescope=telescope, restfreq_hz=self._restfreq(freq_hz),
                    observation=observation, provenance=self._provenance(), date=self.stage.started,
                    history=[f"almarules {__version__} image {self.job.key}", f"rules: {', '.join(self.rec.rules)}"])

    def _product(self, kind: str, path: Path) -> None:
        self.rec.products.append(Product(kind=kind, file=path.name, bytes=path.stat().st_size))

    # ------------------------------------------------------------ writing
    def write_plane_products(self, freq_hz: float, bandwidth_hz: float, beam: Beam, planes: dict) -> None:
        """Write the 2-D products (mfs, cont); `planes` maps kind -> array (gridding convention)."""
        head = self._header(freq_hz, bandwidth_hz)
        for kind in self.kinds:
            if kind not in planes:  # e.g. the weight image of a single pointing
                continue
            path = self.path(kind)
            base = base_kind(kind)
            fitsio.write_image(path, planes[kind], beam=beam if base in _HAS_BEAM else None, bunit=_BUNIT[base],
                               **head)
            self._product(kind, path)

    @contextlib.contextmanager
    def cube(self, nchan: int, freq0_hz: float, width_hz: float,
             beams: Sequence[Optional[Beam]]) -> Iterator["CubeSink"]:
        """Stream the cube products plane by plane; on error nothing is left half-written."""
        head = self._header(freq0_hz, width_hz)
        n = self.job.imsize
        good = [b for b in beams if b is not None]
        fill = good[len(good) // 2] if good else None
        chan_beams = [b if b is not None else fill for b in beams]
        with contextlib.ExitStack() as stack:
            writers = {}
            for kind in self.kinds:
                if kind == "weight":
                    continue
                w = fitsio.CubeWriter(self.path(kind), nx=n, ny=n, nchan=nchan, bunit=_BUNIT[kind], **head)
                writers[kind] = stack.enter_context(w)
                if kind in _HAS_BEAM and fill is not None:
                    w.set_beams(chan_beams)
            yield CubeSink(writers)
        for kind in writers:
            self._product(kind, self.path(kind))

    def forget_record(self) -> None:
        """Remove an earlier record of this image before its products are rewritten, so that a
        run killed meanwhile leaves a set recognised as incomplete (`leftovers`)."""
        try:
            self.path("record", "json").unlink(missing_ok=True)
        except OSError as exc:
            raise write_error(self.path("record", "json"), exc) from None

    def write_record(self) -> Path:
        path = self.path("record", "json")
        write_atomic(path, self.rec.to_json())
        return path


class CubeSink:
    """Receives the planes of channel k (kind -> array) and keeps the pbcor extremes (Jy/beam)."""

    def __init__(self, writers: dict):
        self.writers = writers
        self.pbcor_max = -math.inf
        self.pbcor_min = math.inf

    def write(self, k: int, planes: dict) -> None:
        pb = planes["pbcor"]
        if np.isfinite(pb).any():
            self.pbcor_max = max(self.pbcor_max, float(np.nanmax(pb)))
            self.pbcor_min = min(self.pbcor_min, float(np.nanmin(pb)))
        for kind, w in self.writers.items():
            w.write_plane(k, planes[kind])
