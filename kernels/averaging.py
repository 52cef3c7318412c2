"""Baseline-dependent time averaging of visibilities, bounded by the smearing it causes.

A source at angular distance R from the phase centre sits on a fringe whose phase drifts as
Earth rotation moves the baseline through the uv plane: |d(u, v)/dt| <= omega_E |B| nu / c,
with |B| = |uvw| (the 3-D uvw length is the baseline length, whatever the hour angle). Averaging
a sample over Delta t multiplies that source's amplitude by sinc(phi / 2) = sin(phi/2) / (phi/2)
with phi = 2 pi R omega_E |B| nu / c Delta t at most. `interval` gives, per row, the longest
Delta t for a given amplitude loss at radius R; `average` merges rows of one baseline and field
whose times fall in the same window of that length.

Units: seconds, metres, Hz, radians. Weights: visibility weights (Jy^-2; 0 where flagged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from almarules.kernels.constants import C

#: Earth's rotation rate, rad per (UT1 ~ UTC) second: 2 pi / sidereal day (86164.0905 s)
OMEGA_EARTH = 2 * np.pi / 86164.0905


def phase_span(loss: float) -> float:
    """The phase drift phi (rad) across an averaging interval for which the averaged amplitude of
    a unit fringe, sinc(phi/2), is 1 - loss (0 < loss < 1)."""
    if not 0.0 < loss < 1.0:
        raise ValueError(f"the amplitude loss must be in (0, 1), got {loss}")
    x = np.sqrt(6.0 * loss)  # sin(x)/x ~ 1 - x^2/6, then Newton on f(x) = sin x / x - (1 - loss)
    for _ in range(30):
        f = np.sin(x) / x - (1.0 - loss)
        df = (x * np.cos(x) - np.sin(x)) / (x * x)
        step = f / df
        x = min(max(x - step, 1e-12), np.pi)
        if abs(step) < 1e-14:
            break
    return float(2.0 * x)


def interval(uvw: np.ndarray, freq_max: float, radius: float, loss: float) -> np.ndarray:
    """Longest averaging time (s) per row (uvw (n, 3) m) that keeps the amplitude loss of a source
    `radius` rad from the phase centre at or below `loss` at frequency `freq_max` (Hz): inf for
    zero-length baselines."""
    rate = 2 * np.pi * radius * OMEGA_EARTH * np.linalg.norm(uvw, axis=1) * freq_max / C  # rad/s
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, phase_span(loss) / np.where(rate > 0, rate, 1.0), np.inf)


@dataclass(frozen=True)
class Averaged:
    """Rows after averaging: uvw (m, 3) m, vis (m, nchan), weight (m, nchan) Jy^-2 (the sums),
    noise_weight (m, nchan) Jy^-2 (inverse variance of the weighted mean), flag (m, nchan),
    `rows` (m,) how many input rows each output row holds and `first` (m,) the index of its
    earliest-listed input row."""

    uvw: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    noise_weight: np.ndarray
    flag: np.ndarray
    rows: np.ndarray
    first: np.ndarray


def bins(time: np.ndarray, antenna1: np.ndarray, antenna2: np.ndarray, field: np.ndarray,
         dt: np.ndarray) -> np.ndarray:
    """Bin label (n,) int64 of every row: rows share a label when they have the same baseline and
    field and their times fall in the same window [t0 + k dt, t0 + (k+1) dt) of their baseline's
    interval dt (s; the smallest over the baseline's rows), t0 the earliest time of the rows."""
    n = time.size
    if n == 0:
        return np.zeros(0, np.int64)
    base = (np.asarray(antenna1, np.int64) << 20) | np.asarray(antenna2, np.int64)
    key = (base << 24) | np.asarray(field, np.int64)
    ukey, inv = np.unique(key, return_inverse=True)
    dt_key = np.full(ukey.size, np.inf)
    np.minimum.at(dt_key, inv, dt)
    dt_row = dt_key[inv]
    t = time - time.min()
    window = np.where(np.isfinite(dt_row), np.floor(t / np.where(np.isfinite(dt_row), dt_row, 1.0)), 0.0)
    win = window.astype(np.int64)
    _, label = np.unique(inv.astype(np.int64) * (int(win.max()) + 1) + win, return_inverse=True)
    return label.reshape(-1).astype(np.int64)


def average(label: np.ndarray, uvw: np.ndarray, vis: np.ndarray, weight: np.ndarray,
            noise_weight: np.ndarray, flag: np.ndarray) -> Averaged:
    """Weighted means of the rows sharing a label (`bins`), channel by channel: vis = sum w v / sum w
    over unflagged samples, weight = sum w, noise_weight = (sum w)^2 / sum (w^2 / noise_weight),
    flag where no unflagged sample with weight > 0; uvw weighted by the rows' total weights (a plain
    mean when every sample of the bin is flagged). Output rows in label order."""
    order = np.argsort(label, kind="stable")
    lab = label[order]
    starts = np.flatnonzero(np.concatenate([[True], lab[1:] != lab[:-1]])) if lab.size else np.zeros(0, int)
    counts = np.diff(np.append(starts, lab.size))
    w = np.where(flag, 0.0, weight)[order]
    v = np.where(flag, 0.0, vis)[order]
    nw = noise_weight[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(w > 0, w * w / np.where(nw > 0, nw, np.inf), 0.0)
    if lab.size == 0:
        z = np.zeros((0,) + vis.shape[1:])
        return Averaged(np.zeros((0, 3)), z.astype(vis.dtype), z, z, z.astype(bool), np.zeros(0, np.int64),
                        np.zeros(0, np.int64))
    wsum = np.add.reduceat(w, starts, axis=0)
    wv = np.add.reduceat(w * v, starts, axis=0)
    varsum = np.add.reduceat(var, starts, axis=0)
    out_flag = ~(wsum > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vis_out = np.where(out_flag, 0.0, wv / np.where(out_flag, 1.0, wsum)).astype(vis.dtype)
        noise_out = np.where(out_flag | ~(varsum > 0), 0.0, wsum * wsum / np.where(varsum > 0, varsum, 1.0))
    roww = w.sum(axis=1)
    rw_sum = np.add.reduceat(roww, starts)
    uvw_w = np.add.reduceat(uvw[order] * roww[:, None], starts, axis=0)
    uvw_mean = np.add.reduceat(uvw[order], starts, axis=0) / counts[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw_out = np.where(rw_sum[:, None] > 0, uvw_w / np.where(rw_sum > 0, rw_sum, 1.0)[:, None], uvw_mean)
    return Averaged(uvw_out, vis_out, np.where(out_flag, 0.0, wsum), noise_out, out_flag, counts.astype(np.int64),
                    order[starts].astype(np.int64))
