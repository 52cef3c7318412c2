"""Synthetic ALMA dataset summaries: many plausible, varied datasets for benchmarks and tests.

    for summary in synthesize(1000, seed=0): ...       # dicts that validate as `Dataset`
    summary = synth_dataset(np.random.default_rng(7))  # one dataset from any generator
    write_corpus(10_000, "corpus/", fmt="json")         # synth_000000.json, ...

Dataset ``i`` of a corpus depends only on ``(seed, i)`` (its generator is
``dataset_rng(seed, i)``), so a corpus of 100 is a prefix of a corpus of 1000. Quantities
are plain numbers in the schema's canonical units (Hz, m, s, deg, arcsec, Jy/beam, Jy^-2);
times are MJD seconds (UTC). The data are invented: no summary describes a real observation.

Distributions (independent per dataset unless stated):

- **array**: 12m 75 %, 7m 25 %. 12m: 40-50 antennas (DA/DV/PM names, 12 m dishes);
  7m: 10-12 (CM01-CM12, 7 m). Each EB lacks each antenna with probability 2 %.
- **band** (12m / 7m): B3 20/12 %, B4 8/8 %, B5 3/2 %, B6 30/33 %, B7 27/32 %, B8 5/8 %,
  B9 5/4 %, B10 2/1 %. LO1 uniform such that all four 2-GHz basebands (IF 6 and 8 GHz,
  lower sideband BB1-2 with negative channel widths, upper BB3-4) lie inside the band.
- **set-up**: TDM continuum (12m 40 %, 7m 25 %): 4 spws x 128 x 15.625 MHz (2 GHz).
  Otherwise FDM, one spw per baseband (a second, narrower one in 20 % of basebands); an FDM
  spw is 1920 x 976.5625 kHz (30 %), 3840 x 488.28125 / 244.140625 / 122.0703125 /
  61.03515625 kHz (12/14/10/6 %), 960 x 1953.125 / 488.28125 kHz (10/5 %), 480 x 3906.25 /
  976.5625 kHz (7/4 %) or 7680 x 244.140625 kHz (2 %). Online Hanning on in 85 % of FDM
  set-ups (each spw flips with 5 %): effective_bw = 2.667 x width when on, = width when off.
  7m FDM set-ups keep two TDM basebands in 25 %; 50 % of FDM set-ups with Tsys carry four
  separate TDM Tsys spws (ATMOSPHERE only). The representative spw is a random science spw;
  representative_frequency is uniform in its inner 80 % (rounded to 1 MHz).
- **configuration** (12m): C43-1 ... C43-10 with weights 12, 13, 15, 16, 14, 10, 8, 6, 4, 2 %
  and nominal projected L80 90, 170, 270, 420, 750, 1300, 1900, 3900, 6300, 8000 m
  (x lognormal 10 %). 7m: L80 ~ 30 m. Antennas sit on a fixed catalogue of pads (a jittered
  15.3-m hexagonal core, 9.2 m for the 7m array, and three logarithmic spiral arms out to
  8.6 km); projected baseline min/max/L75/L80 per EB are computed from the chosen pads,
  projected towards the target at three hour angles of the EB: always consistent.
  ITRF positions: the local tangent plane about ALMA's position, as CASA's simutil.
- **EBs**: 1 (55 %), 2 (22 %), 3 (13 %), 4 (10 %); 12m EBs last 35-80 min, 7m 40-60 min;
  several EBs are back to back (gaps 2-20 min, 50 %) or days apart (1-30 days: more than an
  hour apart). Integration 6.048 s (12m; 2.016 s in 20 %, 50 % for L80 > 2 km), 10.08 s (7m).
- **targets**: 1 field (72 %), 2-5 (18 %), 6-15 (8 %), 16-40 (2 %; such surveys have 1-2 EBs
  and no mosaics); above 5 targets one spw a baseband and no separate Tsys spws (files stay
  small). Several targets lie within 1.5 deg (80 %) or 5-40 deg of each other. Mosaics: 7m
  60 % (3-60 pointings, log-uniform), 12m 18 % (L80 < 500 m), 8 % (< 1 km), 3 % (longer) with
  7-150 pointings; halved above 5 targets, at most max(3, min(19, 60 / targets)) pointings a
  field; hexagonal, lambda/(sqrt(3) D) apart at the representative frequency.
- **calibrators**: bandpass (a grid quasar), flux (the bandpass field 45 %, another quasar
  30 %, a solar-system body 25 %), phase (a quasar 2-10 deg from the target, 0.5-3 deg for
  L80 > 2 km), check (12m 70 %, 7m 20 %); ATMOSPHERE on the bandpass and target fields (and
  on the phase field in half of the datasets with 1-2 EBs). Missing on purpose: no phase 3 %,
  no flux 5 %, no bandpass 2 %, no Tsys (no ATMOSPHERE, no SYSCAL rows) 2 %; processing
  history 5 %, MODEL_DATA 3 %.
- **scans** (kept few): per EB one ATMOSPHERE scan per field with that intent (the targets
  share one), one scan per calibrator intent (bandpass, flux, phase, check) and 1-3 target
  scans (one with 3-4 EBs; each covers all target fields); the gaps between target scans
  stand for unlisted phase-calibrator visits. SYSCAL rows = antennas x Tsys spws x ATMOSPHERE scans.
- **weights** per field with a science intent (targets and calibrators, as the Measurement
  Set reader gives them), science spw and EB (summed over EBs, without ``eb``, when that would
  exceed 32 entries): time_on_source = the EB's target time / number of targets (calibrators:
  their scans, with the unlisted phase visits); rows = integrations x (baselines + antennas),
  autocorrelations included; flagged_fraction 1-13 %. sum_weight follows the radiometer
  equation in the WEIGHT convention of the simulator and the reader (per channel
  w = 2 effective_bw t_int eta_c^2 / SEFD^2, summed over channels, both parallel hands, all
  cross baselines and integrations, x (1 - flagged_fraction)), so that
  sqrt(effective_bw / width) / sqrt(sum_weight) is the natural-weighting mfs noise.
  SEFD = 2 k Tsys / (eta_a pi D^2 / 4), Tsys (K) / aperture efficiency eta_a per band:
  B3 75/0.71, B4 85/0.70, B5 120/0.69, B6 100/0.68, B7 150/0.63, B8 400/0.60, B9 900/0.50,
  B10 1200/0.45; Tsys x lognormal(20 %) per EB and x lognormal(5 %) per field and spw;
  correlator efficiency eta_c = 0.88. (12m, Band 6, 43 antennas, 2 GHz, 25 min: ~40 uJy.)
- **measurements** in 20 % of datasets, for some images (``FIELD.INTENT.SPWS.SPECMODE``): the
  first one or two targets (mfs and, 80 %, cube for 1-3 spws; cont 80 %), phase, bandpass and
  check mfs (70 % each); sensitivity from the weight sums as above x a robust factor 1.1-1.25
  (cubes x sqrt(nchan), mosaics x sqrt(pointings / 2)); dirty DR log-uniform (targets 3-2000,
  phase 100-5000, bandpass 500-20000, check 10-500); rms around the DR-corrected noise so that
  QA scores vary; beams 0.574 lambda / L80 x 1-1.3.
- **missing facts** in 2 %: one of L80, the baselines, representative_spw,
  representative_frequency, dish diameters, integration times, one spw's intents or nchan,
  the target's pointings (the rules see them as unknown).

Sizes: a YAML summary is ~14 KB on average and under 20 KB for 95 % of datasets; the
16-40-field tail reaches ~40 KB (its weights: one entry per field and spw). Speed: ~1 ms a
dataset; `write_corpus` of 10 000 JSON files ~20 s on two cores (the fsyncs overlap).

Modules: synth (this API, the corpus writer), synth_catalogue (constants, bands, set-ups,
names), synth_random (generators, draws), synth_geometry (pads, baselines, sky, times),
synth_sky (array, band, fields), synth_spws (set-ups), synth_ebs (antennas, EBs, scans),
synth_weights, synth_measurements, synth_dataset (one dataset in draw order), synth_yaml.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Literal, Optional, Union

import numpy as np

from almarules.engine.facts.synth_catalogue import (  # noqa: F401  (re-exported)
    ARCSEC, BANDS, C, CONFIGS_12M, ETA_C, FDM_MODES, HANNING, JY, K_B, TDM)
from almarules.engine.facts.synth_dataset import draw_dataset
from almarules.engine.facts.synth_random import dataset_rng
from almarules.engine.facts.synth_yaml import to_yaml
from almarules.engine.io import write_atomic

__all__ = ["synthesize", "synth_dataset", "write_corpus", "dataset_rng", "corpus_name", "to_yaml"]


def synth_dataset(rng: Union[np.random.Generator, int]) -> dict:
    """One synthetic summary (a dict that validates as `Dataset`) from a generator or an int seed."""
    return draw_dataset(rng)[0]


def synthesize(n: int, seed: int = 0) -> Iterator[dict]:
    """`n` synthetic summaries; dataset i depends only on (seed, i)."""
    for i in range(n):
        yield draw_dataset(dataset_rng(seed, i))[0]


def corpus_name(i: int, fmt: str = "yaml") -> str:
    """File name of dataset `i`: ``synth_000042.yaml``."""
    return f"synth_{i:06d}.{fmt}"


Fmt = Literal["yaml", "json"]
_WRITERS = 4  # threads writing files while the next datasets are drawn


def write_corpus(n: int, out_dir: Union[str, Path], seed: int = 0, fmt: Fmt = "yaml",
                 progress: Optional[Callable[[int, int], None]] = None) -> list[Path]:
    """Write `n` summaries to `out_dir` (created if needed), one file each, atomically.

    Files are ``synth_000000.<fmt>`` ...; YAML files start with a comment saying what was
    drawn, JSON files are compact. ``progress(i, n)`` is called, in order and from the calling
    thread, once the i-th file is written (i = 1..n). Returns the paths, in order. Files are
    written (and fsynced, `write_atomic`) by a few threads while the next datasets are drawn.
    """
    if fmt not in ("yaml", "json"):
        raise ValueError(f"fmt must be 'yaml' or 'json', not {fmt!r}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    pending: deque[Future] = deque()

    def finish_one() -> None:
        pending.popleft().result()  # re-raises a failed write
        if progress is not None:
            progress(len(paths) - len(pending), n)

    with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
        try:
            for i in range(n):
                summary, header = draw_dataset(dataset_rng(seed, i))
                path = out / corpus_name(i, fmt)
                if fmt == "json":
                    text = json.dumps(summary, separators=(",", ":")) + "\n"
                else:
                    text = to_yaml(summary, [f"Synthetic dataset {i} (almarules synth, seed {seed}); "
                                             "not a real observation."] + header)
                pending.append(pool.submit(write_atomic, path, text))
                paths.append(path)
                while pending and (pending[0].done() or len(pending) > 4 * _WRITERS):
                    finish_one()
            while pending:
                finish_one()
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return paths
