"""Benchmark of ``almarules simulate`` (printed, not asserted).

    python benchmarks/bench_simulate.py [--keep DIR] [--config FILE]

Simulates ``examples/sim/alma_12m_band6_1h.yaml``: a 1-hour execution block with 43 12-m
antennas (903 baselines), 6.048 s integrations, 2 spws x 128 channels x XX/YY, noise and
corruptions on (~870k rows, ~220M visibilities, 1.8 GB of DATA). Prints the wall time,
the throughput (visibilities/s), the peak memory (RSS high-water mark of the process, and
the numpy/Python allocations traced by tracemalloc in a second, smaller run), and where
the time goes: UVW/geometry (casacore measures), the sky model (direct Fourier sum),
corruptions and noise, table writing. Table writing runs on a background thread that
overlaps the computation, so the stages add up to more than the wall time; "waiting for
the table writer" is what it costs at the end.
Target (issue 3): seconds, not minutes. Machines here are noisy; compare within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "examples" / "sim" / "alma_12m_band6_1h.yaml"


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--keep", metavar="DIR", help="write the MS into DIR and keep it")
    args = ap.parse_args()

    from almarules.engine.simulate import load_sim_config, simulate

    cfg = load_sim_config(args.config)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_simulate_"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "bench.ms"
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; config {args.config}")
    try:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        result = simulate(cfg, out, overwrite=True, timings=timings)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        truth = result["execution_blocks"][0]
        obs = truth["observation"]
        nspw = len(truth["spectral_windows"])
        nvis = sum(obs["rows"] // nspw * s["nchan"] * 2 for s in truth["spectral_windows"])
        size = _dir_size(Path(result["ms"][0]))
        print(f"\n{len(obs['antennas'])} antennas, {obs['n_baselines']} baselines, "
              f"{sum(s['n_integrations'] for s in obs['scans'])} integrations of {obs['integration_s']} s "
              f"({obs['start_utc']} - {obs['end_utc']} UTC), {len(obs['scans'])} scans, "
              f"{nspw} spws x {truth['spectral_windows'][0]['nchan']} channels x 2 correlations")
        print(f"rows {obs['rows']:,}; visibilities {nvis:,}; MS on disk {size / 1e9:.2f} GB")
        print(f"\nwall time          {wall:7.2f} s")
        print(f"throughput         {nvis / wall / 1e6:7.1f} M visibilities/s "
              f"({obs['rows'] / wall / 1e3:.0f} k rows/s, {size / wall / 1e6:.0f} MB/s written)")
        print(f"peak RSS           {rss / 1024:7.0f} MB (process high-water mark; {rss0 / 1024:.0f} MB before)")
        print("\nwhere the time goes (s):")
        order = ["planning", "uvw and geometry (casacore measures)", "sky-model setup (components, Doppler)",
                 "sky model (direct Fourier sum)", "corruptions and noise (2 threads)",
                 "table writing", "table writing (background thread)", "waiting for the table writer", "truth file"]
        for key in order + sorted(set(timings) - set(order)):
            if key in timings:
                share = 100 * timings[key] / wall
                print(f"  {key:45s} {timings[key]:6.2f}  {share:5.1f}% of wall")
        main_thread = sum(v for k, v in timings.items() if k != "table writing (background thread)")
        print(f"  {'(sum on the main thread)':45s} {main_thread:6.2f}")

        # the same without the table writes: what the computation costs without the writer
        # competing for the 2 cores (the MS is still created, with its rows unfilled)
        import almarules.engine.simulate.writer as sim

        real_write = sim.Writer._write
        sim.Writer._write = lambda self, *a: None
        try:
            t_nw: dict[str, float] = {}
            t1 = time.perf_counter()
            simulate(cfg, workdir / "nowrite.ms", overwrite=True, timings=t_nw)
            wall_nw = time.perf_counter() - t1
        finally:
            sim.Writer._write = real_write
            shutil.rmtree(workdir / "nowrite.ms", ignore_errors=True)
        print(f"\nwithout table writes: wall {wall_nw:.2f} s; sky model "
              f"{t_nw.get('sky model (direct Fourier sum)', 0):.2f} s, corruptions and noise "
              f"{t_nw.get('corruptions and noise (2 threads)', 0):.2f} s "
              f"(the difference to the full run is the writer's share of the 2 cores)")

        # allocation peak (tracemalloc slows numpy a little; a 15-minute run of the same config)
        short = cfg.model_copy(update={"schedule": cfg.schedule.model_copy(update={"duration": 900.0})})
        tracemalloc.start()
        t1 = time.perf_counter()
        r2 = simulate(short, workdir / "traced.ms", overwrite=True)
        t_short = time.perf_counter() - t1
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows2 = r2["execution_blocks"][0]["observation"]["rows"]
        print(f"\ntracemalloc peak   {peak / 1e6:7.0f} MB of numpy/Python allocations "
              f"(15-min run, {rows2:,} rows, {t_short:.1f} s); memory is bounded by the chunk size "
              f"(8M visibilities per chunk, <= 2 chunks queued for the writer), not by the dataset")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
