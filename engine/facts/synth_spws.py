"""Spectral set-ups of the synthetic corpora: spws in four 2-GHz basebands, TDM or FDM, Tsys spws, lines."""

from __future__ import annotations

from dataclasses import dataclass

from almarules.engine.facts.synth_catalogue import BANDS, FDM_MODES, HANNING, NARROW_MODES, TDM
from almarules.engine.facts.synth_random import Draw

# one science spw to be made: (baseband, sub-window, nchan, channel width Hz, online Hanning)
_Science = tuple[int, int, int, float, bool]


@dataclass
class Setup:
    """A drawn spectral set-up: the spw dicts and what the header says of them."""

    spws: list[dict]
    tdm: bool  # TDM continuum set-up
    tsys_spws: bool  # four separate TDM Tsys spws (9-15)
    notes: list[str]  # one per science spw: ``"25: 1920 x 976.5625 kHz H"``


def hz(width: float) -> str:
    """A channel width (Hz) in MHz or kHz."""
    return f"{width / 1e6:.10g} MHz" if width >= 1e6 else f"{width / 1e3:.10g} kHz"


def edges(spw: dict) -> tuple[float, float]:
    """Lower and upper band edges (Hz) of a spw dict."""
    first, w, n = spw["start_frequency"], spw["channel_width"], spw["nchan"]
    last = first + (n - 1) * w
    return min(first, last) - abs(w) / 2, max(first, last) + abs(w) / 2


def make_spw(sid: int, band: int, bb: int, sw: int, centre: float, nchan: int, width: float, hanning: bool,
             intents: list[str]) -> dict:
    """One spw dict: LSB basebands (1, 2) have negative channel widths; sw 0 is a Tsys spw."""
    sign = -1.0 if bb <= 2 else 1.0
    centre = round(centre / (width / 2)) * (width / 2)  # on the channel grid
    tdm = nchan == TDM[0] and width == TDM[1]
    name = f"ALMA_RB_{band:02d}#BB_{bb}#SW-{max(sw, 1):02d}" + ("" if sw == 0 else "#FULL_RES")
    return {"id": sid, "name": name, "nchan": nchan,
            "start_frequency": centre - sign * (nchan - 1) / 2 * width,
            "channel_width": sign * width,
            "effective_bw": HANNING * width if hanning else width,
            "frame": "TOPO", "correlator_mode": "TDM" if tdm else "FDM", "online_hanning": hanning,
            "intents": intents}


def _science_modes(d: Draw, array: str, tdm: bool, hanning: bool, compact: bool) -> list[_Science]:
    """The science spws to make, baseband by baseband (a second, narrow one in 20 % of FDM basebands)."""
    science: list[_Science] = []
    tdm_bbs = {1, 2, 3, 4} if tdm else ({1, 2} if array == "7m" and d.chance(0.25) else set())
    for bb in (1, 2, 3, 4):
        if bb in tdm_bbs:
            science.append((bb, 1, TDM[0], TDM[1], False))
            continue
        nchan, width, _ = d.weighted(FDM_MODES, [m[2] for m in FDM_MODES])
        h = hanning != d.chance(0.05)
        science.append((bb, 1, nchan, width, h))
        if not compact and d.chance(0.2):
            nchan2, width2 = d.pick(NARROW_MODES)
            science.append((bb, 2, nchan2, width2, h))
    return science


def draw_setup(d: Draw, array: str, band: int, compact: bool, has_tsys: bool) -> Setup:
    """Spectral windows of a band; science spws get empty intents (filled in from the scans).

    Tsys spws have ATMOSPHERE. `compact`: one spw a baseband and no separate Tsys spws (many
    targets: small files).
    """
    f_lo, f_hi = BANDS[band][:2]
    lo1 = d.uniform(f_lo + 9.1, f_hi - 9.1) * 1e9
    tdm = d.chance(0.40 if array == "12m" else 0.25)
    hanning = d.chance(0.85)
    bb_centre = {1: lo1 - 8e9, 2: lo1 - 6e9, 3: lo1 + 6e9, 4: lo1 + 8e9}
    science = _science_modes(d, array, tdm, hanning, compact)
    tsys_spws = has_tsys and not tdm and not compact and d.chance(0.5)
    spws: list[dict] = []
    if array == "12m":
        first_id = 25 if tsys_spws else d.pick((17, 25))
    else:
        first_id = 25 if tsys_spws else d.pick((16, 17))
    notes = []
    if tsys_spws:
        for k, bb in enumerate((1, 2, 3, 4)):
            spws.append(make_spw(9 + 2 * k, band, bb, 0, bb_centre[bb], TDM[0], TDM[1], False, ["ATMOSPHERE"]))
    for k, (bb, sw, nchan, width, h) in enumerate(science):
        half_room = (2e9 - nchan * width) / 2
        centre = bb_centre[bb] + (d.uniform(-half_room, half_room) * 0.9 if half_room > 0 else 0.0)
        spws.append(make_spw(first_id + 2 * k, band, bb, sw, centre, nchan, width, h, []))
        notes.append(f"{first_id + 2 * k}: {nchan} x {hz(width)}{' H' if h else ''}")
    return Setup(spws, tdm, tsys_spws, notes)


def draw_lines(d: Draw, sci: list[dict]) -> tuple[dict, float]:
    """The representative spw (a random science spw) and frequency (Hz, uniform in its inner 80 %,
    rounded to 1 MHz); rest frequencies in the representative FDM spw and half of the other FDM spws."""
    rep = d.pick(sci)
    lo_edge, hi_edge = edges(rep)
    rep_freq = round(lo_edge + (hi_edge - lo_edge) * d.uniform(0.1, 0.9), -6)
    for s in sci:
        if s["correlator_mode"] == "FDM" and (s is rep or d.chance(0.5)):
            lo, hi = edges(s)
            s["rest_frequencies"] = [rep_freq if s is rep else round(lo + (hi - lo) * d.uniform(0.1, 0.9), -3)]
    return rep, rep_freq
