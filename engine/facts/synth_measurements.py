"""Image measurements of a synthetic dataset: sensitivities from the weight sums, dynamic ranges, rms, beams."""

from __future__ import annotations

import math

from almarules.kernels.constants import ARCSEC, C
from almarules.engine.facts.synth_random import Draw, sig
from almarules.engine.facts.synth_sky import Fields
from almarules.engine.facts.synth_spws import edges

# calibrator images: (role in Fields, intent, dirty dynamic range low, high)
_CALIBRATOR_IMAGES = (("phase_id", "PHASE", 100, 5000), ("bp_id", "BANDPASS", 500, 20000),
                      ("check_id", "CHECK", 10, 500))


class _Images:
    """Collects measurement dicts; beams 0.574 lambda / L80 x 1-1.3 (arcsec)."""

    def __init__(self, d: Draw, l80: float):
        self.d, self.l80 = d, l80
        self.out: list[dict] = []

    def beam(self, freqs: list[float]) -> dict[str, float]:
        """Beam major, minor (arcsec) and position angle (deg) at the mean of `freqs` (Hz)."""
        d = self.d
        f = sum(freqs) / len(freqs)
        major = 0.574 * C / f / self.l80 / ARCSEC * d.uniform(1.0, 1.3)
        return {"beam_major": sig(major, 3), "beam_minor": sig(major * d.uniform(0.55, 0.95), 3),
                "beam_pa": round(d.uniform(-90, 90), 1)}

    def add(self, field: dict, intent: str, spws: list[int], specmode: str, sigma: float, dr: float,
            freqs: list[float]) -> None:
        """One image of noise `sigma` (Jy/beam) and dirty dynamic range `dr`; rms around the DR-corrected noise."""
        d = self.d
        correction = max(1.0, dr / 150) ** 0.5 * (1.5 if dr > 20 else 1.0)
        m = {"field": field["name"], "intent": intent, "spws": spws, "specmode": specmode,
             "sensitivity": sig(sigma, 3), "dirty_peak": sig(dr * sigma, 3), "dirty_dr": sig(dr, 3),
             "rms": sig(sigma * correction * math.exp(d.normal(0.3, 0.4)), 3)}
        m.update(self.beam(freqs))
        if d.chance(0.15):
            m["residual_rms"] = sig(m["rms"] * d.uniform(0.7, 1.0), 3)
        if specmode == "cube" and d.chance(0.1):
            m["bad_psf_channels"] = d.int(1, 20)
        self.out.append(m)


def _target_images(d: Draw, images: _Images, f: Fields, sci: list[dict], sum_w: dict[tuple[int, int], float],
                   centres: dict[int, float], corr: dict[int, float], robust: float) -> None:
    """The first one or two targets: mfs and (80 %) cube for 1-3 spws; cont over all spws (80 %)."""
    fields = f.fields
    for fid in f.target_ids[: d.int(1, 2)]:
        field = fields[fid]
        mosaic = max(1.0, math.sqrt(len(field["pointings"]) / 2))
        for s in d.sample(sci, d.int(1, min(3, len(sci)))):
            sigma = robust * mosaic * corr[s["id"]] / math.sqrt(sum_w[(fid, s["id"])])
            images.add(field, "TARGET", [s["id"]], "mfs", sigma, d.logu(3, 2000), [centres[s["id"]]])
            if d.chance(0.8):
                images.add(field, "TARGET", [s["id"]], "cube", sigma * math.sqrt(s["nchan"]), d.logu(3, 2000),
                           [centres[s["id"]]])
        if d.chance(0.8):  # the continuum ranges hold 40-100 % of the channels
            total = sum(sum_w[(fid, s["id"])] / corr[s["id"]] ** 2 for s in sci)
            sigma = robust * mosaic / math.sqrt(total * d.uniform(0.4, 1.0))
            images.add(field, "TARGET", [s["id"] for s in sci], "cont", sigma, d.logu(3, 2000),
                       list(centres.values()))


def draw_measurements(d: Draw, f: Fields, sci: list[dict], sum_w: dict[tuple[int, int], float],
                      l80: float) -> list[dict]:
    """Image measurements for some images: targets (mfs, cube, cont) and calibrators (mfs, 70 % each).

    Sensitivity (Jy/beam): sqrt(effective_bw / width) / sqrt(sum of weights) (the channels'
    correlation undone) x a robust-weighting factor 1.1-1.25; cubes x sqrt(nchan); mosaics x
    sqrt(pointings / 2). `l80` in m.
    """
    images = _Images(d, l80)
    centres = {s["id"]: sum(edges(s)) / 2 for s in sci}
    corr = {s["id"]: math.sqrt(s["effective_bw"] / abs(s["channel_width"])) for s in sci}
    robust = d.uniform(1.1, 1.25)
    _target_images(d, images, f, sci, sum_w, centres, corr, robust)
    for role, intent, lo, hi in _CALIBRATOR_IMAGES:
        fid = getattr(f, role)
        if fid is None or not d.chance(0.7):
            continue
        s = d.pick(sci)
        if sum_w.get((fid, s["id"])):
            sigma = robust * corr[s["id"]] / math.sqrt(sum_w[(fid, s["id"])])
            images.add(f.fields[fid], intent, [s["id"]], "mfs", sigma, d.logu(lo, hi), [centres[s["id"]]])
    return images.out
