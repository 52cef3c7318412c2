"""A wide-band mosaic continuum image: almarules (joint mosaic, mtmfs, nterms 2) against CASA 6.7's
tclean(gridder='mosaic', deconvolver='mtmfs', nterms=2) on the same simulated data, and both
against the simulator's truth (part of `compare_casa.py`: ``--only mosaic``).

    python benchmarks/compare_mosaic_stage.py [--work DIR] [--casa-venv DIR] [--json FILE] [--resimulate]
        [--casa-threshold VALUE] [--strict]

Data: ``almarules simulate examples/sim/aca_7m_band3_mosaic_wideband.yaml --no-corruptions``
(made once in --work, reused): two 7-m Band 3 execution blocks, spws 0 and 1 (89-91 and 103-105
GHz), the field M_WIDE a 7-pointing mosaic (one FIELD row per pointing) with five point sources
of known flux at 97 GHz and spectral index, one where the mosaic response is ~0.35. No
corruptions: DATA holds calibrated visibilities.

1. almarules: ``almarules image EB1 EB2 --image M_WIDE.TARGET.0_1.cont --rules rules/alma/current
   --data-calibrated --extra-products`` as a subprocess (the whole process timed). If it fails,
   the table says "almarules side failed: <stderr tail>" and the CASA-vs-truth part still runs,
   with the parameters of the record the failed run writes (below, "fallbacks").
2. CASA, in its own venv and process (this file with ``--casa-side``; casatools is never
   imported next to python-casacore): tclean niter=0 (PSF, PB, dirty), then the clean call
   continuing from it (calcpsf=False, calcres=False, as `casa_side.py`), with vis=[EB1, EB2],
   field='M_WIDE', spw='0,1', datacolumn='data', specmode='mfs', gridder='mosaic',
   deconvolver='mtmfs', nterms=2, normtype='flatnoise', weighting='briggs', pbcor=True and from
   almarules' record and FITS header: reffreq (weblog.centre_frequency), imsize, cell,
   phasecenter (our CRVAL1/2 in our RADESYS), robust, pblimit, niter, gain, cyclefactor,
   threshold (weblog.threshold). Mask: almarules' delivered clean mask, put on the niter=0 PB's
   coordinates as a CASA image (usemask='user'): both tools then clean the same pixels, which
   the pb mask would not give (almarules' mask is auto-multithresh's). Both tclean calls are
   timed, and the process (imports + both calls). Products leave by exportfits.
   Fallbacks when almarules gave no image: reffreq '' (CASA's: the middle of the selected
   band), phasecenter the centre of the pointings' extent (J2000, the rule's "pointings_centre"),
   usemask='pb' with pbmask = the record's mask_pblimit, and the threshold of the rules' formula
   computed in the CASA process: 2 x sigma x max(3.5, DR / 55) (7-m, several EBs: the
   dr_correction_7m_multi_eb table above DR 75), sigma = imager.apparentsens of each EB
   combined as 1 / sqrt(sum sigma^-2), DR = the niter=0 tt0 peak inside pblimit / sigma.
3. Measured on each tool's FITS products, the same way:
   * truth positions: each component's (l, m) offset (direction cosines, east/north) about the
     field centre deprojected with SIN to (RA, Dec) J2000 (checked against the truth file's own
     ra_deg/dec_deg), to ICRS by the IAU 2000 frame bias when the image's RADESYS is ICRS (CASA's
     J2000 is the dynamical frame), then to pixels with astropy.wcs on the image's celestial axes;
   * the source: the largest restored tt0 (non-pbcor, flat-noise) pixel within 3 px of the truth
     pixel, then a 2-D quadratic fitted to log(tt0) on the 3 x 3 pixels around it (exact for a
     Gaussian restoring beam; a point source's restored peak is at its model component, since
     the flat-noise image is model * beam + residual): position (x, y) and peak;
   * flux: the fitted peak / pb.tt0 at the fitted position (bilinear), i.e. the pbcor tt0 image
     at the source (the pbcor image's own maximum is displaced towards low pb: not used);
     truth: flux_ref x (reffreq_image / nu_ref_truth)^alpha with the image's CRVAL3;
   * alpha: the alpha image at the fitted position (bilinear), judged where the tool's restored
     tt0 SNR > 100 (the fitted peak over the robust rms, 1.4826 MAD, of its residual.tt0 where
     pb >= pblimit: noise and what clean left);
   * images: max |ours - CASA| / CASA's peak of the restored tt0 over CASA pb.tt0 >= pblimit, and
     max |Δ| of pb.tt0 over CASA pb.tt0 > 0.2 (the same grid is checked first: reference
     pixel, value, increment, frame and reffreq of both headers).
4. One table: per quantity and source the truth, both tools, each tool's error against the
   truth with its verdict (almarules' in "verdict", CASA's in "CASA verdict"), alpha almarules -
   CASA, the image and pb differences, the header check, and the speed: CASA's process (imports +
   tclean) / almarules' whole ``almarules image`` process, target >= 2x, both in this run.

Targets: restored tt0 <= 1 % of CASA's peak; flux 2 % where pb >= 0.5, 5 % for 0.2 <= pb < 0.5;
position 0.1 px; alpha |Δ| <= 0.05 against the truth and against CASA; pb <= 0.01 (the PB target
of `compare_casa`); speed >= 2x.

What CASA itself gives against this truth (measured with CASA 6.7.0-31, ``--casa-threshold 1mJy``):
positions within 0.03 px; fluxes 1-2.4 % high except at pb 0.35 (-0.3 %): the mosaic gridder's
PB (from its convolution functions) is 1.5-3 % below CASA's own Airy PBMath model, the one the
simulator attenuates with and gridder='standard' uses, within 50 arcsec of a pointing (a single
pointing imaged both ways), and the mosaic sum over-corrects by that; plus nterms=2's curvature
term (alpha (alpha - 1) (dnu / nu)^2 / 2, +0.3 to +0.5 % for alpha -0.7, -1). Its alpha is
within 0.01-0.1 of the truth: in spite of CASA's warning that pbcor=True divides every Taylor
term by pb.tt0, the mosaic gridder's per-channel beams remove most of the beam's spectral index
(gridder='standard' on one pointing keeps all of it: -0.24 at pb 0.92, -1.3 at pb 0.55).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import casa_env  # noqa: E402
import compare_metrics as cm  # noqa: E402

CONFIG = REPO / "examples" / "sim" / "aca_7m_band3_mosaic_wideband.yaml"
RULES = REPO / "rules" / "alma" / "current"
KEY = "M_WIDE.TARGET.0_1.cont"
FIELD = "M_WIDE"
DEFAULT_WORK = Path("/tmp/almarules-compare/mosaic")
DEFAULT_CASA_VENV = Path("/work/casa/venv")
TARGETS = {"image": 0.01, "flux_high": 0.02, "flux_low": 0.05, "position": 0.1, "alpha": 0.05, "pb": 0.01,
           "speed": 2.0}
PB_HIGH = 0.5  # the 2 % flux target holds above this mosaic pb, 5 % down to pblimit
SNR_ALPHA = 100.0  # alpha is judged where the restored tt0 SNR exceeds this
SEARCH_PX = 3  # the source's peak pixel is looked for this far from the truth pixel
#: CASA products exported to FITS (tt0/tt1 of an mtmfs image)
CASA_PRODUCTS = ("image.tt0", "image.tt1", "image.tt0.pbcor", "pb.tt0", "alpha", "alpha.error", "residual.tt0",
                 "residual.tt1", "model.tt0", "psf.tt0", "mask")
#: our FITS kinds -> CASA's product names
OUR_KINDS = {"image.tt0": "image.tt0", "pb.tt0": "pb.tt0", "alpha": "alpha", "alpha.error": "alpha.error",
             "residual.tt0": "residual.tt0", "psf.tt0": "psf.tt0", "mask": "mask", "tt0.pbcor": "image.tt0.pbcor"}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ================================================================ CASA side (CASA venv only)
def casa_side(spec_file: str) -> int:
    """In the CASA venv: tclean niter=0, the threshold (fallback), the mask, the clean call; exportfits;
    writes the spec's result.json (module doc, step 2)."""
    spec = json.loads(Path(spec_file).read_text())
    import casatools
    from casatasks import exportfits, tclean
    from casatools import image, imager

    res: dict = {"casatools": casatools.version_string(), "import": time.time() - spec["t_launch"]}
    base = spec["imagename"]
    parent = Path(base).parent
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True)
    args = dict(spec["tclean"], imagename=base, niter=0, restoration=False, pbcor=False)
    t = time.perf_counter()
    tclean(**args)
    res["dirty_call"] = time.perf_counter() - t
    ia = image()
    ia.open(base + ".pb.tt0")
    csys, shape = ia.coordsys(), ia.shape()
    ia.close()
    if spec["threshold"] == "auto":
        t = time.perf_counter()
        res["threshold_from"] = rules_threshold(spec, base, ia, imager())
        res["threshold_time"] = time.perf_counter() - t
    clean = dict(spec["tclean"], imagename=base, calcpsf=False, calcres=False,
                 threshold=spec["threshold"] if spec["threshold"] != "auto" else res["threshold_from"]["threshold"])
    if spec.get("mask_npy"):
        mask = np.load(spec["mask_npy"]).astype(np.float32)  # (ny, nx), FITS order
        pix = np.zeros(shape, dtype=np.float32)
        pix[:, :, 0, 0] = mask.T
        ia.fromarray(outfile=base + ".inmask", pixels=pix, csys=csys.torecord(), overwrite=True)
        ia.close()
        clean.update(usemask="user", mask=base + ".inmask")
    else:
        clean.update(usemask="pb", pbmask=spec["mask_pblimit"])
    csys.done()
    res["call"] = "tclean(" + ", ".join(f"{k}={v!r}" for k, v in clean.items()) + ")"
    t = time.perf_counter()
    summary = tclean(**clean) or {}
    res["clean_call"] = time.perf_counter() - t
    res["whole"] = res["import"] + res["dirty_call"] + res["clean_call"]
    res.update(iterdone=int(summary.get("iterdone", -1)), nmajordone=int(summary.get("nmajordone", -1)),
               stopcode=int(summary.get("stopcode", -1)))
    for kind in CASA_PRODUCTS:
        exportfits(imagename=f"{base}.{kind}", fitsimage=f"{base}.{kind}.fits", overwrite=True, dropdeg=False)
    Path(spec["result"]).write_text(json.dumps(res, indent=1))
    return 0


def rules_threshold(spec: dict, base: str, ia, im) -> dict:
    """The rules' threshold when almarules gave none: 2 sigma max(3.5, DR / 55) (module doc)."""
    p = spec["tclean"]
    inv = 0.0
    for ms in p["vis"]:  # per EB, combined as 1 / sqrt(sum sigma^-2)
        im.open(ms)
        try:
            im.selectvis(field=p["field"], spw=p["spw"])
            im.defineimage(nx=p["imsize"][0], ny=p["imsize"][1], cellx=p["cell"], celly=p["cell"], stokes="I",
                           phasecenter=p["phasecenter"], mode="mfs")
            im.weight(type="briggs", robust=p["robust"])
            inv += float(im.apparentsens()[1]) ** -2
        finally:
            im.close()
    sigma = inv ** -0.5
    ia.open(base + ".residual.tt0")
    dirty = np.asarray(ia.getchunk(), dtype=np.float64)
    ia.close()
    ia.open(base + ".pb.tt0")
    pb = np.asarray(ia.getchunk(), dtype=np.float64)
    ia.close()
    peak = float(np.max(dirty[pb >= p["pblimit"]]))
    dr = peak / sigma
    corr = max(3.5, dr / 55.0) if dr > 75 else (1.0 if dr <= 4 else 1.5 if dr <= 10 else 2.0 if dr <= 20
                                                 else 2.5 if dr <= 40 else 3.0)
    return {"sigma_jy": sigma, "dirty_peak_jy": peak, "dirty_dr": dr, "dr_correction": corr,
            "threshold": f"{2.0 * sigma * corr * 1e3:.6g}mJy"}


# ================================================================ inputs
def simulate(work: Path, say: Callable[[str], None], again: bool = False) -> list[Path]:
    """The two EBs of the wide-band mosaic (made once in `work`)."""
    mss = [work / "wide_eb1.ms", work / "wide_eb2.ms"]
    if again or not all(m.exists() and m.with_suffix(".truth.json").exists() for m in mss):
        say(f"simulating {CONFIG.name} (no corruptions) into {work}")
        subprocess.run([sys.executable, "-m", "almarules", "simulate", str(CONFIG), "-o", str(work / "wide.ms"),
                        "--no-corruptions", "--force", "--quiet"], check=True, cwd=work)
    return mss


@dataclass
class Source:
    index: int
    flux: float  # Jy at ref_hz
    alpha: float
    ref_hz: float
    l_arcsec: float
    m_arcsec: float
    ra: float  # deg, J2000 (CASA's frame of the FIELD table)
    dec: float

    @property
    def label(self) -> str:
        return f"S{self.index} {self.flux:g} Jy ({self.l_arcsec:+g}\", {self.m_arcsec:+g}\")"

    def flux_at(self, nu_hz: float) -> float:
        return self.flux * (nu_hz / self.ref_hz) ** self.alpha


def sin_deproject(ra0: float, dec0: float, l: float, m: float) -> tuple[float, float]:
    """(RA, Dec) in deg of direction cosines (l, m) (rad, east/north) about (ra0, dec0) deg: SIN."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    n = math.sqrt(1.0 - l * l - m * m)
    dec = math.asin(m * math.cos(d0) + n * math.sin(d0))
    ra = a0 + math.atan2(l, n * math.cos(d0) - m * math.sin(d0))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def truth_sources(truth_file: Path) -> tuple[list[Source], dict, float]:
    """The field's components, its truth entry, and the largest difference (mas) between our SIN
    deprojection and the truth file's ra_deg/dec_deg."""
    truth = json.loads(truth_file.read_text())
    field = next(f for f in truth["fields"] if f["name"] == FIELD)
    out, worst = [], 0.0
    for c in field["components"]:
        l, m = (math.radians(c[k] / 3600.0) for k in ("offset_l_arcsec", "offset_m_arcsec"))
        ra, dec = sin_deproject(field["ra_deg"], field["dec_deg"], l, m)
        worst = max(worst, 3.6e6 * math.hypot((ra - c["ra_deg"]) * math.cos(math.radians(dec)), dec - c["dec_deg"]))
        out.append(Source(c["index"], c["flux_jy_at_ref"], c["spectral_index"], c["reference_frequency_hz"],
                          c["offset_l_arcsec"], c["offset_m_arcsec"], ra, dec))
    return out, field, worst


def pointings_centre(field: dict) -> str:
    """The midpoint of the pointings' extent in RA and Dec as a J2000 phasecenter string."""
    d = np.asarray(field["pointing_directions_deg"], dtype=float)
    ra = np.degrees(np.unwrap(np.radians(d[:, 0])))
    return "J2000 " + sexagesimal(0.5 * (ra.min() + ra.max()) % 360.0, 0.5 * (d[:, 1].min() + d[:, 1].max()))


def sexagesimal(ra: float, dec: float) -> str:
    """'19h00m00.000000s -22d00m00.00000s' of (RA, Dec) deg."""
    h = ra / 15.0
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = (h - hh - mm / 60.0) * 3600.0
    sign = "-" if dec < 0 else "+"
    a = abs(dec)
    dd, am = int(a), int((a - int(a)) * 60)
    sa = (a - dd - am / 60.0) * 3600.0
    return f"{hh:02d}h{mm:02d}m{ss:09.6f}s {sign}{dd:02d}d{am:02d}m{sa:08.5f}s"


# ================================================================ the two sides
def run_ours(mss: list[Path], out: Path, sets: Sequence[str] = ()) -> dict:
    """``almarules image`` as a subprocess: {wall, record, stem, error} (error None when it worked);
    `sets`: its --set assignments (CASA then takes the threshold they give from the record)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "almarules", "image", *map(str, mss), "--image", KEY, "--rules", str(RULES),
           "--data-calibrated", "--extra-products", "-o", str(out), *[a for v in sets for a in ("--set", v)]]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    records = sorted(out.glob("*.record.json"))
    record = json.loads(records[0].read_text()) if len(records) == 1 else None
    stem = Path(str(records[0]).removesuffix(".record.json")) if record else None
    error = None
    if proc.returncode != 0 or record is None or record.get("status") != "ok":
        why = record.get("error") if record else None
        tail = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
        error = f"exit {proc.returncode}: " + (why if why and why in tail else f"{why or ''} {tail}".strip())
    elif not all(Path(f"{stem}.{k}.fits").exists() for k in OUR_KINDS):
        missing = [k for k in OUR_KINDS if not Path(f"{stem}.{k}.fits").exists()]
        error = f"products missing: {', '.join(missing)}"
    return {"wall": wall, "record": record, "stem": stem, "error": error, "command": " ".join(cmd)}


def casa_spec(mss: list[Path], ours: dict, field: dict, work: Path) -> dict:
    """The tclean parameters from almarules' record and header (fallbacks: module doc)."""
    from astropy.io import fits

    record = ours["record"]
    if record is None:
        raise RuntimeError("almarules wrote no record: no parameters to give CASA")
    p = {k: v["value"] for k, v in record["parameters"].items()}
    ok = ours["error"] is None
    tc = {"vis": [str(m) for m in mss], "field": FIELD, "spw": "0,1", "datacolumn": "data", "specmode": "mfs",
          "gridder": "mosaic", "deconvolver": "mtmfs", "nterms": int(p.get("nterms", 2)), "reffreq": "",
          "imsize": [int(p["imsize"])] * 2, "cell": f"{float(p['cell'])!r}arcsec",
          "phasecenter": pointings_centre(field),
          "stokes": "I", "weighting": "briggs", "robust": float(p["robust"]), "pblimit": float(p["pblimit"]),
          "normtype": "flatnoise", "niter": int(p["niter"]), "gain": float(p["gain"]),
          "cyclefactor": float(p["cycle_factor"]), "interactive": False, "pbcor": True, "fullsummary": False}
    spec = {"tclean": tc, "threshold": "auto", "mask_npy": None, "mask_pblimit": float(p.get("mask_pblimit", 0.3))}
    if ok:
        w = record["weblog"]
        h = fits.getheader(Path(f"{ours['stem']}.image.tt0.fits"))
        frame = str(h.get("RADESYS", "ICRS")).strip().upper()
        tc["phasecenter"] = f"{'ICRS' if frame == 'ICRS' else 'J2000'} {sexagesimal(h['CRVAL1'], h['CRVAL2'])}"
        tc["reffreq"] = f"{w['centre_frequency']['value']!r}GHz"
        spec["threshold"] = f"{w['threshold']['value']!r}mJy"
        mask = fits.getdata(Path(f"{ours['stem']}.mask.fits"))
        np.save(work / "inmask.npy", (mask.reshape(mask.shape[-2:]) > 0.5).astype(np.float32))
        spec["mask_npy"] = str(work / "inmask.npy")
    return spec


def run_casa(spec: dict, casa_venv: Path, work: Path, say: Callable[[str], None]) -> dict:
    """This file with --casa-side in the CASA venv; its result.json with the process's wall time."""
    py, config = casa_env.ensure(casa_venv, say)
    spec = dict(spec, imagename=str(work / "casa" / "img"), result=str(work / "casa_result.json"), t_launch=time.time())
    spec_file = work / "casa_spec.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    Path(spec["result"]).unlink(missing_ok=True)
    t = time.perf_counter()
    proc = subprocess.run(casa_env.command(py, config, Path(__file__).resolve(), "--casa-side", str(spec_file)),
                          cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        raise RuntimeError(f"CASA failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}")
    res = json.loads(Path(spec["result"]).read_text())
    res["process"] = wall
    res["stem"] = spec["imagename"]
    return res


# ================================================================ measuring an image
@dataclass
class Products:
    """One tool's planes (ny, nx), FITS order (x = axis 1), NaN where masked, and the tt0 header."""

    planes: dict
    header: "fits.Header"  # noqa: F821 (astropy is imported where it is used)

    @classmethod
    def load(cls, paths: dict) -> "Products":
        from astropy.io import fits

        planes = {}
        for kind, path in paths.items():
            data = np.asarray(fits.getdata(path), dtype=np.float64)
            planes[kind] = data.reshape(-1, *data.shape[-2:])[0]
        return cls(planes, fits.getheader(paths["image.tt0"]))


def frame_bias(ra: float, dec: float) -> tuple[float, float]:
    """CASA's J2000 (dynamical) direction in ICRS: the IAU 2000 frame bias (erfa.bp00), ~20 mas."""
    import erfa

    a, d = math.radians(ra), math.radians(dec)
    v = erfa.bp00(2451545.0, 0.0)[0].T @ np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
    return math.degrees(math.atan2(v[1], v[0])) % 360.0, math.degrees(math.asin(v[2]))


def to_pixel(src: Source, header) -> tuple[float, float]:
    """The truth direction as 0-based (x, y) pixel coordinates of an image (astropy.wcs, celestial)."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    ra, dec = src.ra, src.dec
    if str(header.get("RADESYS", "")).strip().upper() == "ICRS":
        ra, dec = frame_bias(ra, dec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header).celestial
    x, y = wcs.all_world2pix([[ra, dec]], 0)[0]
    return float(x), float(y)


def fit_peak(img: np.ndarray, x: float, y: float) -> Optional[tuple[float, float, float]]:
    """(x, y, peak) of the source near pixel (x, y): the largest pixel within SEARCH_PX, refined by a
    2-D quadratic fitted to log(img) on its 3 x 3 neighbourhood (module doc); None off the image."""
    ny, nx = img.shape
    ix, iy = int(round(x)), int(round(y))
    y0, y1 = max(iy - SEARCH_PX, 1), min(iy + SEARCH_PX + 1, ny - 1)
    x0, x1 = max(ix - SEARCH_PX, 1), min(ix + SEARCH_PX + 1, nx - 1)
    if y0 >= y1 or x0 >= x1:
        return None
    win = np.nan_to_num(img[y0:y1, x0:x1], nan=-np.inf)
    jy, jx = np.unravel_index(int(np.argmax(win)), win.shape)
    py, px = y0 + jy, x0 + jx
    box = img[py - 1:py + 2, px - 1:px + 2]
    dy, dx = np.mgrid[-1:2, -1:2]
    if not np.all(np.isfinite(box)) or np.any(box <= 0):
        return float(px), float(py), float(img[py, px])
    a = np.column_stack([np.ones(9), dx.ravel(), dy.ravel(), dx.ravel() ** 2, dy.ravel() ** 2, (dx * dy).ravel()])
    c = np.linalg.lstsq(a, np.log(box.ravel()), rcond=None)[0]
    hess = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    try:
        ox, oy = np.linalg.solve(hess, -c[1:3])
    except np.linalg.LinAlgError:
        return float(px), float(py), float(img[py, px])
    if abs(ox) > 1 or abs(oy) > 1:  # not a peak the 3 x 3 pixels describe
        return float(px), float(py), float(img[py, px])
    value = c[0] + c[1] * ox + c[2] * oy + c[3] * ox ** 2 + c[4] * oy ** 2 + c[5] * ox * oy
    return float(px + ox), float(py + oy), float(math.exp(value))


def bilinear(img: np.ndarray, x: float, y: float) -> float:
    """img at the 0-based pixel position (x, y), bilinear; the nearest pixel where a neighbour is NaN."""
    ix, iy = int(math.floor(x)), int(math.floor(y))
    fx, fy = x - ix, y - iy
    box = img[iy:iy + 2, ix:ix + 2]
    if box.shape != (2, 2) or not np.all(np.isfinite(box)):
        return float(img[int(round(y)), int(round(x))])
    return float(box[0, 0] * (1 - fx) * (1 - fy) + box[0, 1] * fx * (1 - fy) + box[1, 0] * (1 - fx) * fy
                 + box[1, 1] * fx * fy)


def robust_rms(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(1.4826 * np.median(np.abs(a - np.median(a)))) if a.size else math.nan


def pbcor_check(p: Products, x: float, y: float) -> float:
    """The delivered pbcor tt0 / (tt0 / pb.tt0) - 1 at the pixel nearest (x, y)."""
    ix, iy = int(round(x)), int(round(y))
    return float(p.planes["image.tt0.pbcor"][iy, ix] * p.planes["pb.tt0"][iy, ix] / p.planes["image.tt0"][iy, ix] - 1)


def measure(p: Products, sources: list[Source], pblimit: float) -> dict:
    """Per source: truth pixel, fitted pixel, peak, pb, flux, alpha, alpha.error, SNR (module doc, step 3)."""
    pb = p.planes["pb.tt0"]
    sigma = robust_rms(np.where(np.nan_to_num(pb) >= pblimit, p.planes["residual.tt0"], np.nan))
    nu = float(p.header["CRVAL3"])
    out = {"sigma": sigma, "reffreq": nu, "sources": {}}
    for s in sources:
        xt, yt = to_pixel(s, p.header)
        fit = fit_peak(p.planes["image.tt0"], xt, yt)
        if fit is None:
            continue
        x, y, peak = fit
        pbv = bilinear(pb, x, y)
        out["sources"][s.index] = {
            "x_truth": xt, "y_truth": yt, "x": x, "y": y, "dx": x - xt, "dy": y - yt,
            "offset": math.hypot(x - xt, y - yt),
            "peak": peak, "pb": pbv, "flux": peak / pbv if pbv > 0 else math.nan, "truth_flux": s.flux_at(nu),
            "alpha": bilinear(p.planes["alpha"], x, y), "alpha_error": bilinear(p.planes["alpha.error"], x, y),
            "snr": peak / sigma, "pbcor_product": pbcor_check(p, x, y)}
    return out


# ================================================================ the table
@dataclass
class Row:
    """One row: a quantity of one source (or of the images), both tools, each one's error against
    `reference` ("truth" or "CASA") in `kind` ("%": relative, "abs": difference, "px": an offset,
    "frac": of a peak, "x": a ratio that must reach the target)."""

    quantity: str
    source: str
    pb: Optional[float]
    truth: Optional[float]
    ours: Optional[float]
    casa: Optional[float]
    ours_err: Optional[float]
    casa_err: Optional[float]
    target: Optional[float]
    kind: str
    unit: str = ""
    how: str = ""

    def judge(self, err: Optional[float]) -> str:
        if self.target is None:
            return "info"
        if err is None or not math.isfinite(err):
            return "n/a"
        ok = err >= self.target if self.kind == "x" else abs(err) <= self.target
        return "PASS" if ok else "FAIL"

    @property
    def verdict(self) -> str:
        return self.judge(self.ours_err)

    @property
    def casa_verdict(self) -> str:
        return self.judge(self.casa_err) if self.casa_err is not None else "-"

    def as_dict(self) -> dict:
        return {**asdict(self), "name": f"{self.quantity} {self.source}".strip(), "delta": self.ours_err,
                "verdict": self.verdict, "casa_verdict": self.casa_verdict}


def err(a: Optional[float], ref: Optional[float], kind: str) -> Optional[float]:
    if a is None or ref is None or not math.isfinite(a) or not math.isfinite(ref):
        return None
    return (a - ref) / abs(ref) if kind == "%" and ref != 0 else a - ref


def num(v: Optional[float], digits: int = 5) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def err_text(e: Optional[float], kind: str) -> str:
    if e is None or not math.isfinite(e):
        return "-"
    return {"%": f"{e * 100:+.2f} %", "x": f"{e:.2f}x", "frac": f"{e:.2e}", "px": f"{e:.3f} px"}.get(kind, f"{e:+.3f}")


def target_text(r: Row) -> str:
    if r.target is None:
        return "-"
    return {"%": f"<= {r.target * 100:g} %", "x": f">= {r.target:g}x", "px": f"<= {r.target:g} px"}.get(
        r.kind, f"<= {r.target:g}")


def table(rows: list[Row]) -> str:
    from tabulate import tabulate

    return tabulate([[r.quantity, r.source, num(r.pb, 3), num(r.truth), num(r.ours), num(r.casa),
                      err_text(r.ours_err, r.kind), err_text(r.casa_err, r.kind), target_text(r), r.verdict,
                      r.casa_verdict, r.unit, r.how] for r in rows],
                    headers=["quantity", "source", "pb", "truth", "almarules", "CASA", "almarules err", "CASA err",
                             "target", "verdict", "CASA verdict", "unit", "how"])


def flux_target(pb: float, pblimit: float) -> Optional[float]:
    return TARGETS["flux_high"] if pb >= PB_HIGH else TARGETS["flux_low"] if pb >= pblimit else None


def source_rows(sources: list[Source], mo: Optional[dict], mc: dict, pblimit: float) -> list[Row]:
    """Flux, position and alpha rows per source (module doc, step 3)."""
    rows: list[Row] = []
    for s in sources:
        c = mc["sources"].get(s.index)
        o = mo["sources"].get(s.index) if mo else None
        pb = c["pb"] if c else o["pb"] if o else None
        if pb is None:
            continue
        g = lambda d, k: d[k] if d else None  # noqa: E731
        truth = c["truth_flux"] if c else o["truth_flux"]
        snr = ", ".join(f"{n} {d['snr']:.0f}" for n, d in (("ours", o), ("CASA", c)) if d)
        how = (f"fitted tt0 peak / pb.tt0 there; truth {s.flux:g} Jy x (reffreq / {s.ref_hz / 1e9:g} GHz)^{s.alpha:g}; "
               f"SNR {snr}")
        rows.append(Row("flux (pbcor tt0)", s.label, pb, truth, g(o, "flux"), g(c, "flux"),
                        err(g(o, "flux"), g(o, "truth_flux"), "%"), err(g(c, "flux"), truth, "%"),
                        flux_target(pb, pblimit), "%", "Jy", how))
        where = ", ".join(f"{n} ({d['dx']:+.3f}, {d['dy']:+.3f}) px" for n, d in (("ours", o), ("CASA", c)) if d)
        rows.append(Row("position offset", s.label, pb, 0.0, g(o, "offset"), g(c, "offset"), g(o, "offset"),
                        g(c, "offset"), TARGETS["position"], "px", "px",
                        f"log-quadratic 3x3 peak fit of tt0 - truth pixel (dx, dy): {where}"))
        judged_o = o is not None and o["snr"] > SNR_ALPHA
        judged_c = c is not None and c["snr"] > SNR_ALPHA
        ae = ", ".join(f"{n} {d['alpha_error']:.3f}" for n, d in (("ours", o), ("CASA", c)) if d)
        skipped = [n for n, d, j in (("ours", o, judged_o), ("CASA", c, judged_c)) if d and not j]
        note = f"; not judged ({', '.join(skipped)}): SNR <= {SNR_ALPHA:g}" if skipped else ""
        r = Row("alpha", s.label, pb, s.alpha, g(o, "alpha"), g(c, "alpha"), err(g(o, "alpha"), s.alpha, "abs"),
                err(g(c, "alpha"), s.alpha, "abs"), TARGETS["alpha"], "abs", "",
                f"alpha image at the fitted position; alpha.error {ae}; SNR {snr}{note}")
        if not judged_o and not judged_c:
            r.target = None
        elif not judged_o:
            r.ours_err = None  # shown n/a for ours; CASA's still judged
        elif not judged_c:
            r.casa_err = None
        rows.append(r)
        if o and c:
            rows.append(Row("alpha, almarules - CASA", s.label, pb, None, o["alpha"], c["alpha"],
                            o["alpha"] - c["alpha"], None, TARGETS["alpha"] if judged_o else None, "abs", "",
                            "" if judged_o else f"not judged: SNR <= {SNR_ALPHA:g}"))
    return rows


def same_grid(ho, hc) -> tuple[bool, str, float]:
    """(same pixels?, what differs, phase-centre distance arcsec) of two tt0 headers."""
    diffs = []
    for k in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CTYPE1", "CTYPE2"):
        a, b = ho.get(k), hc.get(k)
        if isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-9 * abs(b):
            continue
        if a != b:
            diffs.append(f"{k} {a} vs {b}")
    for k in ("RADESYS",):
        if str(ho.get(k, "")).strip() != str(hc.get(k, "")).strip():
            diffs.append(f"{k} {ho.get(k)} vs {hc.get(k)}")
    dra = (ho["CRVAL1"] - hc["CRVAL1"]) * math.cos(math.radians(hc["CRVAL2"]))
    sep = 3600.0 * math.hypot(dra, ho["CRVAL2"] - hc["CRVAL2"])
    if abs(ho.get("CRVAL3", 0) - hc.get("CRVAL3", 0)) > 1.0:
        diffs.append(f"reffreq {ho.get('CRVAL3')} vs {hc.get('CRVAL3')} Hz")
    cell = abs(hc["CDELT2"]) * 3600.0
    same = not diffs and sep < 1e-3 * cell
    return same, "; ".join(diffs) or "same NAXIS, CRPIX, CDELT, CTYPE, RADESYS, reffreq", sep


def image_rows(po: Products, pc: Products, pblimit: float, mask_npy: Optional[str]) -> list[Row]:
    """The grid check, restored tt0 and pb differences, mask and beam (almarules vs CASA)."""
    same, what, sep = same_grid(po.header, pc.header)
    rows = [Row("grid (headers)", "", None, None, None, None, sep, None, None, "abs", "arcsec",
                f"phase centre distance; {what}")]
    if not same:
        rows.append(Row("restored tt0, pb", "", None, None, None, None, None, None, TARGETS["image"], "frac", "",
                        "not compared: the grids differ"))
        return rows
    cpb = pc.planes["pb.tt0"][None]
    region = cm.pb_region(cpb, pblimit)
    img = cm.max_rel_diff(po.planes["image.tt0"][None], pc.planes["image.tt0"][None], region)
    rows.append(Row("restored tt0 max |Δ| / CASA peak", "", None, None, None, None, img.value, None, TARGETS["image"],
                    "frac", "", f"CASA pb >= {pblimit}; {img.describe(1)}; non-pbcor"))
    pbd = cm.max_rel_diff(po.planes["pb.tt0"][None], cpb, cm.pb_region(cpb, 0.2))
    rows.append(Row("pb.tt0 max |Δ|", "", None, None, None, None, pbd.value, None, TARGETS["pb"], "frac", "",
                    f"CASA pb > 0.2; {pbd.describe(1)}"))
    psf = cm.max_rel_diff(po.planes["psf.tt0"][None], pc.planes["psf.tt0"][None])
    rows.append(Row("psf.tt0 max |Δ|", "", None, None, None, None, psf.value, None, None, "frac", "",
                    f"whole image; {psf.describe(1)}"))
    mo, mc = po.planes["mask"] > 0.5, np.nan_to_num(pc.planes["mask"]) > 0.5
    rows.append(Row("mask pixels differing", "", None, None, float(mo.sum()), float(mc.sum()), float((mo != mc).sum()),
                    None, None, "abs", "px", "pixels inside: ours, CASA's .mask (" +
                    ("our mask given as usemask='user')" if mask_npy else "CASA's pb mask)")))
    bo, bc = [(h["BMAJ"] * 3600, h["BMIN"] * 3600, h["BPA"]) for h in (po.header, pc.header)]
    rows.append(Row("restoring beam bmaj", "", None, None, bo[0], bc[0], err(bo[0], bc[0], "%"), None, None, "%",
                    "arcsec", f"ours {bo[0]:.3f} x {bo[1]:.3f} @ {bo[2]:.1f}, "
                    f"CASA {bc[0]:.3f} x {bc[1]:.3f} @ {bc[2]:.1f}"))
    return rows


def pbcor_row(mo: Optional[dict], mc: dict) -> Row:
    """The delivered pbcor tt0 against tt0 / pb.tt0 at the sources' peak pixels, max |ratio - 1|."""
    def worst(m: Optional[dict]) -> Optional[float]:
        return max(abs(v["pbcor_product"]) for v in m["sources"].values()) if m and m["sources"] else None

    return Row("pbcor product / (tt0 / pb.tt0) - 1", "", None, None, None, None, worst(mo), worst(mc), None, "frac",
               "", "max over the sources' peak pixels: the delivered .pbcor is the restored tt0 over pb.tt0")


def run_rows(ours: dict, casa: dict, deproj_mas: float) -> list[Row]:
    """Iterations, the truth-position check and the times (CASA / almarules)."""
    rec = ours["record"] or {}
    it = (rec.get("clean") or {}).get("iterations") if ours["error"] is None else None
    rows = [Row("clean iterations", "", None, None, it, casa["iterdone"], None, None, None, "abs", "",
                f"CASA: {casa['nmajordone']} major cycles, stopcode {casa['stopcode']}"),
            Row("truth positions", "", None, None, None, None, deproj_mas, None, None, "abs", "mas",
                "SIN deprojection of the truth offsets about the field centre - the truth file's ra_deg/dec_deg")]
    tclean_s = casa["dirty_call"] + casa["clean_call"]
    ours_s = rec.get("timings", {}).get("total") if ours["error"] is None else None
    rows.append(Row("time: imaging", "", None, None, ours_s, tclean_s, tclean_s / ours_s if ours_s else None, None,
                    None, "x", "s", f"record timings.total vs CASA's tclean calls (niter=0 {casa['dirty_call']:.1f} s "
                    f"+ clean {casa['clean_call']:.1f} s); error column = CASA / almarules"))
    wall = ours["wall"] if ours["error"] is None else None
    extra = " and the fallback threshold" if "threshold_from" in casa else ""
    rows.append(Row("time: whole process", "", None, None, wall, casa["whole"], casa["whole"] / wall if wall else None,
                    None, TARGETS["speed"], "x", "s",
                    f"almarules image process vs CASA imports {casa['import']:.1f} s + both tclean calls (CASA's "
                    f"process in all, with exportfits{extra}: "
                    f"{casa['process']:.1f} s); error column = CASA / almarules"))
    return rows


def compare(work: Path, casa_venv: Path, say: Callable[[str], None], resimulate: bool = False,
            casa_threshold: Optional[str] = None, sets: Sequence[str] = ()) -> dict:
    """Simulate (once), run both sides, measure both against the truth and each other (module doc);
    {"table": str, "metrics": [...], "tclean": the clean call, ...}. `casa_threshold` (e.g. '1mJy')
    replaces the threshold CASA is given: CASA against the truth cleaned deeper, not like for like;
    `sets`: almarules' --set (e.g. tlimit=0.02 to clean both to ~2 sigma, like for like)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    mss = simulate(work, say, resimulate)
    sources, field, deproj = truth_sources(mss[0].with_suffix(".truth.json"))
    say(f"mosaic: almarules image {' '.join(m.name for m in mss)} --image {KEY}")
    ours = run_ours(mss, work / ("ours" + "".join(f"_{v}" for v in sets)), sets)
    if ours["error"]:
        say(f"mosaic: almarules side failed: {ours['error']}")
    else:
        say(f"mosaic: almarules {ours['wall']:.1f} s (process)")
    spec = casa_spec(mss, ours, field, work)
    if casa_threshold:
        spec["threshold"] = casa_threshold
    say(f"mosaic: CASA tclean niter=0, then clean (threshold {spec['threshold']}, "
        f"{'our mask' if spec['mask_npy'] else 'pbmask ' + str(spec['mask_pblimit'])})")
    casa = run_casa(spec, casa_venv, work, say)
    say(f"mosaic: CASA {casa['dirty_call'] + casa['clean_call']:.1f} s in tclean, {casa['process']:.1f} s process")
    pblimit = float(spec["tclean"]["pblimit"])
    pc = Products.load({k: Path(f"{casa['stem']}.{k}.fits") for k in CASA_PRODUCTS})
    mc = measure(pc, sources, pblimit)
    po = mo = None
    if ours["error"] is None:
        po = Products.load({name: Path(f"{ours['stem']}.{kind}.fits") for kind, name in OUR_KINDS.items()})
        mo = measure(po, sources, pblimit)
    rows = source_rows(sources, mo, mc, pblimit) + [pbcor_row(mo, mc)]
    if po is not None:
        rows += image_rows(po, pc, pblimit, spec["mask_npy"])
    rows += run_rows(ours, casa, deproj)
    head = [f"CASA {casa['casatools']}: {casa['call']}"]
    if "threshold_from" in casa:
        t = casa["threshold_from"]
        head.append(f"threshold (no almarules record value): 2 x {t['sigma_jy'] * 1e3:.4g} mJy x "
                    f"{t['dr_correction']:.3g} (dirty DR {t['dirty_dr']:.0f}) = {t['threshold']}")
    head.append(f"reffreq: CASA {mc['reffreq'] / 1e9:.6f} GHz"
                + (f", ours {mo['reffreq'] / 1e9:.6f} GHz" if mo else ""))
    if ours["error"]:
        head.insert(0, f"almarules side failed: {ours['error']}")
    text = "\n".join(head) + "\n" + table(rows)
    out = {"table": text, "metrics": [r.as_dict() for r in rows], "tclean": casa["call"],
           "almarules": {"command": ours["command"], "process": ours["wall"],
                         "timings": (ours["record"] or {}).get("timings")},
           "casa": {k: casa.get(k) for k in ("casatools", "import", "dirty_call", "clean_call", "whole", "process",
                                             "iterdone", "nmajordone", "stopcode", "threshold_from")},
           "measured": {"almarules": mo, "casa": mc}, "targets": TARGETS}
    if ours["error"]:  # compare_casa counts a result with "error" as an image not compared
        out["error"] = f"almarules side failed: {ours['error']}"
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"work directory (default {DEFAULT_WORK})")
    ap.add_argument("--casa-venv", type=Path, default=DEFAULT_CASA_VENV,
                    help=f"the CASA virtual environment (default {DEFAULT_CASA_VENV})")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write every number to FILE")
    ap.add_argument("--resimulate", action="store_true", help="simulate the data again even if present")
    ap.add_argument("--casa-threshold", metavar="VALUE",
                    help="CASA's threshold instead of almarules' (e.g. 1mJy: CASA against the truth at depth; "
                         "almarules vs CASA is then not like for like)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                    help="almarules' --set (repeatable), e.g. tlimit=0.02: both tools clean to ~2 sigma")
    ap.add_argument("--strict", action="store_true", help="exit 1 when almarules misses a target or fails")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        import compare_casa

        say(compare_casa.compile_bytecode())
    except (ImportError, OSError) as exc:  # timing from source then
        say(f"bytecode not compiled: {exc}")
    res = compare(args.work, args.casa_venv, say, args.resimulate, args.casa_threshold, args.sets)
    print(f"\n== mosaic: {KEY} (almarules vs CASA vs truth)\n{res['table']}\n", flush=True)
    verdicts = [m["verdict"] for m in res["metrics"]]
    casa_v = [m["casa_verdict"] for m in res["metrics"]]
    print(f"almarules: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL"
          f"{' (almarules side failed)' if res.get('error') else ''}; "
          f"CASA against the truth: {casa_v.count('PASS')} PASS, "
          f"{casa_v.count('FAIL')} FAIL; {time.perf_counter() - t0:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float) + "\n")
    return 1 if args.strict and (res.get("error") or "FAIL" in verdicts) else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--casa-side":
        sys.exit(casa_side(sys.argv[2]))
    sys.exit(main())
