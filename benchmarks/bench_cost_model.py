"""Calibrate the imaging run-time cost model on this machine (printed; optionally written as rules).

    python benchmarks/bench_cost_model.py [--quick] [--write PATH] [--threads N] [--no-wgridding]

The dry-run planner estimates imaging time per image and major cycle as

    2 x nvis x grid_cost_per_vis                               (degrid, then grid every visibility)
  + 2 x npix_padded x log2(npix_padded) x fft_cost_per_pixel   (one FFT'd grid each way, per plane)
  + n_minor x npix x minor_cost_per_pixel                      (Hogbom iterations)

(rules/alma/cycle4/estimates.rules; npix_padded = (fft_padding x imsize)^2).

This script measures the three constants:

1. `kernels.gridding.dirty_image` and `predict` (ducc0 w-gridder) on uvw tracks of the 43-pad
   ALMA C-4 configuration (`engine/simulate/array_configs/alma.cycle12.4.cfg`, Earth rotation at the ALMA
   latitude, dec -30 deg, 6.048 s integrations, 230 GHz, 15.625 MHz channels), with images of
   512^2-4096^2 pixels over a fixed ~42" field (Band 6 primary beam x 1.7: the cycle4 image
   size), the array scaled so that the beam (0.574 lambda / L80) is 5 cells -- a bigger image
   comes from longer baselines, as in the pipeline. For epsilon 1e-4 and 1e-6 and 1 thread and
   all cores, the wall times are fitted by least squares (on relative residuals) to the
   planner's model, without a constant term:

       t = a_grid nvis [gridding] + a_degrid nvis [degridding] + b P log2 P

   where P = nu x nv is the padded uv grid ducc0 chose (read from its verbose report, printed
   with the number of w-planes nw and ducc0's own FFT and (de)gridding times as a cross-check).
   b is per gridder call: with w-gridding ducc0 FFTs nw planes of P pixels (nw = the kernel
   support when, as for ALMA fields, the w range is below one w-step) and applies w-screens and
   grid corrections, all proportional to P. grid_cost_per_vis = (a_grid + a_degrid) / 2, the
   cost of one gridding or one degridding pass per visibility (a visibility being one (row,
   channel) sample handed to ducc0: Stokes I, or one correlation). A fit with an
   extra per-row term (ducc0 is cheaper per visibility when a row brings many channels) and
   ducc0's kernel time per visibility by channels per call are printed for information.
2. ducc0.fft.c2c on complex128 N x N grids alone (t = k P log2 P), for comparison with b / nw.
3. A numpy Hogbom iteration on a float64 image (what `dirty_image` returns): |residual| over
   the whole image, times a 0/1 clean mask, argmax (three passes over all npix pixels), then
   subtract gain x peak x a 129 x 129 PSF patch. Fitted t_iter = k npix (through the origin, as
   the planner's term): k is minor_cost_per_pixel, s per image pixel searched per iteration.
   The patch subtraction alone is timed too (a constant per iteration, small beside the search).

Prints the machine, every measurement, the fits and the peak RSS. ``--write PATH`` writes the
constants for epsilon 1e-6 (the `kernels.gridding` default) with ``--threads`` threads (default:
all cores) as a rule file. The default run takes about 2 minutes, ``--quick`` about 15 s.
Machines here are noisy (shared cores): compare figures within one run.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import math
import os
import platform
import re
import resource
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import ducc0
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PADS = REPO / "engine" / "arrays" / "alma.cycle12.4.cfg"
C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
LATITUDE = math.radians(-23.029)  # ALMA
DEC = math.radians(-30.0)
T_INT = 6.048  # s
FREQ0, DFREQ = 230e9, 15.625e6  # Hz
FIELD_ARCSEC = 42.0  # cycle4 single-field image: 1.1 x fwhp x sqrt(-ln 0.2 / ln 2), Band 6, 12 m
PATCH = 64  # Hogbom PSF patch half-width (129 x 129 pixels)


# ---------------------------------------------------------------- simulated uvw
def _pads_enu(path: Path = PADS) -> np.ndarray:
    rows = [line.split()[:3] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return np.array(rows, dtype=np.float64)  # (nant, 3): east, north, up (m)


def uvw_tracks(ntime: int, scale: float = 1.0) -> np.ndarray:
    """(ntime x nbl, 3) uvw (m) of the C-4 pads scaled by `scale`, time-major like an MS."""
    enu = _pads_enu() * scale
    e, n, u = enu.T
    # local east/north/up -> equatorial (X towards H = 0, Y east, Z north pole)
    xyz = np.stack([-math.sin(LATITUDE) * n + math.cos(LATITUDE) * u, e,
                    math.cos(LATITUDE) * n + math.sin(LATITUDE) * u], axis=1)
    i, j = np.triu_indices(len(xyz), k=1)
    bx, by, bz = (xyz[i] - xyz[j]).T  # (nbl,)
    h = (np.arange(ntime) - (ntime - 1) / 2) * T_INT * (2 * math.pi / 86164.1)  # hour angle (rad)
    sh, ch = np.sin(h)[:, None], np.cos(h)[:, None]
    sd, cd = math.sin(DEC), math.cos(DEC)
    uu = sh * bx + ch * by
    vv = -sd * ch * bx + sd * sh * by + cd * bz
    ww = cd * ch * bx - cd * sh * by + sd * bz
    return np.ascontiguousarray(np.stack([uu, vv, ww], axis=-1).reshape(-1, 3))


_BASE_L80: dict[int, float] = {}


def scaled_tracks(ntime: int, npix: int) -> tuple[np.ndarray, float]:
    """uvw for an npix image over the fixed field, and the cell (arcsec): beam = 5 cells."""
    cell = FIELD_ARCSEC / npix
    if ntime not in _BASE_L80:
        base = uvw_tracks(ntime)
        _BASE_L80[ntime] = float(np.percentile(np.hypot(base[:, 0], base[:, 1]), 80))
    lam = C / FREQ0
    l80 = 0.574 * lam / (5 * cell * ARCSEC)
    return uvw_tracks(ntime, l80 / _BASE_L80[ntime]), cell


# ---------------------------------------------------------------- ducc0's own report
@contextmanager
def capture_stdout_fd() -> Iterator[list[str]]:
    """Capture what C++ code writes to file descriptor 1 (ducc0's verbose report)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            yield out
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


@contextmanager
def ducc_verbose(report: dict) -> Iterator[None]:
    """Run ducc0's vis2dirty/dirty2vis with verbosity=1 and parse the grid and timings into `report`."""
    mod = ducc0.wgridder.experimental
    originals = {name: getattr(mod, name) for name in ("vis2dirty", "dirty2vis")}

    def wrap(fn: Callable) -> Callable:
        return lambda **kw: fn(**{**kw, "verbosity": 1})

    for name, fn in originals.items():
        setattr(mod, name, wrap(fn))
    try:
        with capture_stdout_fd() as text:
            yield
    finally:
        for name, fn in originals.items():
            setattr(mod, name, fn)
    txt = text[0] if text else ""
    g = re.search(r"grid=\((\d+)x(\d+)(?:x(\d+))?\)", txt)
    if g:
        report["nu"], report["nv"] = int(g.group(1)), int(g.group(2))
        report["nw"] = int(g.group(3)) if g.group(3) else 1
    s = re.search(r"supp=(\d+)", txt)
    report["supp"] = int(s.group(1)) if s else None
    for key, pat in (("ducc_fft", r"\+- FFT\s*:[^(]*\(([\d.eE+-]+)s\)"),
                     ("ducc_kernel", r"\+- (?:de)?gridding proper\s*:[^(]*\(([\d.eE+-]+)s\)"),
                     ("ducc_total", r"Total wall clock time for (?:de)?gridding: ([\d.eE+-]+)s")):
        m = re.search(pat, txt)
        report[key] = float(m.group(1)) if m else float("nan")


# ---------------------------------------------------------------- gridder timings
@dataclass
class GridRun:
    op: str  # "grid" (dirty_image) or "degrid" (predict)
    epsilon: float
    nthreads: int
    ntime: int
    nchan: int
    npix: int
    nvis: int
    seconds: float
    report: dict = field(default_factory=dict)

    @property
    def padded(self) -> int:
        return self.report.get("nu", 0) * self.report.get("nv", 0)


def time_gridder(configs: list[tuple[int, int, int]], epsilons: list[float], threads: list[int],
                 wgridding: bool, min_seconds: float = 2.0) -> list[GridRun]:
    from almarules.kernels import gridding

    runs: list[GridRun] = []
    rng = np.random.default_rng(1)
    for ntime, nchan, npix in configs:
        uvw, cell = scaled_tracks(ntime, npix)
        freq = FREQ0 + DFREQ * np.arange(nchan)
        nrow = uvw.shape[0]
        vis = np.empty((nrow, nchan), np.complex128)
        vis.real = rng.standard_normal(vis.shape)
        vis.imag = rng.standard_normal(vis.shape)
        vis += 1.0
        weight = np.ones((nrow, nchan))
        model = np.zeros((npix, npix))
        model[rng.integers(0, npix, 50), rng.integers(0, npix, 50)] = 1.0
        for eps in epsilons:
            for nt in threads:
                kw = dict(epsilon=eps, wgridding=wgridding, nthreads=nt)
                ops = {"grid": lambda: gridding.dirty_image(uvw, freq, vis, weight, npix, npix, cell, **kw),
                       "degrid": lambda: gridding.predict(uvw, freq, model, cell, **kw)}
                for op, call in ops.items():
                    best, report = math.inf, {}
                    reps = 0
                    while reps < 3:
                        rep: dict = {}
                        with ducc_verbose(rep):
                            t0 = time.perf_counter()
                            call()
                            dt = time.perf_counter() - t0
                        if dt < best:
                            best, report = dt, rep
                        reps += 1
                        if best * (reps + 1) > min_seconds:  # repeat only the fast ones
                            break
                    runs.append(GridRun(op, eps, nt, ntime, nchan, npix, nrow * nchan, best, report))
    return runs


def _lstsq_rel(a: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on relative residuals: minimise sum ((a @ x - t) / t)^2; returns x, residuals."""
    coef, *_ = np.linalg.lstsq(a / t[:, None], np.ones_like(t), rcond=None)
    return coef, (a @ coef - t) / t


def fit_gridder(runs: list[GridRun]) -> dict:
    """The planner's model t = a_grid nvis [grid] + a_degrid nvis [degrid] + b P log2 P (no constant).

    Also, for information, the same with a per-row term r nrow (rows = nvis / nchan per call),
    which captures that visibilities of many-channel rows are cheaper (see the printed table).
    """
    t = np.array([r.seconds for r in runs])
    g = np.array([r.op == "grid" for r in runs], dtype=float)
    nvis = np.array([r.nvis for r in runs], dtype=float)
    nrow = nvis / np.array([r.nchan for r in runs])
    plp = np.array([r.padded * math.log2(r.padded) for r in runs])
    coef, resid = _lstsq_rel(np.stack([nvis * g, nvis * (1 - g), plp], axis=1), t)
    coef4, resid4 = _lstsq_rel(np.stack([nvis * g, nvis * (1 - g), nrow, plp], axis=1), t)
    return {"a_grid": coef[0], "a_degrid": coef[1], "b": coef[2], "resid": resid,
            "rms_rel": float(np.sqrt(np.mean(resid ** 2))), "max_rel": float(np.abs(resid).max()),
            "row": coef4, "rms_rel_row": float(np.sqrt(np.mean(resid4 ** 2))),
            "max_rel_row": float(np.abs(resid4).max()),
            "nw_median": float(np.median([r.report.get("nw", 1) for r in runs]))}


# ---------------------------------------------------------------- FFT alone
def time_fft(sizes: list[int], threads: list[int]) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {nt: [] for nt in threads}
    for n in sizes:
        a = np.zeros((n, n), np.complex128)
        a[: n // 4] = 1.0 + 0.5j
        for nt in threads:
            ducc0.fft.c2c(a, out=a, nthreads=nt)  # warm (plan, pages)
            best, reps, t_all = math.inf, 0, 0.0
            while reps < 5 and (reps < 2 or t_all < 0.5):
                t0 = time.perf_counter()
                ducc0.fft.c2c(a, out=a, forward=bool(reps % 2), nthreads=nt)
                dt = time.perf_counter() - t0
                best, reps, t_all = min(best, dt), reps + 1, t_all + dt
            out[nt].append((n * n, best))
        del a
    return out


def fit_through_origin(x: np.ndarray, t: np.ndarray) -> float:
    """k minimising sum ((k x - t) / t)^2."""
    return float(np.sum(x / t) / np.sum((x / t) ** 2))


# ---------------------------------------------------------------- Hogbom minor cycle
def hogbom(residual: np.ndarray, mask: np.ndarray, psf_patch: np.ndarray, niter: int, gain: float = 0.1) -> None:
    """niter Hogbom iterations in place: peak of |residual| x mask, subtract gain x peak x PSF patch."""
    nx, ny = residual.shape
    h = psf_patch.shape[0] // 2
    absbuf = np.empty_like(residual)
    for _ in range(niter):
        np.abs(residual, out=absbuf)
        absbuf *= mask
        i, j = divmod(int(absbuf.argmax()), ny)
        f = gain * residual[i, j]
        i0, i1, j0, j1 = max(i - h, 0), min(i + h + 1, nx), max(j - h, 0), min(j + h + 1, ny)
        residual[i0:i1, j0:j1] -= f * psf_patch[i0 - i + h:i1 - i + h, j0 - j + h:j1 - j + h]


def time_patch(psf_patch: np.ndarray, reps: int = 2000) -> float:
    """Seconds for one PSF-patch subtraction alone (the part of an iteration not proportional to npix)."""
    res = np.zeros((1024, 1024))
    h = psf_patch.shape[0] // 2
    t0 = time.perf_counter()
    for k in range(reps):
        i = 200 + (k * 37) % 600
        res[i - h:i + h + 1, i - h:i + h + 1] -= 0.01 * psf_patch
    return (time.perf_counter() - t0) / reps


def make_psf_patch() -> np.ndarray:
    """A (2 PATCH + 1)^2 PSF patch: a 5-pixel beam with sidelobes."""
    y, x = np.mgrid[-PATCH:PATCH + 1, -PATCH:PATCH + 1]
    return np.exp(-(x * x + y * y) / (2 * 2.1 ** 2)) * np.cos(0.3 * x)


def time_hogbom(sizes: list[int], budget_s: float) -> list[tuple[int, int, float]]:
    rng = np.random.default_rng(2)
    patch = make_psf_patch()
    out = []
    for n in sizes:
        res = rng.standard_normal((n, n)) * 0.01
        res[rng.integers(0, n, 20), rng.integers(0, n, 20)] = 1.0
        yy, xx = np.ogrid[:n, :n]
        mask = (((xx - n / 2) ** 2 + (yy - n / 2) ** 2) < (0.45 * n) ** 2).astype(np.float64)
        hogbom(res, mask, patch, 3)  # warm
        t0 = time.perf_counter()
        hogbom(res, mask, patch, 5)
        per = (time.perf_counter() - t0) / 5
        niter = max(5, int(budget_s / per))
        t0 = time.perf_counter()
        hogbom(res, mask, patch, niter)
        out.append((n * n, niter, (time.perf_counter() - t0) / niter))
        del res, mask
    return out


# ---------------------------------------------------------------- rule file
def _num(x: float) -> str:
    """3 significant digits in the rule formatter's canonical spelling (1.85e-7, not 1.85e-07)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), f"{x:.3g}")


def _doc(text: str) -> str:
    lines = textwrap.wrap(text, width=96, break_on_hyphens=False)
    return "    \"\"\"" + "\n    ".join(lines) + "\"\"\""


def rule_text(c: dict) -> str:
    """The four parameters as a rule file (canonical layout of `almarules fmt`)."""
    where = f"Measured on {c['machine']}, {c['date']}."
    return "\n".join([
        f"# Run-time cost model constants, measured by benchmarks/bench_cost_model.py on {c['date']}:",
        f"#   {c['command']}   (1-minute load average {c['load'][0]:.2f} at start, {c['load'][1]:.2f} at the end)",
        f"param grid_cost_per_vis = {_num(c['grid'])} s",
        _doc(f"Seconds to grid or to degrid one visibility (one (row, channel) sample given to ducc0; the "
             f"mean of gridding and degridding): kernels.gridding (ducc0 w-gridder), epsilon {_num(c['epsilon'])}, {c['wmode']}, "
             f"{c['threads']} thread(s). Least-squares fit of t = a nvis + b P log2 P over ALMA C-4-like "
             f"uvw tracks (43 antennas, 1-64 channels per call, {c['nvis_range']} visibilities, images "
             f"512^2-{c['npix_max']}^2): grid {_num(c['a_grid'])} s + degrid {_num(c['a_degrid'])} s; "
             f"fit rms {c['rms']:.0%}. Per visibility and pass, ducc0's (de)gridding kernel alone took "
             + " and ".join(f"{_num(v)} s with {ch} channel{'s' if ch > 1 else ''} per call" for ch, v in c["kern"].items())
             + f" (cube planes are gridded one channel at a time, mfs images all channels at once). {where}"),
        f"param fft_cost_per_pixel = {_num(c['fft'])} s",
        _doc(f"Seconds per padded uv-grid pixel per log2(padded pixels) for one gridding or one "
             f"degridding call (2 per plane per major cycle). Padded pixels = ducc0's grid, about "
             f"({c['sigma']:.2f} x npix)^2 at this epsilon (median; fft_padding = {c['sigma']:.2f} matches "
             f"it). Fitted with grid_cost_per_vis; it includes "
             f"ducc0's {c['nw']} w-planes per call ({c['wmode']}), w-screens and grid corrections: a bare "
             f"2-D complex128 FFT costs {_num(c['fft_bare'])} s per pixel per log2 here. {where}"),
        f"param minor_cost_per_pixel = {_num(c['minor'])} s",
        _doc(f"Seconds per image pixel per Hogbom iteration: numpy |residual| x mask and argmax over the "
             f"whole float64 image (three passes), then subtracting a {2 * PATCH + 1} x {2 * PATCH + 1} "
             f"PSF patch (about {_num(c['minor_c0'])} s per iteration, not in this term). Single-threaded, "
             f"fitted through the origin over 512^2-{c['hogbom_max']}^2 images: {_num(c['hogbom_range'][0])} s "
             f"per pixel at 512^2, {_num(c['hogbom_range'][1])} s at {c['hogbom_max']}^2. {where}"),
        f"param calibration_threads = {c['threads']}",
        _doc(f"Threads the gridding constants were measured with (ducc0 nthreads; the Hogbom constant is "
             f"single-threaded numpy). To scale to another thread count, multiply by calibration_threads / "
             f"threads (optimistic: t(1 thread) / ({c['threads']} x t({c['threads']} threads)) was "
             f"{c['efficiency']:.0%} over these calls, on a shared machine). {where}"),
        "",
    ])


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a ~15 s run with smaller data")
    ap.add_argument("--write", metavar="PATH", help="write the fitted constants as a rule file")
    ap.add_argument("--threads", type=int, default=0, help="threads for the written constants (0 = all cores)")
    ap.add_argument("--no-wgridding", dest="wgridding", action="store_false",
                    help="calibrate without the w-term correction (2-D gridding)")
    args = ap.parse_args()

    all_threads = ducc0.misc.thread_pool_size()
    write_threads = args.threads or all_threads
    threads = sorted({1, all_threads, write_threads})
    eps_list = [1e-4, 1e-6]
    if args.quick:
        configs = [(200, 1, 512), (25, 16, 512), (100, 2, 1024), (25, 4, 2048)]
        fft_sizes = [512, 1024, 2048]
        hog_sizes, hog_budget = [512, 1024, 2048], 0.25
    else:
        # (integrations, channels per call, npix): visibility count, channels and image size varied
        configs = [(1000, 1, 512), (125, 32, 512), (30, 64, 1024), (500, 4, 1024), (1000, 1, 2048),
                   (100, 16, 2048), (60, 4, 4096)]
        fft_sizes = [512, 1024, 2048, 3072, 4096]
        hog_sizes, hog_budget = [512, 1024, 2048, 4096], 1.0

    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = (f"{platform.machine()}, {os.cpu_count()} cores ({all_threads} for ducc0), {cpu}, "
               f"Python {platform.python_version()}, numpy {np.__version__}, ducc0 {ducc0.__version__}")
    load0 = os.getloadavg()[0]
    print(f"bench_cost_model {date} UTC: {machine}; load average {load0:.2f} at start")
    print(f"w-gridding {'on' if args.wgridding else 'off'}; threads {threads}; {'quick' if args.quick else 'full'} run. "
          f"Gridder times are the best of 2-3 calls for short calls, else of one; machines here are shared and noisy.\n")
    t_start = time.perf_counter()

    # 1. FFT alone
    fft = time_fft(fft_sizes, threads)
    print("1. ducc0.fft.c2c alone, complex128 N x N in place, P = N^2")
    print(f"  {'N':>6} " + " ".join(f"{f't {nt} thr s':>10} {'s/(P log2 P)':>12}" for nt in threads))
    for k, n in enumerate(fft_sizes):
        print(f"  {n:6d} " + " ".join(f"{fft[nt][k][1]:10.4f} {fft[nt][k][1] / (fft[nt][k][0] * math.log2(fft[nt][k][0])):12.3e}"
                                      for nt in threads))
    k_fft = {nt: fit_through_origin(np.array([p * math.log2(p) for p, _ in fft[nt]]), np.array([t for _, t in fft[nt]]))
             for nt in threads}
    print("  fit t = k P log2 P: " + ", ".join(f"k = {k_fft[nt]:.3e} s ({nt} thr)" for nt in threads))
    print(f"  [{time.perf_counter() - t_start:.0f} s elapsed]\n")

    # 2. gridder
    runs = time_gridder(configs, eps_list, threads, args.wgridding, min_seconds=0.6 if args.quick else 2.0)
    fits = {(eps, nt): fit_gridder([r for r in runs if r.epsilon == eps and r.nthreads == nt])
            for eps in eps_list for nt in threads}
    print("2. kernels.gridding.dirty_image (grid) and predict (degrid). P = ducc0's padded grid nu x nv, "
          "sigma = nu / npix, nw w-planes,\n   ducc0's own FFT and (de)gridding-kernel times; resid = "
          "(model - measured) / measured of the fit below")
    print(f"  {'op':6} {'eps':>5} {'thr':>3} {'ntime':>5} {'nchan':>5} {'npix':>5} {'nvis':>10} {'P':>11} "
          f"{'sigma':>5} {'nw':>3} {'t s':>7} {'fft s':>7} {'kern s':>7} {'resid':>6}")
    for (eps, nt), f in fits.items():
        sel = [r for r in runs if r.epsilon == eps and r.nthreads == nt]
        for r, res in zip(sel, f["resid"], strict=True):
            rp = r.report
            print(f"  {r.op:6} {eps:5.0e} {nt:3d} {r.ntime:5d} {r.nchan:5d} {r.npix:5d} {r.nvis:10,d} {r.padded:11,d} "
                  f"{rp.get('nu', 0) / r.npix:5.2f} {rp.get('nw', 0):3d} {r.seconds:7.3f} "
                  f"{rp.get('ducc_fft', math.nan):7.3f} {rp.get('ducc_kernel', math.nan):7.3f} {100 * res:5.0f}%")
    print("\n  planner's model, least squares on relative residuals: t = a_grid nvis [grid] + a_degrid nvis [degrid] "
          "+ b P log2 P")
    print(f"  {'eps':>5} {'thr':>3} {'a_grid s':>10} {'a_degrid s':>10} {'(ag+ad)/2':>10} {'b s':>10} "
          f"{'b/nw s':>10} {'rms':>5} {'max':>5} {'Mvis/s/pass':>12}")
    for (eps, nt), f in fits.items():
        a_mean = (f["a_grid"] + f["a_degrid"]) / 2
        print(f"  {eps:5.0e} {nt:3d} {f['a_grid']:10.3e} {f['a_degrid']:10.3e} {a_mean:10.3e} {f['b']:10.3e} "
              f"{f['b'] / f['nw_median']:10.3e} {100 * f['rms_rel']:4.0f}% {100 * f['max_rel']:4.0f}% {1e-6 / a_mean:12.2f}")
    print("\n  for information, with a per-row term: t = a_grid nvis + a_degrid nvis + r nrow + b P log2 P")
    for (eps, nt), f in fits.items():
        ag, ad, r_, b_ = f["row"]
        print(f"  {eps:5.0e} {nt:3d} a_grid {ag:.3e}  a_degrid {ad:.3e}  r {r_:.3e} s/row  b {b_:.3e}  "
              f"rms {100 * f['rms_rel_row']:.0f}% max {100 * f['max_rel_row']:.0f}%")
    print("\n  ducc0's own (de)gridding-kernel time per visibility, by channels per call (median), and its FFT time "
          "per plane per P log2 P:")
    chans = sorted({r.nchan for r in runs})
    print(f"  {'eps':>5} {'thr':>3} {'op':6} " + " ".join(f"{f'{c} ch':>9}" for c in chans) + f" {'FFT/plane':>10}")
    for eps in eps_list:
        for nt in threads:
            for op in ("grid", "degrid"):
                sel = [r for r in runs if r.epsilon == eps and r.nthreads == nt and r.op == op]
                cells = []
                for c in chans:
                    v = [r.report.get("ducc_kernel", math.nan) / r.nvis for r in sel if r.nchan == c]
                    cells.append(f"{np.nanmedian(v):9.2e}" if v and not np.all(np.isnan(v)) else f"{'-':>9}")
                fftv = [r.report.get("ducc_fft", math.nan) / (r.report.get("nw", 1) * r.padded * math.log2(r.padded))
                        for r in sel]
                print(f"  {eps:5.0e} {nt:3d} {op:6} " + " ".join(cells) + f" {np.nanmedian(fftv):10.2e}")
    print(f"  [{time.perf_counter() - t_start:.0f} s elapsed]\n")

    # 3. Hogbom
    hog = time_hogbom(hog_sizes, hog_budget)
    print(f"3. numpy Hogbom iteration: float64 image, |r| x mask and argmax over all pixels, "
          f"{2 * PATCH + 1}^2 PSF patch subtracted")
    print(f"  {'npix':>7} {'iterations':>10} {'s/iter':>10} {'s/pixel':>10}")
    for p, niter, t in hog:
        print(f"  {math.isqrt(p):4d}^2 {niter:10d} {t:10.3e} {t / p:10.3e}")
    k_minor = fit_through_origin(np.array([p for p, _, _ in hog], dtype=float), np.array([t for _, _, t in hog]))
    c0 = time_patch(make_psf_patch())
    print(f"  fit t_iter = k npix: k = {k_minor:.3e} s per pixel; the {2 * PATCH + 1}^2 patch subtraction alone "
          f"takes {c0:.2e} s per iteration\n")

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    load1 = os.getloadavg()[0]
    print(f"peak RSS {rss / 1024:.0f} MB; wall {time.perf_counter() - t_start:.0f} s; load average {load1:.2f} at the "
          f"end (above 1 per core, other processes shared the cores and the times are inflated)")

    eps_w = 1e-6
    f = fits[(eps_w, write_threads)]
    grid_cost = (f["a_grid"] + f["a_degrid"]) / 2
    sel = [r for r in runs if r.epsilon == eps_w and r.nthreads == write_threads]
    sel1 = [r for r in runs if r.epsilon == eps_w and r.nthreads == 1]
    efficiency = sum(r.seconds for r in sel1) / (write_threads * sum(r.seconds for r in sel))
    # ducc0's kernel time per visibility and pass, for the fewest and the most channels per call
    kern = {c: float(np.nanmedian([r.report.get("ducc_kernel", math.nan) / r.nvis for r in sel if r.nchan == c]))
            for c in (min(r.nchan for r in sel), max(r.nchan for r in sel))}
    nws = sorted({r.report.get("nw", 1) for r in sel})
    nvis = [r.nvis for r in sel]
    consts = {
        "date": date, "machine": machine, "epsilon": eps_w, "threads": write_threads, "all_threads": all_threads,
        "wmode": "w-gridding on" if args.wgridding else "w-gridding off",
        "command": (f"python benchmarks/bench_cost_model.py{' --quick' if args.quick else ''}"
                    f"{'' if args.wgridding else ' --no-wgridding'} --threads {write_threads}"),
        "grid": grid_cost, "a_grid": f["a_grid"], "a_degrid": f["a_degrid"], "rms": f["rms_rel"],
        "fft": f["b"], "sigma": float(np.median([r.report.get("nu", 0) / r.npix for r in sel])),
        "nw": str(nws[0]) if len(nws) == 1 else f"{nws[0]}-{nws[-1]}", "fft_bare": k_fft[write_threads],
        "minor": k_minor, "minor_c0": c0, "hogbom_max": hog_sizes[-1], "npix_max": max(c[2] for c in configs),
        "efficiency": efficiency, "kern": kern, "load": (load0, load1),
        "hogbom_range": (hog[0][2] / hog[0][0], hog[-1][2] / hog[-1][0]), "nvis_range": f"{min(nvis) / 1e6:.2g}M-{max(nvis) / 1e6:.2g}M",
    }
    print(f"\nconstants (epsilon {eps_w:g}, {consts['wmode']}, {write_threads} thread(s)):")
    print(f"  grid_cost_per_vis    = {_num(grid_cost)} s   (mean of grid {_num(f['a_grid'])} and degrid {_num(f['a_degrid'])})")
    print(f"  fft_cost_per_pixel   = {_num(f['b'])} s   (per call; padded grid ~ ({consts['sigma']:.2f} npix)^2, "
          f"nw {consts['nw']})")
    print(f"  minor_cost_per_pixel = {_num(k_minor)} s")
    print(f"  calibration_threads  = {write_threads}   (t1 / ({write_threads} t{write_threads}) = {efficiency:.0%} over the gridder calls)")
    if args.write:
        path = Path(args.write)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(rule_text(consts))
        os.replace(tmp, path)
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
