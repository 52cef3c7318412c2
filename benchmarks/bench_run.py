"""Benchmark: ``almarules run`` on the whole alma_sim.ms recipe, serial against 2 Dask workers
(printed, not asserted).

    python benchmarks/bench_run.py [--data DIR] [--repeat N]

For each mode, the fastest of N runs into a fresh WORKDIR (each run a separate process):
wall time of the whole command, the sum of the image task times (`ImageEntry.seconds`), the
overhead of everything else (reading the facts, the plan, the stages' bookkeeping, exportdata,
the Dask cluster's start), the weblog's time (a separate ``--no-weblog`` run gives it), and the
peak resident memory of the command and its worker processes. Baseline: the serial run; targets
(issue 13): the overhead below 10 % of the image times, a speed-up with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]


def _run(ms: Path, wd: Path, extra: list[str]) -> dict:
    shutil.rmtree(wd, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "almarules.engine.cli.app", "run", str(ms), "-o", str(wd), "-q", *extra],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode not in (0,):
        raise SystemExit(f"almarules run failed ({p.returncode}): {p.stderr[-2000:]}")
    state = json.loads((wd / "run.json").read_text())
    images = sum(e.get("seconds") or 0 for e in state["images"].values())
    pictures = sum(e.get("pictures_seconds") or 0 for e in state["images"].values())
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall": wall, "images": images, "pictures": pictures, "n": len(state["images"]), "workers": state["workers"],
            "rss_mb": max(after, before) / 1024}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    archive = Path(args.data) / "alma_sim.ms.tar.gz"
    if not archive.exists():
        print(f"no {archive}")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench_run."))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        ms = tmp / "alma_sim.ms"
        modes = {"serial": ["--workers", "1", "--no-weblog"], "2 workers": ["--workers", "2", "--no-weblog"],
                 "serial + weblog": ["--workers", "1"], "2 workers + weblog": ["--workers", "2"]}
        best: dict[str, dict] = {}
        image_all = None
        for _ in range(args.repeat):
            shutil.rmtree(tmp / "img", ignore_errors=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "almarules.engine.cli.app", "image", str(ms), "--all", "-o",
                            str(tmp / "img"), "--extra-products"], capture_output=True, check=False)
            image_all = min(image_all or 1e9, time.perf_counter() - t0)
            for name, extra in modes.items():
                r = _run(ms, tmp / "wd", extra)
                if name not in best or r["wall"] < best[name]["wall"]:
                    best[name] = r
        base = best["serial"]
        rows = []
        for name, r in best.items():
            serial = name.startswith("serial")
            overhead = r["wall"] - r["images"] - r["pictures"] if serial else None
            rows.append([name, r["n"], f"{r['wall']:.1f}", f"{r['images']:.1f}", f"{r['pictures']:.1f}",
                         f"{overhead:.1f} ({100 * overhead / r['images']:.0f} %)" if overhead is not None else "-",
                         f"{(base if 'weblog' not in name else best['serial + weblog'])['wall'] / r['wall']:.2f}x",
                         f"{r['rss_mb']:.0f}", r["workers"]])
        print(f"almarules run on alma_sim.ms (raw: 11 images, the whole recipe), fastest of {args.repeat} per mode; "
              "overhead = wall - image tasks - pictures (serial runs: facts, plan, bookkeeping, products, "
              "weblog pages); speed-up against the serial run of the same kind")
        print(tabulate(rows, ["mode", "images", "wall (s)", "image tasks (s)", "pictures (s)", "overhead (s)",
                              "speed-up", "peak RSS (MB)", "where"]))
        print(f"the same 11 images by 'almarules image --all --extra-products' (one process, no recipe, no state, "
              f"no products folder): {image_all:.1f} s; 'run' serial costs {base['wall'] - image_all:+.1f} s "
              f"({100 * (base['wall'] - image_all) / image_all:+.0f} %) more")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
