"""Regridding the visibility channels of several execution blocks (EBs) onto one LSRK channel axis,
as tclean does for a cube (specmode='cube', outframe='LSRK', interpolation='linear' by default)
instead of matching channels by index. `common_axis` chooses the output axis from every EB's LSRK
channels; `regrid` interpolates one EB's visibilities onto it.

Units and conventions
---------------------
Frequencies   Hz, LSRK (the caller converts: nu_LSRK = nu_TOPO * doppler of the EB).
Channel order either direction: an axis may ascend or descend in frequency; channel widths are
              signed as in the MS's CHAN_WIDTH (negative for a descending axis). Outputs keep the
              order of the output axis, the output axis that of the first EB.
vis           (nrow, nchan, ...) complex, Jy: channels on axis 1, any trailing axes (correlations).
weight        w = 1/sigma^2 per real and per imaginary part (Jy^-2), anything broadcasting to vis
              (WEIGHT_SPECTRUM, or WEIGHT as (nrow, 1, ...)).
flags         bool broadcasting to vis, True = flagged. A sample is usable when unflagged, w > 0
              and both w and the data are finite; unusable samples never reach a sum (their data
              may be NaN). On output, flagged samples hold vis 0 and weight 0.

Interpolation (`regrid`)
------------------------
'linear': the value at frequency f is (1 - t) v_a + t v_b from the two input channels a, b whose
centres bracket f, t = (f - f_a) / (f_b - f_a) in [0, 1]; its weight is the inverse variance
1 / ((1 - t)^2 / w_a + t^2 / w_b) (w_a itself when t == 0, w_b when t == 1). It is flagged when a
channel entering with a nonzero coefficient is unusable; a neighbour with coefficient 0 (f on a
channel centre) does not matter. 'nearest': the value and weight of the channel with the nearest
centre (a tie, t = 0.5, takes the higher-frequency channel), flagged when that channel is
unusable. Either way a frequency beyond the outermost input centres is flagged (weight 0): no
extrapolation, even by half a channel. Offsets within SNAP of a channel of an input centre count
as on it (the rounding of ~1e11 Hz values is ~1e-5 Hz, far below), so an EB regridded onto its own
channels, binned or not, is returned unchanged and keeps its edge channels.

Binned output (nbin > 1: output width = nbin input widths; either method) interpolates at the
nbin sub-channel centres of each output channel, f_c + (j - (nbin - 1) / 2) |width| / nbin,
j = 0 .. nbin - 1 (the first EB's channel centres), and averages the usable sub-samples s_j with
their inverse-variance weights u_j: vis = sum u_j s_j / sum u_j, flagged only when no sub-sample is
usable. Its weight is the inverse of the variance of that mean, counting the input channels that
two sub-samples share: for an EB on the output's own sub-channels (t == 0, as the first EB) that
is sum u_j; an EB interpolated between its channels has neighbouring sub-samples sharing a channel,
positively correlated, and a weight below sum u_j (by 1.43 for nbin = 2 at t = 0.37, up to 2 for
large nbin at t = 0.5): sum u_j would over-weight it against the first EB. Adjacent output
channels of an interpolated EB are correlated too; the weights describe each channel alone.

Linear interpolation at a constant fraction t is a convolution with two spikes, weight 1 - t at
-t and t at 1 - t channels: its centroid is 0, so a line's first moment is kept (up to sampling
aliasing, ~exp(-2 pi^2 sigma^2 / dnu^2)), and its variance grows by t (1 - t) channel^2.

Edges: `common_axis` keeps output channels whose edges lie within every EB's span; one that lies
within an EB's edges but beyond its outermost centre (possible only when that EB's channels are
wider than the output's sub-channels, e.g. by a Doppler ratio ~1e-6 at the common edge) is
flagged by `regrid` for that EB.

Cost: no loop over rows; a loop over the nbin sub-channels, each step a few arrays of
nrow x nchan_out (the two bracketing channels gathered; weights or flags constant along the
channels, e.g. WEIGHT as (nrow, 1), are never expanded). Real-valued vis is converted to complex
(the one nrow x nchan_in temporary). Pass row chunks (~1e6-1e7 samples) for speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: fraction of a channel within which two frequencies count as equal (see the module doc)
SNAP = 1e-6
#: relative tolerance on |output width| / input spacing being an integer nbin >= 2 when `regrid`
#: infers nbin: wide enough for the LSRK widths of EBs on different days (Doppler factors differ
#: by < 2e-4, |dv| < 60 km/s), far narrower than a different channelisation
NBIN_RTOL = 1e-3

METHODS = ("linear", "nearest")


@dataclass(frozen=True)
class OutputAxis:
    """The common LSRK channel axis of several EBs (`common_axis`). centres_hz (nchan,) Hz in the
    first EB's channel order; width_hz the channel width, Hz, signed as the first EB's widths;
    dropped_low / dropped_high the bins of the first EB's binned grid left out at its low- /
    high-frequency end because another EB does not cover them; start the index of the first kept
    bin in that grid (in the first EB's channel order); nbin the first EB's channels per bin."""

    centres_hz: np.ndarray
    width_hz: float
    dropped_low: int
    dropped_high: int
    start: int = 0
    nbin: int = 1

    @property
    def nchan(self) -> int:
        """Number of output channels."""
        return int(self.centres_hz.size)

    def first_eb_channels(self) -> slice:
        """The first EB's input channels (its own indices) binned into the output channels."""
        return slice(self.start * self.nbin, (self.start + self.nchan) * self.nbin)


def _axis(centres_hz: np.ndarray, widths_hz: np.ndarray, which: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(centres_hz, dtype=np.float64)
    w = np.broadcast_to(np.asarray(widths_hz, dtype=np.float64), c.shape)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"EB {which}: channel centres must be a non-empty 1-D array, got shape {c.shape}")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(w)) and np.all(w != 0)):
        raise ValueError(f"EB {which}: channel centres and widths must be finite, widths nonzero")
    d = np.diff(c)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError(f"EB {which}: channel centres must be strictly monotonic")
    return c, w


def common_axis(axes: Sequence[tuple[np.ndarray, np.ndarray]], nbin: int = 1) -> OutputAxis:
    """The output LSRK axis for EBs given as (centres_hz (nchan,), widths_hz (nchan,)) each, LSRK.

    The first EB's channels binned by nbin (bin centre = mean of nbin consecutive channel centres,
    width = nbin x the first EB's width, signed as it; the last nchan % nbin channels, in channel
    order, form no bin), keeping only the bins whose edges, centre -+ |width| / 2, lie within every
    EB's span [min(centre - |width| / 2), max(centre + |width| / 2)] (to SNAP of a first-EB channel).
    The first EB's channel widths must be uniform (to 1e-6). ValueError when the EBs do not overlap
    or their overlap holds no output channel."""
    if len(axes) == 0:
        raise ValueError("common_axis needs at least one EB axis")
    nbin = int(nbin)
    if nbin < 1:
        raise ValueError(f"nbin must be >= 1, got {nbin}")
    checked = [_axis(c, w, i) for i, (c, w) in enumerate(axes)]
    c0, w0 = checked[0]
    if not (np.all(np.sign(w0) == np.sign(w0[0]))
            and np.all(np.abs(np.abs(w0) - abs(w0[0])) <= 1e-6 * abs(w0[0]))):
        raise ValueError("the first EB's channel widths must be uniform: it defines the output width")
    nb = c0.size // nbin
    if nb == 0:
        raise ValueError(f"nbin {nbin} exceeds the first EB's {c0.size} channels")
    width = float(np.mean(w0)) * nbin
    centres = c0[: nb * nbin].reshape(nb, nbin).mean(axis=1)
    spans = [(float(np.min(c - np.abs(w) / 2)), float(np.max(c + np.abs(w) / 2))) for c, w in checked]
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    if lo >= hi:
        text = ", ".join(f"EB {i} [{a:.9g}, {b:.9g}] Hz" for i, (a, b) in enumerate(spans))
        raise ValueError(f"the execution blocks' LSRK frequency ranges do not overlap: {text}")
    tol = SNAP * abs(w0[0])
    keep = np.flatnonzero((centres - abs(width) / 2 >= lo - tol) & (centres + abs(width) / 2 <= hi + tol))
    if keep.size == 0:
        raise ValueError(f"the EBs' common LSRK range [{lo:.9g}, {hi:.9g}] Hz holds no whole output channel "
                         f"of width {abs(width):.9g} Hz")
    start, stop = int(keep[0]), int(keep[-1]) + 1
    ascending = c0[-1] > c0[0] if c0.size > 1 else width > 0
    before, after = start, nb - stop
    return OutputAxis(centres_hz=centres[start:stop].copy(), width_hz=width,
                      dropped_low=before if ascending else after, dropped_high=after if ascending else before,
                      start=start, nbin=nbin)


def infer_nbin(in_centres_hz: np.ndarray, out_width_hz: float) -> int:
    """|out_width| / (mean input channel spacing) when that is within NBIN_RTOL of an integer >= 2,
    else 1."""
    c = np.asarray(in_centres_hz, dtype=np.float64)
    spacing = abs(float(c[-1] - c[0])) / (c.size - 1)
    ratio = abs(float(out_width_hz)) / spacing
    k = int(round(ratio))
    return k if k >= 2 and abs(ratio - k) <= NBIN_RTOL * k else 1


def _positions(x_asc: np.ndarray, f: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For frequencies f (nout,): the lower bracketing channel a (index into the ascending centres
    x_asc), t in [0, 1) and inside (f within the outermost centres, to SNAP). On a channel (t within
    SNAP of 0 or 1; always for 'nearest') a is that channel and t = 0."""
    n = x_asc.size
    a = np.clip(np.searchsorted(x_asc, f, side="right") - 1, 0, n - 2)
    t = (f - x_asc[a]) / (x_asc[a + 1] - x_asc[a])
    inside = (t >= -SNAP) & (t <= 1 + SNAP)
    if method == "nearest":
        t = np.where(t < 0.5, 0.0, 1.0)
    up = t > 1 - SNAP
    return a + up, np.where(up | (t < SNAP), 0.0, t), inside


def _take(a: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """a[:, cols], or a itself when its channel axis has length 1 (it broadcasts)."""
    return a if a.shape[1] == 1 else np.take(a, cols, axis=1)


def _pairs(z: np.ndarray) -> np.ndarray:
    """A complex array as a real view with a trailing (re, im) axis (float arithmetic is faster)."""
    return z.view(z.real.dtype).reshape(z.shape + (2,))


def _sub_sample(vis: np.ndarray, w: np.ndarray, fl: np.ndarray, col_a: np.ndarray, col_b: np.ndarray,
                t: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One interpolated sample per row and output channel: (value s, its weight u, both 0 where not
    usable; the weights w_a, w_b of its two channels). On a channel (t == 0) col_b is col_a, so only
    that channel counts; t, inside shaped (1, nout, 1...)."""
    s, vb = np.take(vis, col_a, axis=1), np.take(vis, col_b, axis=1)
    wa, wb = _take(w, col_a), _take(w, col_b)
    tr = t[..., None].astype(s.real.dtype)
    sp = _pairs(s)
    sp *= 1 - tr
    sp += tr * _pairs(vb)                                     # s = (1 - t) v_a + t v_b, in place
    del vb
    q, p = (1.0 - t) ** 2, t * t
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if w.shape[1] == 1:                                   # the same weight in every channel
            u = wa / (q + p)                                  # exactly w_a where t == 0
        else:
            u = wa * wb
            u /= wb * q + wa * p
            np.copyto(u, wa, where=t == 0)
    ok = inside & (wa > 0) & (wb > 0)
    if fl.shape[1] > 1 or fl.any():
        ok = ok & ~_take(fl, col_a) & ~_take(fl, col_b)
    ok = ok & np.isfinite(u) & np.isfinite(s)
    bad = ~ok
    np.copyto(s, 0, where=bad)
    if u.shape != s.shape or u.dtype != np.float64:
        u = np.broadcast_to(u, s.shape).astype(np.float64)  # a fresh array (u never aliases w)
    u[bad] = 0.0
    return s, u, wa, wb


def _as_channels(a, vis: np.ndarray, name: str, dtype) -> np.ndarray:
    """`a` as an array of vis.ndim dimensions broadcasting to vis (a channel axis of 1 or nchan)."""
    a = np.asarray(a, dtype=dtype)
    a = a.reshape((1,) * max(vis.ndim - a.ndim, 0) + a.shape)
    try:
        fits = a.ndim == vis.ndim and np.broadcast_shapes(a.shape, vis.shape) == vis.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to vis {vis.shape}")
    return a


def regrid(vis: np.ndarray, weight: np.ndarray, flags: np.ndarray, in_centres_hz: np.ndarray,
           out_centres_hz: np.ndarray, out_width_hz: float, method: str = "linear",
           nbin: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One EB's visibilities (vis (nrow, nchan_in, ...), weight and flags broadcasting to it) on
    its LSRK channel centres in_centres_hz (nchan_in,), strictly monotonic, interpolated onto the
    output channels out_centres_hz (nchan_out,) of width out_width_hz (either sign) by `method`
    ('linear' or 'nearest'; module doc for the values, weights and flags).

    nbin: sub-channels per output channel (module doc, "Binned output"); None infers it from the
    widths (`infer_nbin`); pass OutputAxis.nbin to be explicit. Returns (vis_out (nrow, nchan_out,
    ...) in vis's complex dtype, 0 where flagged; weight_out float64, 0 where flagged; flags_out
    bool). Module doc for the cost."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    vis = np.asarray(vis)
    if vis.ndim < 2:
        raise ValueError(f"vis must be (nrow, nchan, ...), got shape {vis.shape}")
    x = np.asarray(in_centres_hz, dtype=np.float64)
    f_out = np.asarray(out_centres_hz, dtype=np.float64).reshape(-1)
    n = vis.shape[1]
    if x.shape != (n,):
        raise ValueError(f"in_centres_hz must have shape ({n},), got {x.shape}")
    if n < 2:
        raise ValueError("regridding needs at least two input channels")
    d = np.diff(x)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError("in_centres_hz must be strictly monotonic")
    nbin = infer_nbin(x, out_width_hz) if nbin is None else int(nbin)
    if nbin < 1:
        raise ValueError(f"nbin must be >= 1, got {nbin}")
    descending = d[0] < 0
    x_asc = x[::-1] if descending else x
    w = _as_channels(weight, vis, "weight", None)
    if not np.issubdtype(w.dtype, np.floating):
        w = w.astype(np.float64)
    fl = _as_channels(flags, vis, "flags", bool)
    dtype = np.result_type(vis.dtype, np.complex64)
    vis = vis.astype(dtype, copy=False)
    shape = (1, f_out.size) + (1,) * (vis.ndim - 2)           # per output channel, broadcast over rows
    sub = abs(float(out_width_hz)) / nbin
    acc = _Accumulator((vis.shape[0], f_out.size) + vis.shape[2:])
    for j in range(nbin):
        a, t, inside = _positions(x_asc, f_out + (j - (nbin - 1) / 2) * sub, method)
        b = np.where(t == 0, a, a + 1)                      # on a channel: that channel alone
        col_a, col_b = (n - 1 - a, n - 1 - b) if descending else (a, b)
        s, u, wa, wb = _sub_sample(vis, w, fl, col_a, col_b, t.reshape(shape), inside.reshape(shape))
        if nbin == 1:
            return s, u, u == 0
        tt = t.reshape(shape)
        acc.add(a.reshape(shape), s, u, u * (1.0 - tt), u * tt, wa, wb)
    return acc.result(dtype)


class _Accumulator:
    """The inverse-variance mean of the sub-samples of each output channel, and the exact variance
    of that mean: value = sum_c gamma_c v_c / U with gamma_c = sum_j u_j coef_jc (the sub-samples'
    coefficients on input channel c) and U = sum_j u_j, so var = sum_c gamma_c^2 / w_c / U^2.
    Sub-samples come in ascending frequency, so their lower channel a_j never decreases: each
    input channel's gamma is gathered while it is one of the two "pending" channels (a, a + 1)
    and added to the variance when the sweep leaves it."""

    def __init__(self, full: tuple[int, ...]):
        self.prev: np.ndarray | None = None
        self.vsum = np.zeros(full, np.complex128)
        self.usum = np.zeros(full)
        self.var = np.zeros(full)
        self.g_lo = self.g_hi = self.w_lo = self.w_hi = np.zeros(full)

    def _leave(self, g: np.ndarray, w: np.ndarray, where) -> None:
        """var += g^2 / w where `where` (g is 0 wherever w <= 0)."""
        gg = g * g
        np.divide(gg, w, out=gg, where=w > 0)
        np.add(self.var, gg, out=self.var, where=where)

    def add(self, a: np.ndarray, s: np.ndarray, u: np.ndarray, ga: np.ndarray, gb: np.ndarray,
            wa: np.ndarray, wb: np.ndarray) -> None:
        _pairs(self.vsum)[...] += u[..., None] * _pairs(s)
        self.usum += u
        if self.prev is None:
            self.g_lo, self.g_hi, self.w_lo, self.w_hi, self.prev = ga, gb, wa, wb, a
            return
        step = a - self.prev                                  # 0, 1 or more channels on
        self._leave(self.g_lo, self.w_lo, step >= 1)
        self._leave(self.g_hi, self.w_hi, step >= 2)
        np.add(ga, self.g_lo, out=ga, where=step == 0)        # channel a: new lo; it was lo or hi
        np.add(ga, self.g_hi, out=ga, where=step == 1)
        np.add(gb, self.g_hi, out=gb, where=step == 0)
        self.g_lo, self.g_hi = ga, gb
        self.w_lo, self.w_hi = wa, wb                         # the pending channels are now a, a + 1
        self.prev = a

    def result(self, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._leave(self.g_lo, self.w_lo, True)
        self._leave(self.g_hi, self.w_hi, True)
        flags = ~(self.usum > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            vis = (self.vsum / np.where(flags, 1.0, self.usum)).astype(dtype, copy=False)
            weight = self.usum * self.usum
            weight /= self.var
        weight[flags | ~(self.var > 0)] = 0.0
        return vis, weight, flags
