"""Visibilities gathered for one image: `engine.ms.visibilities` chunks joined into the arrays the
gridder takes.

The gridder (`kernels.gridding`, ducc0) takes one frequency axis shared by all rows. Chunks of
one spectral window share it and are joined row-wise. Chunks with different frequency axes
(several spws, or several EBs whose channels differ) are *flattened*: every (row, channel)
sample becomes a row of its own with one channel at the reference frequency ``freq_ref`` and
``uvw * nu / freq_ref`` (metres), so that ``uvw * nu / c`` -- all the gridder and the weighting
see, in wavelengths -- is unchanged, exactly. Flattening costs 24 bytes of uvw per sample
instead of per row.

Units: uvw in metres, frequencies in Hz, visibilities in Jy, weights in Jy^-2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from almarules.engine.ms.visibilities import Chunk

__all__ = ["VisSet", "join"]


@dataclass
class VisSet:
    """Samples for one image: uvw (n, 3) m, freq (nchan,) Hz, vis (n, nchan) Jy, weight
    (n, nchan) Jy^-2 (0 where flagged; the basis of the imaging weights, CASA's), flag (n, nchan)
    bool, noise_weight (n, nchan) Jy^-2 the samples' inverse variances (default: weight; see
    `engine.ms.visibilities.stokes_i` for when they differ); `flattened` when spws were joined
    by flattening (module docstring); notes from the selection (e.g. "read DATA"); columns: the
    data columns read; lsrk_factor (n,) nu_LSRK / nu of each row's spw frame (default 1;
    `weighting_uvw`)."""

    uvw: np.ndarray
    freq: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    flag: np.ndarray
    flattened: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    columns: tuple[str, ...] = ("DATA",)
    noise_weight: Optional[np.ndarray] = None
    lsrk_factor: Optional[np.ndarray] = None
    sample_freq: Optional[np.ndarray] = None  # flattened sets: (n,) each row's channel frequency (own frame)

    def __post_init__(self) -> None:
        if self.noise_weight is None:
            self.noise_weight = self.weight
        if self.lsrk_factor is None:
            self.lsrk_factor = np.ones(self.uvw.shape[0])

    @property
    def weighting_uvw(self) -> np.ndarray:
        """uvw (n, 3) m scaled by lsrk_factor: where CASA bins each sample's weight density
        (`kernels.weighting`, "Differences from CASA"); the gridder takes `uvw`."""
        if np.all(self.lsrk_factor == 1.0):
            return self.uvw
        return self.uvw * self.lsrk_factor[:, None]

    @property
    def nchan(self) -> int:
        return int(self.freq.size)

    @property
    def rows(self) -> int:
        return int(self.uvw.shape[0])

    @property
    def nflag(self) -> int:
        """Flagged samples."""
        return int(np.count_nonzero(self.flag))

    def channel(self, j: int) -> "VisSet":
        """Channel j alone (views of the arrays; a flattened set has one channel)."""
        return VisSet(self.uvw, self.freq[j:j + 1], self.vis[:, j:j + 1], self.weight[:, j:j + 1],
                      self.flag[:, j:j + 1], self.flattened, self.notes, self.columns,
                      self.noise_weight[:, j:j + 1], self.lsrk_factor, self.sample_freq)

    def lsrk_frequencies(self) -> np.ndarray:
        """Each sample's LSRK frequency (Hz), broadcastable to (n, nchan): the channel frequency in
        its spw's own frame times lsrk_factor (of a flattened set, its row's `sample_freq`)."""
        own = self.freq[None, :] if self.sample_freq is None else self.sample_freq[:, None]
        return own * self.lsrk_factor[:, None]

    @property
    def nvis(self) -> int:
        """Unflagged samples."""
        return int(np.count_nonzero(~self.flag))

    @property
    def nbytes(self) -> int:
        arrays = (self.uvw, self.freq, self.vis, self.weight, self.flag)
        extra = self.noise_weight.nbytes if self.noise_weight is not self.weight else 0
        extra += self.sample_freq.nbytes if self.sample_freq is not None else 0
        return sum(a.nbytes for a in arrays) + extra


def _notes(chunks: Iterable[Chunk]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for c in chunks:
        for n in c.notes:
            seen.setdefault(n, None)
    return tuple(seen)


def join(chunks: Sequence[Chunk], freq_ref: Optional[float] = None) -> VisSet:
    """Join chunks (any spws) into one `VisSet`; ValueError when there are none.

    freq_ref: the reference frequency of flattened sets (Hz; default the weighted mean of the
    channel frequencies). Chunks sharing one frequency axis are joined without flattening.
    """
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no visibilities were selected")
    axes = {c.freq.tobytes() for c in chunks}
    notes = _notes(chunks)
    columns = tuple(sorted({c.column for c in chunks}))
    if len(axes) == 1:
        return VisSet(np.concatenate([c.uvw for c in chunks]), chunks[0].freq.copy(),
                      np.concatenate([c.vis for c in chunks]), np.concatenate([c.weight for c in chunks]),
                      np.concatenate([c.flag for c in chunks]), False, notes, columns,
                      np.concatenate([c.noise_weight for c in chunks]),
                      np.concatenate([np.full(c.nrow, c.lsrk_factor) for c in chunks]))
    if freq_ref is None:
        wsum = sum(float(c.weight.sum()) for c in chunks)
        if wsum > 0:
            freq_ref = sum(float((c.weight.sum(axis=0) * c.freq).sum()) for c in chunks) / wsum
        else:
            freq_ref = float(np.mean(np.concatenate([c.freq for c in chunks])))
    uvw = [(c.uvw[:, None, :] * (c.freq / freq_ref)[None, :, None]).reshape(-1, 3) for c in chunks]
    return VisSet(np.concatenate(uvw), np.array([freq_ref]),
                  np.concatenate([c.vis.reshape(-1, 1) for c in chunks]),
                  np.concatenate([c.weight.reshape(-1, 1) for c in chunks]),
                  np.concatenate([c.flag.reshape(-1, 1) for c in chunks]), True, notes, columns,
                  np.concatenate([c.noise_weight.reshape(-1, 1) for c in chunks]),
                  np.concatenate([np.full(c.vis.size, c.lsrk_factor) for c in chunks]),
                  np.concatenate([np.broadcast_to(c.freq, c.vis.shape).reshape(-1) for c in chunks]))
