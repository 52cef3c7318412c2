"""Flagging kernels (heuristics.md section 9; pure numpy, no file I/O): autocorrelations,
antenna shadowing, spectral-window edge channels, amplitude outliers against uv distance
(hif_correctedampflag) and low antenna gains (hif_lowgainflag).

Every threshold is a keyword argument whose default is the pipeline's constant; the stages pass
the rule values. Each function returns boolean masks (True = flag) over the rows, channels or
points it was given, and, where the heuristic has reasons, a report saying why.

Conventions
-----------
Rows are Measurement Set main-table rows: ``time`` in seconds (MS TIME or TIME_CENTROID),
``ant1``/``ant2`` the ANTENNA1/ANTENNA2 indices, ``uvw`` (nrow, 3) in metres. The MS stores
``UVW = uvw(ANTENNA1) - uvw(ANTENNA2)``, i.e. the projection of X_ANTENNA1 - X_ANTENNA2 on
(u, v, w) with w towards the source (CASA's simulator and filler; checked on the
CASA-simulated alma_sim.ms by `engine/simulate/geometry.py`, and by the shadow test of
tests/kernels/test_flagging.py against CASA 6.7 flagdata). Hence w < 0 means ANTENNA2 is
nearer the source than ANTENNA1. uv distance is sqrt(u^2 + v^2) in metres.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

#: 1 / Phi^-1(3/4): the MAD of a normal distribution times this is its sigma
MAD_TO_SIGMA = 1.4826
#: Phi^-1(3/4): the MAD (and half the interquartile range) of a unit normal distribution
NORMAL_MAD = 0.6744897501960817
#: ACA FDM spectral windows (bandwidth, Hz) -> width of the baseband edges whose channels are flagged (Hz)
ACA_BASEBAND_EDGE_HZ = {62.5e6: 5.0e6, 125e6: 10.0e6, 250e6: 20.0e6, 500e6: 40.0e6, 1000e6: 62.5e6}


# --- deterministic flags -----------------------------------------------------------------------

def autocorrelations(ant1: np.ndarray, ant2: np.ndarray) -> np.ndarray:
    """(nrow,) bool: rows with ANTENNA1 == ANTENNA2 (flagdata mode='manual' autocorr=True)."""
    a1, a2 = np.asarray(ant1), np.asarray(ant2)
    if a1.shape != a2.shape:
        raise ValueError(f"ant1 shape {a1.shape} differs from ant2 shape {a2.shape}")
    return a1 == a2


def shadowed_rows(time: np.ndarray, uvw: np.ndarray, ant1: np.ndarray, ant2: np.ndarray,
                  diameters: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """(nrow,) bool: rows of an antenna that is shadowed at that timestamp (flagdata mode='shadow').

    For every cross-correlation row (i = ANTENNA1, j = ANTENNA2) with projected separation
    sqrt(u^2 + v^2) < (D_i + D_j) / 2 - tolerance (metres), the antenna behind the other is
    shadowed: ANTENNA1 when w < 0 (ANTENNA2 is then nearer the source, see the module's UVW
    convention), else ANTENNA2 (CASA's rule, w == 0 included). Every row of a shadowed antenna at
    that timestamp is flagged, its autocorrelation included. Timestamps are grouped by exact
    equality of `time` (pass TIME_CENTROID, as CASA does, where the two differ).

    diameters: (nant,) dish diameters (m) indexed by antenna id; tolerance (m) is the overlap
    allowed. Unlike CASA, which recomputes the uvw of every antenna of the ANTENNA table, only
    the baselines present in the rows are seen: an antenna absent at a timestamp shadows nothing.
    """
    t = np.asarray(time, dtype=np.float64)
    uvw = np.asarray(uvw, dtype=np.float64).reshape(-1, 3)
    a1, a2 = np.asarray(ant1, dtype=np.int64), np.asarray(ant2, dtype=np.int64)
    if not (t.shape == a1.shape == a2.shape == (uvw.shape[0],)):
        raise ValueError("time, uvw, ant1 and ant2 must describe the same rows")
    d = np.asarray(diameters, dtype=np.float64)
    _, tidx = np.unique(t, return_inverse=True)
    nant = int(max(d.size, a1.max(initial=-1) + 1, a2.max(initial=-1) + 1))
    if d.size < nant:
        raise ValueError(f"diameters has {d.size} entries, antenna ids reach {nant - 1}")
    close = (a1 != a2) & (np.hypot(uvw[:, 0], uvw[:, 1]) < 0.5 * (d[a1] + d[a2]) - tolerance)
    behind = np.where(uvw[:, 2] < 0.0, a1, a2)[close]
    shadowed = np.zeros(nant * (int(tidx.max(initial=-1)) + 1), dtype=bool)
    shadowed[tidx[close] * nant + behind] = True
    return shadowed[tidx * nant + a1] | shadowed[tidx * nant + a2]


def edge_channel_mask(nchan: int, fraction: float = 0.0625, *, ncorr: Optional[int] = None,
                      fps_fraction: float = 0.048387, fps_nchan: tuple[int, ...] = (62, 124, 248),
                      tdm_max_products: int = 256) -> np.ndarray:
    """(nchan,) bool: the edge channels of a TDM spectral window (hifa_flagdata edgespw/fracspw).

    n = round_half_up(fraction * nchan) channels are flagged at each edge (the pipeline's
    ``int(round_half_up(...))``; Python 2's round before 2019, the same for positive numbers);
    nothing when 2 n >= nchan (the spw would be flagged whole) or n == 0. Windows of 62, 124 or 248
    channels (the early ACA correlator's FPS TDM windows) use `fps_fraction` instead. With `ncorr`
    given, a window with ncorr * nchan > tdm_max_products is FDM and gets no fraction-based
    flags (the pipeline's fallback test; see `wide_spw_edge_mask` and `baseband_edge_mask` for
    its FDM heuristics). The default fraction 0.0625 is the Cycle 4/5 value; hifa_flagdata uses
    0.03125 since CAS-11560 (2018).
    """
    nchan = int(nchan)
    mask = np.zeros(nchan, dtype=bool)
    if ncorr is not None and int(ncorr) * nchan > tdm_max_products:
        return mask
    frac = fps_fraction if nchan in fps_nchan else fraction
    n = int(np.floor(frac * nchan + 0.5))
    if n > 0 and 2 * n < nchan:
        mask[:n] = mask[nchan - n:] = True
    return mask


def _channel_edges(chan_freq: np.ndarray, chan_width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(chan_freq, dtype=np.float64)
    w = np.abs(np.asarray(chan_width, dtype=np.float64)) * np.ones_like(f)
    return f - 0.5 * w, f + 0.5 * w


def wide_spw_edge_mask(chan_freq: np.ndarray, chan_width: np.ndarray,
                       max_bandwidth: float = 1875e6) -> np.ndarray:
    """(nchan,) bool: channels of an FDM window wider than `max_bandwidth` (Hz) that reach beyond
    centre +- max_bandwidth / 2 (CAS-5231), centre = the middle of the window's frequency span.
    Frequencies and widths in Hz (either channel order)."""
    lo, hi = _channel_edges(chan_freq, chan_width)
    if lo.size == 0 or hi.max() - lo.min() <= max_bandwidth:
        return np.zeros(lo.size, dtype=bool)
    centre = 0.5 * (lo.min() + hi.max())
    return (lo < centre - 0.5 * max_bandwidth) | (hi > centre + 0.5 * max_bandwidth)


def baseband_edge_mask(chan_freq: np.ndarray, chan_width: np.ndarray, baseband: tuple[float, float],
                       threshold: Optional[float] = None) -> np.ndarray:
    """(nchan,) bool: channels of an ACA FDM window overlapping (closed intervals) the first or last
    `threshold` Hz of its baseband (PIPE-425). baseband: (min, max) frequency of the baseband's
    SQLD window (Hz). threshold None: from the window's bandwidth by `ACA_BASEBAND_EDGE_HZ`
    (62.5 MHz -> 5 MHz, 125 -> 10, 250 -> 20, 500 -> 40, 1000 -> 62.5); other bandwidths: no flags."""
    lo, hi = _channel_edges(chan_freq, chan_width)
    if threshold is None:
        bw = float(hi.max() - lo.min()) if lo.size else 0.0
        threshold = next((v for k, v in ACA_BASEBAND_EDGE_HZ.items() if abs(bw - k) < 1e-6 * k), None)
        if threshold is None:
            return np.zeros(lo.size, dtype=bool)
    bb_lo, bb_hi = float(min(baseband)), float(max(baseband))
    return ((hi >= bb_lo) & (lo <= bb_lo + threshold)) | ((hi >= bb_hi - threshold) & (lo <= bb_hi))


# --- robust statistics and radial bins ---------------------------------------------------------

def median_mad_sigma(x: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 * MAD) of x: the centre and normal-equivalent sigma."""
    x = np.asarray(x, dtype=np.float64)
    med = float(np.median(x))
    return med, float(MAD_TO_SIGMA * np.median(np.abs(x - med)))


def quantile_centre_scale(x: np.ndarray, min_points_deciles: int = 20,
                          decile_factor: float = 1.9004) -> tuple[float, float]:
    """(midhinge, scale) of x as hif_correctedampflag computes them for large samples.

    Q1, Q3, D1, D9 are percentiles with numpy's 'midpoint' method; midhinge = (Q1 + Q3) / 2;
    iqr = (Q3 - Q1) / 2, idr = (D9 - D1) / 2 / decile_factor, scale = max(iqr, min(2 iqr, idr))
    (scale = iqr below `min_points_deciles` points). For normal data both iqr and idr estimate
    0.6745 sigma (the MAD, not sigma: 1.9004 = Phi^-1(0.9) / Phi^-1(0.75)), so thresholds in units
    of this scale are 0.6745 times as many normal sigmas; sigma = scale / `NORMAL_MAD`."""
    x = np.asarray(x, dtype=np.float64)
    q1, q3 = np.percentile(x, [25, 75], method="midpoint")
    iqr = 0.5 * (q3 - q1)
    scale = iqr
    if x.size >= min_points_deciles:
        d1, d9 = np.percentile(x, [10, 90], method="midpoint")
        scale = max(iqr, min(2.0 * iqr, 0.5 * (d9 - d1) / decile_factor))
    return 0.5 * float(q1 + q3), float(scale)


def pipeline_growth(uvmin: float, npoints: int) -> float:
    """The pipeline's bin growth factor for a bin starting at `uvmin` (m) with `npoints` points in
    all: > 1000 points: 1.1 below 40 m, 1.2 below 90 m, else 1.26; > 500: sqrt(2); else 1.6."""
    if npoints > 1000:
        return 1.1 if uvmin < 40 else (1.2 if uvmin < 90 else 1.26)
    return float(np.sqrt(2.0)) if npoints > 500 else 1.6


def _bin_edges(uvmin: float, uvmax: float, growth: Optional[float], npoints: int) -> np.ndarray:
    """Geometric edges uvmin, uvmin g, uvmin g^2, ... until one reaches uvmax (at least one bin)."""
    if uvmin <= 0:
        raise ValueError(f"uv distances must be positive for geometric bins (min {uvmin} m)")
    edges = [uvmin]
    while edges[-1] < uvmax:
        g = pipeline_growth(edges[-1], npoints) if growth is None else growth
        if g <= 1.0:
            raise ValueError(f"bin growth factor must exceed 1 (got {g})")
        edges.append(edges[-1] * g)
    if len(edges) == 1:
        edges.append(uvmax)
    return np.asarray(edges)


@dataclass(frozen=True)
class UvBin:
    """One evaluated radial bin: lo <= uvdist < hi (m; the last bin includes its upper edge),
    `index` the positions of its points in the input array, `offset` 0 for the main set of bins,
    1 for the set shifted by half a bin."""

    lo: float
    hi: float
    index: np.ndarray
    offset: int = 0

    @property
    def n(self) -> int:
        return int(self.index.size)


def _evaluated_bins(order: np.ndarray, sorted_uv: np.ndarray, edges: np.ndarray, min_points: int,
                    offset: int) -> list[UvBin]:
    """The pipeline's walk over bins [edges[k], edges[k+1]): a bin with fewer than min_points
    points is merged into the next one (its start is kept); a final bin that is too small is
    evaluated together with the last successful bin (from that bin's start)."""
    def select(lo: float, hi: float, last: bool) -> np.ndarray:
        i0 = np.searchsorted(sorted_uv, lo, side="left")
        i1 = np.searchsorted(sorted_uv, hi, side="right" if last else "left")
        return order[i0:i1]

    out: list[UvBin] = []
    nbin = edges.size - 1
    start, prior_start, npts = edges[0], edges[0], min_points + 1
    for k in range(nbin):
        last = k == nbin - 1
        if npts >= min_points:
            start = edges[k]
        idx = select(start, edges[k + 1], last)
        if idx.size < min_points and last and k > 0:
            idx = select(prior_start, edges[k + 1], last)
            start = prior_start
        npts = idx.size
        if npts < min_points:
            continue
        prior_start = start
        out.append(UvBin(float(start), float(edges[k + 1]), idx, offset))
    return out


def radial_bins(uvdist: np.ndarray, growth: Optional[float] = 1.2, min_points: int = 22,
                offset: bool = False) -> list[UvBin]:
    """The radial uv-distance bins of hif_correctedampflag (TARGET intent), as evaluated.

    Edges grow geometrically from the smallest uv distance by `growth` (None: the pipeline's
    `pipeline_growth`, which depends on the bin start and the number of points) until one
    reaches the largest. Bins with fewer than `min_points` points are merged as
    `_evaluated_bins` describes, so every evaluated bin holds >= min_points points (none if all
    the data hold fewer). offset=True gives the second set: edges at the centres (arithmetic
    means) of the main bins, the last edge kept, so the first half of the first main bin is in no
    bin of this set. uvdist in metres, > 0; order of the input kept in `UvBin.index`.
    hif_correctedampflag itself uses growth=None; 1.2 is heuristics.md's round value."""
    uv = np.asarray(uvdist, dtype=np.float64).ravel()
    if uv.size == 0:
        return []
    edges = _bin_edges(float(uv.min()), float(uv.max()), growth, uv.size)
    if offset:
        mids = 0.5 * (edges[:-1] + edges[1:])
        edges = np.append(mids, edges[-1])
    order = np.argsort(uv, kind="stable")
    return _evaluated_bins(order, uv[order], edges, min_points, int(offset))


# --- amplitude outliers ------------------------------------------------------------------------

@dataclass(frozen=True)
class BinStats:
    """Statistics of one evaluated bin (targets) or of all data (calibrators, lo = hi = NaN).
    centre and scale in the metric's unit (Jy); thresholds are centre - low * scale and
    centre + high * scale; sigma is the normal-equivalent sigma estimate behind the scale."""

    lo: float
    hi: float
    offset: int
    n: int
    centre: float
    scale: float
    sigma: float
    n_low: int
    n_high: int


@dataclass(frozen=True)
class FlaggedPoint:
    """One flagged point: its position in the input, baseline, uv distance (m), metric (Jy),
    deviation = (metric - centre) / scale in the thresholds' units (compare with -low_sigma and
    +high_sigma; of its bin for targets) and the reason ('ultrahigh outlier' for targets, else
    the broadest calibrator command covering it)."""

    index: int
    ant1: int
    ant2: int
    uvdist: float
    metric: float
    deviation: float
    reason: str


@dataclass(frozen=True)
class FlagCommand:
    """A calibrator flag as the pipeline writes it: reason ('bad timestamp', 'bad antenna timestamp',
    'bad CAI-dependent data', 'ultrahigh baseline timestamp', 'bad antenna', 'bad baseline'),
    antennas: () for all, (a,) one antenna, (i, j) a baseline with i < j; time: the MS time (s)
    of the timestamp, None for all times; iteration: 1-based."""

    reason: str
    antennas: tuple[int, ...]
    time: Optional[float]
    iteration: int


@dataclass
class OutlierReport:
    """What `amplitude_outliers` found: per-bin (or global) statistics, flagged points, the
    calibrator flag commands and the threshold scale factor used in each iteration."""

    bins: list[BinStats] = field(default_factory=list)
    points: list[FlaggedPoint] = field(default_factory=list)
    commands: list[FlagCommand] = field(default_factory=list)
    scale_factors: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class CalibratorThresholds:
    """The secondary constants of the calibrator (antenna-based) heuristic of hif_correctedampflag,
    defaults the pipeline's. Sigmas are in units of 1.4826 MAD of all the data.

    relax_sigma: outliers beyond it may relax the thresholds (x relaxed_factor); very_high_sigma:
    fallback outlier level for the per-timestamp evaluation; tmantint: fraction of timestamps that
    may hold outliers for the per-timestamp evaluation to run (x 2 (1 + log10 nscans) for several
    scans); tmint: fraction of a baseline's timestamps with outliers (beyond -bl_low_sigma /
    +bl_high_sigma) that makes it a bad baseline; tmbl: fraction of an antenna's nant - 1
    baselines that are bad that makes it a bad antenna (at least tmbl_min_bad); affected /
    partly_affected: fractions of the antennas that make a whole timestamp bad;
    max_frac_outlier_scans: an antenna in this fraction of a timestamp's more than
    min_timestamp_outliers outliers is bad there; cai_antennas / cai_fraction: more antennas
    touched than max(cai_antennas, cai_fraction nant) make the affected ones bad there."""

    relax_sigma: float = 6.5
    very_high_sigma: float = 10.0
    bl_low_sigma: float = 3.4
    bl_high_sigma: float = 3.2
    tmantint: float = 0.063
    tmint: float = 0.085
    tmbl: float = 0.175
    tmbl_min_bad: float = 4.0
    relaxed_factor: float = 2.0
    affected: float = 1.0 / 3.0
    partly_affected: float = 0.5
    max_frac_outlier_scans: float = 0.5
    min_timestamp_outliers: int = 5
    cai_antennas: float = 6.0
    cai_fraction: float = 0.2


def mean_parallel_hands(metric: np.ndarray, flag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) mean of the two parallel hands (2, n) over unflagged values, and its flag (both hands
    flagged): what the pipeline examines when the intent has several scans (CAS-12011)."""
    m, f = np.asarray(metric, dtype=np.float64), np.asarray(flag, dtype=bool)
    if m.shape != f.shape or m.ndim != 2 or m.shape[0] != 2:
        raise ValueError(f"metric and flag must both have shape (2, n), got {m.shape} and {f.shape}")
    good = ~f
    n = good.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(good, m, 0.0).sum(axis=0) / n, m.mean(axis=0))
    return mean, f.all(axis=0)


def amplitude_outliers(metric: np.ndarray, uvdist: np.ndarray, ant1: np.ndarray, ant2: np.ndarray, *,
                       calibrator: bool, low_sigma: float = 13.0, high_sigma: float = 12.0,
                       flag: Optional[np.ndarray] = None, time: Optional[np.ndarray] = None,
                       nant: Optional[int] = None, nscans: int = 1, cross_hand: bool = False,
                       growth: Optional[float] = 1.2, min_points: int = 22, large_sample: int = 1000,
                       mad_buffer: float = 2.0, ant_low_sigma: float = 4.0, ant_high_sigma: float = 4.6,
                       niter: int = 2, thresholds: CalibratorThresholds = CalibratorThresholds(),
                       ) -> tuple[np.ndarray, OutlierReport]:
    """(n,) bool flags of amplitude outliers of one correlation, and the report (hif_correctedampflag).

    Input: one point per MS row of one field (calibrators: the fields of one intent), spw and
    correlation, channel-averaged: metric = |corrected| - |model| (Jy; for several scans the mean
    of the two parallel hands, see `mean_parallel_hands`); uvdist (m); ant1/ant2; flag: points
    already flagged (ignored by the statistics; new flags may cover them). Autocorrelations and
    non-finite metrics are ignored.

    Targets (calibrator=False): in each radial bin (`radial_bins` with growth/min_points, both
    the main and the half-shifted set) a point is an outlier below centre - low_sigma * scale or
    above centre + high_sigma * scale. With more than `large_sample` points in all, centre/scale
    are `quantile_centre_scale` (scale ~ 0.6745 sigma: the thresholds are ~8.8 and ~8.1 normal
    sigmas); otherwise the median and mad_buffer * 1.4826 MAD (scale = 2 sigma: 26 and 24 sigmas).
    A point is flagged when it is an outlier in both sets, or in the main set and in the first
    half of the first bin (which the shifted set does not cover).

    Calibrators: the pipeline's antenna-based heuristic on the median and 1.4826 MAD of all the
    data (needs `time` and `nant`, the ANTENNA table's size), repeated up to `niter` times on
    what is left unflagged until an iteration adds nothing: see `_calibrator_iteration`. Its
    flags are commands (timestamps, antennas at a timestamp, baselines at a timestamp beyond
    -low_sigma / +high_sigma, whole antennas, whole baselines) applied here to every given point
    they cover; the pipeline applies them to all correlations. nscans: the intent's scans in
    this spw; cross_hand: the metric is a cross-hand one (looser baseline threshold)."""
    m = np.asarray(metric, dtype=np.float64).ravel()
    uv = np.asarray(uvdist, dtype=np.float64).ravel()
    a1, a2 = np.asarray(ant1, dtype=np.int64).ravel(), np.asarray(ant2, dtype=np.int64).ravel()
    prior = np.zeros(m.size, dtype=bool) if flag is None else np.asarray(flag, dtype=bool).ravel()
    if not (m.shape == uv.shape == a1.shape == a2.shape == prior.shape):
        raise ValueError("metric, uvdist, ant1, ant2 (and flag) must have the same length")
    usable = (a1 != a2) & np.isfinite(m) & ~prior
    report = OutlierReport()
    if not calibrator:
        flags = _target_outliers(m, uv, usable, report, low_sigma, high_sigma, growth, min_points,
                                 large_sample, mad_buffer)
        _describe_points(report, flags, m, uv, a1, a2, np.zeros(m.size, dtype=np.int8))
        return flags, report
    if time is None or nant is None:
        raise ValueError("calibrators need time and nant")
    t = np.asarray(time, dtype=np.float64).ravel()
    if t.shape != m.shape:
        raise ValueError("time must have the length of metric")
    flags, code = _calibrator_outliers(m, t, a1, a2, usable, int(nant), int(nscans), cross_hand, thresholds,
                                       (low_sigma, high_sigma, ant_low_sigma, ant_high_sigma), int(niter), report)
    _describe_points(report, flags & (a1 != a2), m, uv, a1, a2, code)
    return flags, report


def _target_outliers(m: np.ndarray, uv: np.ndarray, usable: np.ndarray, report: OutlierReport,
                     low: float, high: float, growth: Optional[float], min_points: int,
                     large_sample: int, mad_buffer: float) -> np.ndarray:
    """Flags of the two-bin-set test for targets (see `amplitude_outliers`); fills report.bins."""
    sel = np.flatnonzero(usable)
    flags = np.zeros(m.size, dtype=bool)
    if sel.size < 2:
        return flags
    large = sel.size > large_sample
    found = []
    for offset in (False, True):
        hit = np.zeros(m.size, dtype=bool)
        for b in radial_bins(uv[sel], growth, min_points, offset):
            x = m[sel[b.index]]
            if large:
                centre, scale = quantile_centre_scale(x)
                sigma = scale / NORMAL_MAD
            else:
                centre, sigma = median_mad_sigma(x)
                scale = mad_buffer * sigma
            lo, hi = x < centre - low * scale, x > centre + high * scale
            hit[sel[b.index[lo | hi]]] = True
            report.bins.append(BinStats(b.lo, b.hi, b.offset, b.n, centre, scale, sigma,
                                        int(lo.sum()), int(hi.sum())))
        found.append(hit)
    edges0 = _bin_edges(float(uv[sel].min()), float(uv[sel].max()), growth, sel.size)
    first_half = usable & (uv >= edges0[0]) & (uv < 0.5 * (edges0[0] + edges0[1]))
    report.scale_factors.append(1.0)
    return (found[0] & found[1]) | (found[0] & first_half)



#: flag reasons, broadest first: a point covered by several commands is reported with the first
#: ('ultrahigh outlier' is the targets' reason)
REASONS = ("ultrahigh outlier", "bad antenna", "bad baseline", "bad timestamp", "bad antenna timestamp",
           "bad CAI-dependent data", "ultrahigh baseline timestamp")


def _describe_points(report: OutlierReport, flags: np.ndarray, m: np.ndarray, uv: np.ndarray,
                     a1: np.ndarray, a2: np.ndarray, reason_code: np.ndarray) -> None:
    """Append a FlaggedPoint per flag; its deviation is measured against the last main-set bin
    starting at or below its uv distance (targets) or the first iteration's global statistics
    (calibrators)."""
    idx = np.flatnonzero(flags)
    main = [b for b in report.bins if b.offset == 0]
    los = np.array([b.lo for b in main])
    for i in idx:
        if not main:
            dev = np.nan
        else:
            b = main[0] if np.isnan(los[0]) else main[max(0, int(np.searchsorted(los, uv[i], "right")) - 1)]
            dev = (m[i] - b.centre) / b.scale if b.scale > 0 else np.nan
        report.points.append(FlaggedPoint(int(i), int(a1[i]), int(a2[i]), float(uv[i]), float(m[i]),
                                          float(dev), REASONS[int(reason_code[i])]))


@dataclass(frozen=True)
class _CalContext:
    """The data and thresholds of one calibrator evaluation (arrays over all input points)."""

    m: np.ndarray
    t: np.ndarray
    tidx: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    cross: np.ndarray
    nant: int
    nscans: int
    cross_hand: bool
    th: CalibratorThresholds
    low: float
    high: float
    ant_low: float
    ant_high: float


def _calibrator_outliers(m: np.ndarray, t: np.ndarray, a1: np.ndarray, a2: np.ndarray, usable: np.ndarray,
                         nant: int, nscans: int, cross_hand: bool, th: CalibratorThresholds,
                         sig: tuple[float, float, float, float], niter: int,
                         report: OutlierReport) -> tuple[np.ndarray, np.ndarray]:
    """Iterate `_calibrator_iteration` (up to niter times, stopping when an iteration adds no
    command); (flags, reason codes) over all points."""
    _, tidx = np.unique(t, return_inverse=True)
    if max(a1.max(initial=0), a2.max(initial=0)) >= nant:
        raise ValueError(f"antenna ids reach {max(a1.max(), a2.max())}, nant is {nant}")
    ctx = _CalContext(m, t, tidx, a1, a2, a1 != a2, nant, max(1, nscans), cross_hand, th, *sig)
    flags = np.zeros(m.size, dtype=bool)
    code = np.zeros(m.size, dtype=np.int8)
    for it in range(1, niter + 1):
        cmds = _calibrator_iteration(ctx, usable & ~flags, it, report)
        if not cmds:
            break
        report.commands += cmds
        new, new_code = _apply_commands(ctx, cmds)
        code = np.where(new & ~flags, new_code, code)
        flags |= new
    report.commands = _consolidate(report.commands)
    return flags, code


def _consolidate(cmds: list[FlagCommand]) -> list[FlagCommand]:
    """The commands without those another one covers (the pipeline's consolidation; the flags
    are unchanged): a timed command of an antenna, or of a baseline with an antenna, flagged at
    all times; an antenna or baseline at a timestamp flagged whole; a baseline at a time when one
    of its antennas is flagged; duplicates."""
    whole = {a for c in cmds if c.time is None and len(c.antennas) == 1 for a in c.antennas}
    whole_bl = {c.antennas for c in cmds if c.time is None}
    stamps = {c.time for c in cmds if not c.antennas}
    ant_at = {(c.time, c.antennas[0]) for c in cmds if len(c.antennas) == 1}
    out, seen = [], set()
    for c in cmds:
        timed = c.time is not None and bool(c.antennas)
        if timed and (c.antennas in whole_bl or any(a in whole for a in c.antennas) or c.time in stamps):
            continue
        if len(c.antennas) == 2 and any((c.time, a) in ant_at for a in c.antennas):
            continue
        if (c.reason, c.antennas, c.time) not in seen:
            seen.add((c.reason, c.antennas, c.time))
            out.append(c)
    return out


def _calibrator_iteration(ctx: _CalContext, valid: np.ndarray, it: int, report: OutlierReport) -> list[FlagCommand]:
    """One iteration of hif_correctedampflag's calibrator heuristic on the points `valid`.

    med, mad = median and 1.4826 MAD of the valid metric. (1) The threshold scale factor f is
    `_relaxation`'s. (2) Outliers beyond -ant_low / +ant_high mad: if they fall in at most
    n_tmax = max(1, tmantint' * ntimes) timestamps (tmantint' = tmantint * 2 (1 + log10 nscans)
    for several scans), each such timestamp is judged by `_timestamp_commands`; else the same
    with the outliers beyond +-very_high_sigma. (3) Every point beyond -low / +high mad: its
    baseline at its timestamp. (4) `_baseline_commands` with f. A zero mad gives no flags."""
    th, sel = ctx.th, np.flatnonzero(valid)
    if sel.size < 2:
        return []
    x, ts, s1, s2 = ctx.m[sel], ctx.tidx[sel], ctx.a1[sel], ctx.a2[sel]
    med, mad = median_mad_sigma(x)
    ultra = (x < med - ctx.low * mad) | (x > med + ctx.high * mad)
    report.bins.append(BinStats(np.nan, np.nan, 0, int(sel.size), med, mad, mad,
                                int((x < med - ctx.low * mad).sum()), int((x > med + ctx.high * mad).sum())))
    if not mad > 0:
        report.scale_factors.append(1.0)
        return []
    tmantint = th.tmantint * 2 * (1 + np.log10(ctx.nscans)) if ctx.nscans > 1 else th.tmantint
    n_tmax = max(1.0, tmantint * np.unique(ctx.tidx[ctx.cross]).size)
    factor = _relaxation(ctx, x, med, mad, ts, s1, s2, n_tmax)
    report.scale_factors.append(factor)
    cmds: list[FlagCommand] = []
    high = (x < med - ctx.ant_low * mad) | (x > med + ctx.ant_high * mad)
    very = (x < med - th.very_high_sigma * mad) | (x > med + th.very_high_sigma * mad)
    if high.any():
        if np.unique(ts[high]).size <= n_tmax:
            cmds += _timestamp_commands(ctx, ts[high], s1[high], s2[high], it)
        elif 0 < np.unique(ts[very]).size <= n_tmax:
            cmds += _timestamp_commands(ctx, ts[very], s1[very], s2[very], it)
    times = np.unique(ctx.t)
    keys = np.unique(np.stack([ts[ultra], np.minimum(s1, s2)[ultra], np.maximum(s1, s2)[ultra]]), axis=1)
    cmds += [FlagCommand("ultrahigh baseline timestamp", (int(i), int(j)), float(times[k]), it) for k, i, j in keys.T]
    cmds += _baseline_commands(ctx, valid, med, mad, factor, it)
    return cmds


def _most_frequent(a: np.ndarray, nant: int) -> int:
    """The most frequent value of a; among equals the one seen first (statistics.mode's rule)."""
    counts = np.bincount(a, minlength=nant)
    cands = np.flatnonzero(counts == counts.max())
    return int(cands[np.argmin([np.argmax(a == c) for c in cands])])


def _relaxation(ctx: _CalContext, x: np.ndarray, med: float, mad: float, ts: np.ndarray, s1: np.ndarray,
                s2: np.ndarray, n_tmax: float) -> float:
    """The threshold scale factor: relaxed_factor when the points beyond +-relax_sigma mad fall in
    more than n_tmax * k timestamps, else 1. k = 4 - i when the i+1 most frequent antennas of
    those outliers (i < max(1, nant // 10)) account for more than 90% of them, else 1."""
    th = ctx.th
    relax = (x < med - th.relax_sigma * mad) | (x > med + th.relax_sigma * mad)
    nout = int(relax.sum())
    if nout == 0:
        return 1.0
    r1, r2, k = s1[relax], s2[relax], 1
    for i in range(max(1, ctx.nant // 10)):
        ant = _most_frequent(np.concatenate([r1, r2]), ctx.nant)
        keep = (r1 != ant) & (r2 != ant)
        if keep.sum() < 0.1 * nout:
            k = 4 - i
            break
        r1, r2 = r1[keep], r2[keep]
    return th.relaxed_factor if np.unique(ts[relax]).size > n_tmax * k else 1.0


def _timestamp_commands(ctx: _CalContext, tt: np.ndarray, o1: np.ndarray, o2: np.ndarray,
                        it: int) -> list[FlagCommand]:
    """Per outlier timestamp (tt: time indices of the outliers, o1/o2 their antennas): c_a = the
    number of outliers antenna a is in; affected = c_a >= max(1, max c - 1), partly = the other
    antennas with c_a >= 1. The whole timestamp is bad when affected > `affected` nant, or
    affected > `affected` nant / 2 and affected + partly > `partly_affected` nant; else the
    antennas with the largest count when it is >= max_frac_outlier_scans of more than
    min_timestamp_outliers (5) outliers; else, when affected + partly > max(cai_antennas,
    cai_fraction nant) = max(6, 0.2 nant), the affected antennas ('bad CAI-dependent data')."""
    th, nant, times = ctx.th, ctx.nant, np.unique(ctx.t)
    out: list[FlagCommand] = []
    for k in np.unique(tt):
        sel = tt == k
        n_out = int(sel.sum())
        c = np.bincount(np.concatenate([o1[sel], o2[sel]]), minlength=nant)
        affected = np.flatnonzero(c >= max(1, c.max() - 1))
        n_aff, n_part = affected.size, int((c >= 1).sum()) - affected.size
        t0 = float(times[k])
        if n_aff > th.affected * nant or (n_aff > 0.5 * th.affected * nant
                                          and n_aff + n_part > th.partly_affected * nant):
            out.append(FlagCommand("bad timestamp", (), t0, it))
        elif c.max() >= th.max_frac_outlier_scans * n_out and n_out > th.min_timestamp_outliers:
            out += [FlagCommand("bad antenna timestamp", (int(a),), t0, it) for a in np.flatnonzero(c == c.max())]
        elif n_aff + n_part > max(th.cai_antennas, th.cai_fraction * nant) and n_aff > 0:
            out += [FlagCommand("bad CAI-dependent data", (int(a),), t0, it) for a in affected]
    return out


def _baseline_commands(ctx: _CalContext, valid: np.ndarray, med: float, mad: float, factor: float,
                       it: int) -> list[FlagCommand]:
    """Bad baselines and antennas over all timestamps. A baseline is bad when its points beyond
    -bl_low / +bl_high mad number more than max(1, n_bl * tmint * factor) (n_bl its rows,
    flagged ones included; tmint x sqrt(2), x 3 for a cross hand, with several scans). An antenna
    in more than max(tmbl_min_bad, tmbl * factor * (nant - 1)) bad baselines is flagged whole;
    a bad baseline of two good antennas is flagged whole when its outlier fraction is
    >= min(1, tmint * relaxed_factor)."""
    th, nant, m = ctx.th, ctx.nant, ctx.m
    beyond = m > med + th.bl_high_sigma * mad
    if th.bl_low_sigma > 0:
        beyond |= m < med - th.bl_low_sigma * mad
    hit = valid & beyond
    if not hit.any():
        return []
    key = np.minimum(ctx.a1, ctx.a2) * nant + np.maximum(ctx.a1, ctx.a2)
    n_out = np.bincount(key[hit], minlength=nant * nant)
    n_all = np.bincount(key[ctx.cross], minlength=nant * nant)
    tmint = th.tmint * factor * ((3.0 if ctx.cross_hand else np.sqrt(2.0)) if ctx.nscans > 1 else 1.0)
    bad = np.flatnonzero(n_out > np.maximum(1.0, n_all * tmint))
    per_ant = np.bincount(np.concatenate([bad // nant, bad % nant]), minlength=nant)
    bad_ants = np.flatnonzero(per_ant > max(th.tmbl_min_bad, th.tmbl * factor * (nant - 1)))
    out = [FlagCommand("bad antenna", (int(a),), None, it) for a in bad_ants]
    limit = min(1.0, th.tmint * th.relaxed_factor)
    for b in bad:
        i, j = divmod(int(b), nant)
        if i not in bad_ants and j not in bad_ants and n_out[b] / n_all[b] >= limit:
            out.append(FlagCommand("bad baseline", (i, j), None, it))
    return out


def _apply_commands(ctx: _CalContext, cmds: list[FlagCommand]) -> tuple[np.ndarray, np.ndarray]:
    """(flags, reason codes) of the points the commands cover: a timestamp is matched exactly
    (the pipeline's command spans t - 0.5 s .. t + 1 s), a baseline in either antenna order."""
    nant, ti, a1, a2 = ctx.nant, ctx.tidx, ctx.a1, ctx.a2
    tindex = {float(t): k for k, t in enumerate(np.unique(ctx.t))}
    lo, hi = np.minimum(a1, a2), np.maximum(a1, a2)
    flags = np.zeros(a1.size, dtype=bool)
    code = np.zeros(a1.size, dtype=np.int8)
    for r, reason in enumerate(REASONS):
        sel = [c for c in cmds if c.reason == reason]
        if not sel:
            continue
        tk = np.array([tindex[c.time] if c.time is not None else -1 for c in sel], dtype=np.int64)
        if reason == "bad timestamp":
            hit = np.isin(ti, tk)
        elif reason in ("bad antenna timestamp", "bad CAI-dependent data"):
            keys = tk * nant + np.array([c.antennas[0] for c in sel])
            hit = np.isin(ti * nant + a1, keys) | np.isin(ti * nant + a2, keys)
        elif reason == "ultrahigh baseline timestamp":
            keys = (tk * nant + [min(c.antennas) for c in sel]) * nant + [max(c.antennas) for c in sel]
            hit = np.isin((ti * nant + lo) * nant + hi, keys)
        elif reason == "bad antenna":
            ants = [c.antennas[0] for c in sel]
            hit = np.isin(a1, ants) | np.isin(a2, ants)
        else:
            hit = np.isin(lo * nant + hi, [min(c.antennas) * nant + max(c.antennas) for c in sel])
        code = np.where(hit & ~flags, r, code)
        flags |= hit
    return flags, code


# --- low gains ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LowGainReport:
    """Why `low_gain_antennas` flagged: ratio (nscan, nant) = amplitude / median of its diameter
    group (NaN where missing or the group was skipped); median per antenna (NaN if skipped);
    skipped: the diameters (m) with too few antennas; whole_view: groups flagged whole because
    too many antennas were entirely flagged."""

    ratio: np.ndarray
    median: np.ndarray
    skipped: tuple[float, ...]
    whole_view: tuple[float, ...]

    def reasons(self, flags: np.ndarray) -> list[tuple[int, int, float]]:
        """(scan index, antenna, ratio to the median) of every flag."""
        return [(int(s), int(a), float(self.ratio[s, a])) for s, a in zip(*np.nonzero(flags), strict=True)]


def low_gain_antennas(amplitude: np.ndarray, lo: float = 0.5, hi: float = 1.5, min_antennas: int = 5, *,
                      diameters: Optional[np.ndarray] = None,
                      entirely_flagged_limit: float = 0.666) -> tuple[np.ndarray, LowGainReport]:
    """(nscan, nant) bool flags of low (or high) antenna gains (hif_lowgainflag, one spw), and why.

    amplitude: (nscan, nant) or (nscan, nant, npol) |gain| of a long-solint ('inf', per scan)
    amplitude solution on the bandpass calibrator, NaN where missing or flagged; several
    polarisations are averaged (nanmean; the pipeline solves one gain for both, gaintype='T').
    Antennas are grouped by dish diameter (`diameters`, (nant,) m; one group if None); a group
    of fewer than `min_antennas` antennas is not judged. In each group, with M = the median of
    all its valid amplitudes, an amplitude < lo * M or > hi * M is flagged; then if at least
    `entirely_flagged_limit` of the group's antennas have every scan flagged (missing or new),
    all its remaining values are flagged (all of them, missing ones too, when every antenna is:
    e.g. no solution at all in this spw). The pipeline flags a flagged antenna in the whole spw
    (all scans and fields) and repeats solve-and-flag twice (niter=2, a stage-level loop)."""
    amp = np.asarray(amplitude, dtype=np.float64)
    if amp.ndim == 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            amp = np.nanmean(amp, axis=2)
    if amp.ndim != 2:
        raise ValueError(f"amplitude must be (nscan, nant[, npol]), got shape {np.shape(amplitude)}")
    nant = amp.shape[1]
    diam = np.zeros(nant) if diameters is None else np.asarray(diameters, dtype=np.float64)
    if diam.shape != (nant,):
        raise ValueError(f"diameters must have shape ({nant},), got {diam.shape}")
    flags = np.zeros(amp.shape, dtype=bool)
    ratio = np.full(amp.shape, np.nan)
    median = np.full(nant, np.nan)
    skipped, whole = [], []
    for d in np.unique(diam):
        cols = np.flatnonzero(diam == d)
        if cols.size < min_antennas:
            skipped.append(float(d))
            continue
        view = amp[:, cols]
        valid = np.isfinite(view)
        med = float(np.median(view[valid])) if valid.any() else np.nan
        median[cols] = med
        ratio[:, cols] = view / med
        with np.errstate(invalid="ignore"):
            new = valid & ((view < lo * med) | (view > hi * med))
        done = ~valid | new
        frac = np.all(done, axis=0).sum() / cols.size
        if frac >= entirely_flagged_limit:
            new = valid.copy() if frac < 1.0 else np.ones_like(valid)
            whole.append(float(d))
        flags[:, cols] = new
    return flags, LowGainReport(ratio, median, tuple(skipped), tuple(whole))

