"""Benchmark: findcont's cost per field/spw against the full-resolution dirty cube it replaces.

    python benchmarks/bench_findcont.py [--work DIR] [--data DIR] [--repeat N] [--no-sim]

For the target cubes of raw NGC 5921 (with its intents file), raw alma_sim (with its flux
file) and a simulated 1-hour C-4 execution block (examples/sim/alma_12m_band6_1h.yaml, 43
antennas, 6 s integrations: the size of a real ALMA EB; made once with ``almarules simulate``,
its flux file written from the truth file), calibrated once by ``almarules run ... --until
findcont`` into ``--work`` (default /tmp/almarules-bench-findcont), times in this process,
fastest of ``--repeat``:

* findcont as the run makes it: the coarse cube of the rules' set-up (image.findcont_cell,
  findcont_imsize, findcont_taper, robust 1, its visibilities averaged in time per baseline within
  image.findcont_smearing; `engine.stages.continuum.cube`), the emission mask, mean and peak
  spectra and the search (`engine.stages.continuum.findcont.found_in`);
* the full-resolution dirty cube the search would otherwise need: every channel at the cube
  image's own cell and size (image.cell, image.imsize, its robust), no taper, gridded the same way.

Prints per field/spw the cube sizes (pixels x channels), the rows gridded (after averaging / as
read), both times, the ratio, and the peak memory of each (tracemalloc, numpy's allocations). Baseline: the full-resolution cube, as the
Cycle 4 pipeline's findcont made it before the "coarse" mode. Times wall seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_calibration  # noqa: E402
import compare_data  # noqa: E402

DATASETS = {"ngc5921": ["--intents", str(REPO / "examples" / "intents" / "ngc5921.yaml")],
            "alma_sim": ["--fluxfile", str(REPO / "examples" / "flux" / "alma_sim.flux.csv")]}


def measure(fn, repeat: int):
    """(fastest wall s, peak traced MB of one call, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return best, peak, result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/almarules-bench-findcont"))
    ap.add_argument("--data", type=Path, default=compare_calibration.DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-sim", action="store_true", help="leave out the simulated 1-hour execution block")
    args = ap.parse_args()
    from tabulate import tabulate

    from almarules.engine.evaluate import api
    from almarules.engine.evaluate.decisions import decisions
    from almarules.engine.facts.model import Dataset
    from almarules.engine.stages.continuum.cube import CoarseSetup, coarse_cube
    from almarules.engine.pipeline.contsteps import findcont_setup
    from almarules.engine.stages.continuum.findcont import found_in
    from almarules.engine.stages.imaging.job import setting

    rows = []
    cases = [(name, lambda name=name: (compare_calibration.raw_ms(name, args.data, args.work), extra))
             for name, extra in DATASETS.items()]
    if not args.no_sim:
        cases += [(name, lambda name=name, cfg=cfg: compare_data.simulated_ms(name, cfg, args.work))
                  for name, cfg in compare_data.SIMULATED.items()]
    for name, make in cases:
        raw, extra = make()
        wd = args.work / "runs" / name
        if not (wd / "calibrated").is_dir():
            compare_calibration.almarules_run(raw, wd, ["--until", "findcont", *extra, "--no-weblog", "-q"], name)
        ms = [wd / "calibrated" / Path(raw).name]
        program = api.load_program([str(REPO / "rules" / "alma" / "cycle4")])
        facts = Dataset.model_validate_json((wd / "facts.json").read_bytes())
        dec = decisions(api.run(program, facts))
        for key in dec.entities.get("image", []):
            if not key.endswith(".cube") or ".TARGET." not in key:
                continue
            field, spw = key.split(".")[0], int(key.split(".")[2])
            coarse, params = findcont_setup(dec, key)
            p = f"image[{key}]"
            full = CoarseSetup(float(setting(dec, f"{p}.cell", "arcsec").value), int(setting(dec, f"{p}.imsize").value),
                               float(setting(dec, f"{p}.robust").value), 0.0, coarse.pb_model, coarse.dish_m)
            made = []

            def run_findcont():
                made[:] = [coarse_cube(ms, field, spw, coarse, nthreads=1)]
                return found_in(made[0], field, spw, params)

            t_c, m_c, found = measure(run_findcont, args.repeat)
            t_f, m_f, cube = measure(lambda: coarse_cube(ms, field, spw, full, nthreads=1), args.repeat)
            rows.append([name, f"{field} spw {spw}", f"{coarse.imsize}^2 x {found.result.nchan}",
                         f"{made[0].rows_gridded} / {made[0].rows_read}", f"{t_c:.2f}", f"{m_c:.0f}",
                         f"{full.imsize}^2 x {cube.cube.shape[2]}", f"{t_f:.2f}", f"{m_f:.0f}", f"{t_f / t_c:.1f}x",
                         ", ".join(f"{a}~{b}" for a, b in found.result.ranges)])
    print(f"findcont per field/spw, fastest of {args.repeat} (one gridding thread; load {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores)")
    print(tabulate(rows, headers=["dataset", "field/spw", "coarse cube", "rows gridded / read", "findcont s",
                                  "peak MB", "full cube",
                                  "full dirty cube s", "peak MB", "full/findcont", "continuum channels"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
