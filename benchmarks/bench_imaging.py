"""Benchmark: the imaging kernels on the simulated ALMA dataset's target (printed, not asserted).

    python benchmarks/bench_imaging.py [--data DIR] [--image KEY]

The image parameters come from the shipped cycle4 rules evaluated on the MS (cell, size,
robust, the theoretical sensitivity and, with tlimit = 4 and DR correction 1, the threshold);
the data from `engine.ms.visibilities.select`. Prints, with the data size: selection time, Briggs
weighting, gridding throughput (dirty image: visibilities/s), PSF and beam fit, Cotton-Schwab
clean (major cycles, iterations, iterations/s) and the whole image time; the peak of the
restored image and the rms outside the mask for orientation. Baseline: issue 5 asks that minor
cycles do no full-image work per iteration and that the full image be timed with its data size.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--image", default="SIMGAL_1.TARGET.0.mfs", help="image key in the plan (field.intent.spw.mode)")
    args = ap.parse_args()
    archive = Path(args.data) / "alma_sim.ms.tar.gz"
    if not archive.exists():
        print(f"no {archive}")
        return 1
    from almarules.dsl.units import from_canonical
    from almarules.engine.evaluate.api import default_rules, load_dataset, load_program, run
    from almarules.kernels import beam as beamfit
    from almarules.kernels import deconvolve, gridding, masks, primary_beam, restore, stats, weighting
    from almarules.engine.ms import visibilities as msdata

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        ms = Path(tmp) / "alma_sim.ms"
        facts = load_dataset([ms])
        ev = run(load_program(default_rules()), facts)
        ent, _ = ev.resolve(f"image[{args.image}].cell")
        cell = from_canonical(ev.attr(ent, "cell"), "arcsec")
        npix = int(ev.attr(ent, "imsize"))
        robust = float(ev.attr(ent, "robust"))
        field = ent.created["field"]
        spw_ids = [s.model.id for s in ent.created["spws"]]
        field_ids = [f.id for f in facts.fields if f.name == field.model.name]
        print(f"image {args.image}: {npix} x {npix} pixels of {cell:.4f} arcsec, robust {robust} (cycle4 rules)")

        t0 = time.perf_counter()
        chunks = [c for s in spw_ids for c in msdata.select(ms, field_ids, s)]
        uvw = np.concatenate([c.uvw for c in chunks])
        vis = np.concatenate([c.vis for c in chunks])
        wt = np.concatenate([c.weight for c in chunks])
        flag = np.concatenate([c.flag for c in chunks])
        freq = chunks[0].freq
        t_sel = time.perf_counter() - t0
        nvis = int((~flag).sum())
        print(f"data: {vis.shape[0]} rows x {vis.shape[1]} channels = {nvis:,} unflagged Stokes I visibilities; "
              f"selection {t_sel * 1e3:.0f} ms; {'; '.join(sorted(set(n for c in chunks for n in c.notes)))}")

        t0 = time.perf_counter()
        iw = weighting.briggs(uvw, freq, wt, npix, npix, cell, robust, flags=flag)
        sigma = weighting.sensitivity(wt, iw, flags=flag)
        t_w = time.perf_counter() - t0
        planned = from_canonical(ev.attr(ent, "sensitivity"), "mJy/beam")
        print(f"Briggs weights: {t_w * 1e3:.0f} ms; sensitivity from the weights {sigma * 1e3:.4f} mJy/beam "
              f"(the rules' dry-run estimate, natural weighting: {planned:.4f} mJy/beam)")

        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            dirty = gridding.dirty_image(uvw, freq, vis, iw, npix, npix, cell, flags=flag)
            times.append(time.perf_counter() - t0)
        t_dirty = min(times)
        print(f"dirty image: {t_dirty * 1e3:.0f} ms (best of 3) = {nvis / t_dirty / 1e6:.1f} M visibilities/s")

        t0 = time.perf_counter()
        psf = gridding.psf(uvw, freq, iw, npix, npix, cell, flags=flag)
        fitted = beamfit.fit_beam(psf, cell)
        side = beamfit.sidelobe_level(psf, fitted, cell)
        t_psf = time.perf_counter() - t0
        print(f"PSF + beam fit: {t_psf * 1e3:.0f} ms; beam {fitted.bmaj_arcsec:.3f} x {fitted.bmin_arcsec:.3f} arcsec, "
              f"pa {fitted.bpa_deg:.1f} deg; sidelobe {side:.3f}")

        dish = min(a.dish_diameter for a in facts.antennas if a.dish_diameter)
        pb = primary_beam.pb_image(npix, npix, cell, float(np.mean(freq)), dish)
        mask = masks.pb_level_mask(pb, 0.3)
        print(f"dirty dynamic range (peak where PB > 0.2 / sigma): {stats.dirty_dynamic_range(dirty, pb, sigma):.1f}")
        threshold = 4 * sigma  # tlimit 4 x sigma x DR correction 1 (cycle4)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = deconvolve.cotton_schwab(uvw, freq, vis, wt, iw, npix, npix, cell, psf=psf, mask=mask,
                                              threshold=threshold, niter=100000, flags=flag)
        t_clean = time.perf_counter() - t0
        its = result.iterations
        for w in result.warnings:
            print(f"clean warning: {w}  (the MS holds uncorrected DATA: its gains are not solved yet)")
        print(f"clean: {len(result.history)} major cycles, {its} iterations, {t_clean:.2f} s "
              f"({its / t_clean:.0f} iterations/s including the major cycles); stopped by {result.stopped_by}")
        image = restore.restore(result.model, result.residual, fitted, cell)
        st = stats.image_stats(result.residual, mask=mask, pb=pb)
        total = t_sel + t_w + t_dirty + t_psf + t_clean
        print(f"restored peak {image.max() * 1e3:.2f} mJy/beam; residual rms outside the mask "
              f"{st.rms_outside_mask * 1e3:.4f} mJy/beam ({st.rms_outside_mask / sigma:.2f} sigma)")
        print(f"whole image: {total:.2f} s for {nvis:,} visibilities and {npix}^2 pixels")
        stage_figures(ms, Path(tmp) / "products", facts)
    return 0


def stage_figures(ms: Path, out: Path, facts) -> None:
    """The imaging stage (almarules image --all) on the same MS: every image of its plan."""
    import resource

    from almarules.engine.evaluate.api import default_rules, load_program
    from almarules.engine.stages.imaging.stage import Stage, make_images

    t0 = time.perf_counter()
    stage = Stage(load_program(default_rules()), facts, [ms], out)
    records = make_images(stage, stage.keys())
    total = time.perf_counter() - t0
    print(f"\nimaging stage, every image of the plan ({len(records)}), cycle4 rules, uncalibrated DATA:")
    print(f"  {'image':<28} {'vis':>10} {'pixels':>7} {'chan':>5} {'read':>6} {'dirty':>6} {'clean':>6} "
          f"{'write':>6} {'total':>6}  s")
    for r in records:
        t = r.timings
        print(f"  {r.key:<28} {r.data.visibilities if r.data else 0:>10,} {int(r.parameters['imsize'].value):>7} "
              f"{r.data.channels if r.data else 0:>5} " + " ".join(f"{t.get(k, 0):>6.2f}" for k in
                                                              ("read", "dirty", "clean", "write", "total")))
    cubes = [r for r in records if r.specmode == "cube"]
    nchan = sum(len(r.channels) for r in cubes)
    print(f"  all {len(records)} images: {total:.1f} s; cubes {sum(r.timings['total'] for r in cubes):.1f} s for "
          f"{nchan} channels ({sum(r.timings['total'] for r in cubes) / max(nchan, 1) * 1e3:.0f} ms per channel, "
          f"two passes); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
