"""Antenna-based corruptions: complex gains drifting in time and per-antenna bandpasses.

The corrupted visibility of baseline (i, j) = (ANTENNA1, ANTENNA2), correlation p, is

    V_ij,p(t, nu) = g_i,p(t) conj(g_j,p(t)) * b_i,p(nu) conj(b_j,p(nu)) * V_model,ij(t, nu)

(the CASA measurement-equation order; thermal noise is added afterwards and is not
multiplied by the gains).

Gains (dimensionless, absolute -- not referred to any antenna), per antenna i, pol p:

    g_i,p(t) = a_i,p * (1 + amp_drift * d_a,i(t)) * exp(i (phi_i,p + phase_drift * d_p,i(t)))
    d(t)     = sum_k w_k sin(2 pi (t - t0) / P_k + theta_k) / sqrt(sum_k w_k^2 / 2)

a_i,p = exp(N(0, amp_rms)) (static amplitude, lognormal), phi_i,X ~ N(0, phase_rms),
phi_i,Y = phi_i,X + N(0, pol_phase_rms); d_a and d_p are smooth unit-rms curves (sums of
`n_sinusoids` sines with periods P_k uniform in [period_min, period_max] seconds, one set of
periods per antenna, separate weights and phases for amplitude and phase; common to both
polarisations). t in seconds (MJD seconds in the simulator, t0 the start of the EB).

Bandpass (dimensionless, time-independent), per antenna, pol and spectral window, with
x = (j - (nchan - 1)/2) / (nchan - 1) in [-0.5, 0.5] for channel j:

    b(nu) = (1 + slope x + ripple cos(2 pi cycles x + ripple_phase)) * exp(i (phase0 + 2 pi delay (nu - nu_c)))

(delay in seconds, nu and nu_c in Hz; nu_c the centre of the spectral window).

For flagging tests (`scale_antenna_gains`, `choose_outliers`, `apply_outliers`): a low-gain
antenna has g_i,p(t) multiplied by a real factor f_i at every t (both polarisations); an outlier
is a baseline-based glitch of one correlation of one integration: the corrupted V_ij,p(t, nu)
above multiplied by a real factor A for every channel nu (before the noise is added).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np


# ---------------------------------------------------------------- gains
@dataclass
class GainParams:
    """Parameters of the smooth gain curves; arrays are (nant, npol) or (nant, n_sinusoids)."""

    amp_static: np.ndarray
    phase_static: np.ndarray  # radians
    periods: np.ndarray  # seconds
    amp_weights: np.ndarray
    amp_phases: np.ndarray  # radians
    phase_weights: np.ndarray
    phase_phases: np.ndarray  # radians
    amp_drift: float  # rms of the relative amplitude drift
    phase_drift: float  # rms of the phase drift (radians)
    t0: float  # reference time (s)

    def to_json(self) -> dict:
        out = {}
        for k, v in asdict(self).items():
            out[k] = np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
        return out


def draw_gains(rng: np.random.Generator, nant: int, npol: int = 2, *, amp_rms: float = 0.05,
               amp_drift: float = 0.03, phase_rms: float = math.radians(20.0),
               pol_phase_rms: float = math.radians(5.0), phase_drift: float = math.radians(20.0),
               period_min: float = 600.0, period_max: float = 3600.0, n_sinusoids: int = 4,
               t0: float = 0.0) -> GainParams:
    """Draw the gain parameters of `nant` antennas from `rng` (see the module docstring)."""
    amp_static = np.exp(rng.normal(0.0, amp_rms, size=(nant, npol)))
    phase_x = rng.normal(0.0, phase_rms, size=(nant, 1))
    phase_static = phase_x + np.concatenate(
        [np.zeros((nant, 1)), rng.normal(0.0, pol_phase_rms, size=(nant, npol - 1))], axis=1)[:, :npol]
    periods = rng.uniform(period_min, period_max, size=(nant, n_sinusoids))
    amp_weights = rng.uniform(0.3, 1.0, size=(nant, n_sinusoids))
    amp_phases = rng.uniform(0.0, 2 * math.pi, size=(nant, n_sinusoids))
    phase_weights = rng.uniform(0.3, 1.0, size=(nant, n_sinusoids))
    phase_phases = rng.uniform(0.0, 2 * math.pi, size=(nant, n_sinusoids))
    return GainParams(amp_static, phase_static, periods, amp_weights, amp_phases, phase_weights,
                      phase_phases, float(amp_drift), float(phase_drift), float(t0))


def _drift(times: np.ndarray, periods: np.ndarray, weights: np.ndarray, phases: np.ndarray, t0: float) -> np.ndarray:
    """Unit-rms smooth curves, (ntime, nant)."""
    t = (np.asarray(times, dtype=np.float64) - t0)[:, None, None]
    s = np.sin(2 * math.pi * t / periods[None] + phases[None])  # (ntime, nant, nsin)
    norm = np.sqrt(np.sum(weights ** 2, axis=1) / 2.0)  # (nant,)
    return np.sum(weights[None] * s, axis=2) / norm[None]


def evaluate_gains(p: GainParams, times: np.ndarray) -> np.ndarray:
    """Complex gains at `times` (s): complex128 array (ntime, nant, npol)."""
    da = _drift(times, p.periods, p.amp_weights, p.amp_phases, p.t0)
    dp = _drift(times, p.periods, p.phase_weights, p.phase_phases, p.t0)
    amp = p.amp_static[None] * np.maximum(1.0 + p.amp_drift * da, 0.05)[:, :, None]
    phase = p.phase_static[None] + (p.phase_drift * dp)[:, :, None]
    return amp * np.exp(1j * phase)


def scale_antenna_gains(gains: np.ndarray, antennas: list[int], factors: list[float]) -> np.ndarray:
    """A copy of `gains` (ntime, nant, npol) with antenna `antennas[k]`'s gains times `factors[k]` (real)."""
    out = np.array(gains, copy=True)
    for a, f in zip(antennas, factors, strict=True):
        out[:, a, :] *= f
    return out


# ---------------------------------------------------------------- bandpass
@dataclass
class BandpassParams:
    """Bandpass coefficients of one spectral window, arrays (nant, npol)."""

    slope: np.ndarray
    ripple: np.ndarray
    cycles: np.ndarray
    ripple_phase: np.ndarray  # radians
    phase0: np.ndarray  # radians
    delay: np.ndarray  # seconds
    nu_centre: float  # Hz

    def to_json(self) -> dict:
        out = {}
        for k, v in asdict(self).items():
            out[k] = np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
        return out


def draw_bandpass(rng: np.random.Generator, nant: int, npol: int, nu_centre: float, *,
                  slope_rms: float = 0.04, ripple_min: float = 0.01, ripple_max: float = 0.03,
                  cycles_min: float = 2.0, cycles_max: float = 4.0,
                  phase_rms: float = math.radians(10.0), delay_rms: float = 20e-12) -> BandpassParams:
    """Draw bandpass coefficients of one spectral window (see the module docstring)."""
    shape = (nant, npol)
    return BandpassParams(
        slope=rng.normal(0.0, slope_rms, size=shape),
        ripple=rng.uniform(ripple_min, ripple_max, size=shape),
        cycles=rng.uniform(cycles_min, cycles_max, size=shape),
        ripple_phase=rng.uniform(0.0, 2 * math.pi, size=shape),
        phase0=rng.normal(0.0, phase_rms, size=shape),
        delay=rng.normal(0.0, delay_rms, size=shape),
        nu_centre=float(nu_centre),
    )


def evaluate_bandpass(p: BandpassParams, freq: np.ndarray) -> np.ndarray:
    """Bandpass at the channel frequencies `freq` (Hz): complex128 array (nant, nchan, npol)."""
    freq = np.asarray(freq, dtype=np.float64)
    nchan = freq.size
    x = (np.arange(nchan) - (nchan - 1) / 2.0) / max(nchan - 1, 1)
    xs = x[None, :, None]
    amp = 1.0 + p.slope[:, None, :] * xs + p.ripple[:, None, :] * np.cos(
        2 * math.pi * p.cycles[:, None, :] * xs + p.ripple_phase[:, None, :])
    phase = p.phase0[:, None, :] + 2 * math.pi * p.delay[:, None, :] * (freq - p.nu_centre)[None, :, None]
    return amp * np.exp(1j * phase)


# ---------------------------------------------------------------- application
def baseline_bandpass(bandpass: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """b_i conj(b_j) per baseline: (nbl, nchan, npol) from (nant, nchan, npol)."""
    return bandpass[a1] * np.conj(bandpass[a2])


def apply_corruptions(model: np.ndarray, out: np.ndarray, a1: np.ndarray, a2: np.ndarray,
                      gains: Optional[np.ndarray] = None, bb: Optional[np.ndarray] = None) -> np.ndarray:
    """out[t, k, c, p] = g_a1,p(t) conj(g_a2,p(t)) bb[k, c, p] * model[t, k, c].

    model: (nt, nbl, nchan) complex (the same for every correlation: an unpolarised sky);
    out: (nt, nbl, nchan, npol) (complex64 typically); gains: (nt, nant, npol) or None;
    bb: `baseline_bandpass` (nbl, nchan, npol) or None. a1, a2: (nbl,) antenna indices.
    """
    npol = out.shape[-1]
    fac = None
    if bb is not None:
        fac = bb.astype(out.dtype, copy=False)[None]  # (1, nbl, nchan, npol)
    if gains is not None:
        g = (gains[:, a1, :npol] * np.conj(gains[:, a2, :npol])).astype(out.dtype)[:, :, None, :]  # (nt, nbl, 1, npol)
        fac = g if fac is None else fac * g
    if fac is None:
        out[...] = model[..., None]
    else:
        # complex128 model x complex64 factor, rounded once into the complex64 output
        np.multiply(model[..., None], fac, out=out, casting="same_kind")
    return out


# ---------------------------------------------------------------- outliers
def choose_outliers(rng: np.random.Generator, candidates: np.ndarray, *, fraction: Optional[float] = None,
                    count: Optional[int] = None) -> np.ndarray:
    """Sorted flat indices of distinct True elements of `candidates`, drawn uniformly without replacement.

    Exactly one of `fraction` (``floor(fraction * n + 1/2)`` of the n candidates: rounded half
    up) and `count` (at most n) is given. ValueError if `count` exceeds the candidates.
    """
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction and count")
    pool = np.flatnonzero(candidates)
    n = math.floor(fraction * pool.size + 0.5) if fraction is not None else int(count)
    if n > pool.size:
        raise ValueError(f"{n} outliers asked for, but only {pool.size} candidates")
    if n == 0:
        return np.empty(0, np.int64)
    return np.sort(rng.choice(pool, size=n, replace=False))


def apply_outliers(vis: np.ndarray, baselines: np.ndarray, pols: np.ndarray, factor: float) -> np.ndarray:
    """vis[baselines[k], :, pols[k]] *= factor in place, for every k: whole spectra of one integration.

    vis: (nbl, nchan, npol); baselines, pols: (k,) integer indices of distinct pairs.
    """
    vis[baselines, :, pols] *= factor
    return vis
