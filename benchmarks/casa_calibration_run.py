"""CASA 6.7's calibration of NGC 5921 and alma_sim, run from the project's environment.

    python benchmarks/casa_calibration_run.py [--dataset ngc5921 alma_sim] [--casa-venv PATH]
        [--work DIR] [--data DIR] [--json FILE]

For each dataset: unpacks the raw shared MS once into ``<work>/data/src`` (the cache that
`compare_casa.py` uses too; `compare_data`), then runs `casa_calibration.py` in the CASA virtual
environment, in its own process, with the offline configuration of `casa_env` (never importing
casatools here), and prints CASA's timings and fluxes. ``run(dataset, ...)`` returns that
script's JSON (see its module doc) with ``process_seconds`` (the wall time of the whole CASA
process, imports included) added; the caltables it names stay under
``<work>/casa_calibration/<dataset>/`` for loading with python-casacore afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import casa_env  # noqa: E402
import compare_data  # noqa: E402

DATASETS = ("ngc5921", "alma_sim")
SCRIPT = HERE / "casa_calibration.py"
DEFAULT_WORK = Path("/tmp/almarules-compare-casa")
DEFAULT_DATA = Path(os.environ.get("ALMARULES_SHARED_DATA", REPO.parent / "shared" / "data"))


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def raw_ms(dataset: str, data: Path, work: Path) -> Path:
    """The raw shared MS of `dataset`, unpacked once under ``work/data/src`` (reused afterwards)."""
    return compare_data._unpack(Path(data) / f"{dataset}.ms.tar.gz", Path(work) / "data" / "src")


def run(dataset: str, *, data: Path = DEFAULT_DATA, work: Path = DEFAULT_WORK,
        casa_venv: Path = casa_env.DEFAULT_VENV, extra: tuple[str, ...] = (),
        say: Callable[[str], None] = say) -> dict:
    """Calibrate `dataset` ('ngc5921' or 'alma_sim') with CASA (module doc); its JSON result.
    `extra`: more arguments for casa_calibration.py (e.g. ``("--refant", "DA42")``)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {DATASETS}")
    py, config = casa_env.ensure(casa_venv, say)
    ms = raw_ms(dataset, data, work)
    out_dir = Path(work).resolve() / "casa_calibration" / dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    result = out_dir / "result.json"
    result.unlink(missing_ok=True)
    args = ["--ms", str(ms), "--dataset", dataset, "--work", str(out_dir), "--json", str(result), *extra]
    if dataset == "alma_sim":
        args += ["--truth", str(Path(data) / "alma_sim.truth.json")]
    say(f"{dataset}: CASA calibration of {ms} in {out_dir}")
    t = time.perf_counter()
    proc = subprocess.run(casa_env.command(py, config, SCRIPT, *args), cwd=out_dir, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"CASA calibration of {dataset} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}")
    out = json.loads(result.read_text())
    out["process_seconds"] = wall
    return out


# ---------------------------------------------------------------- printing
def steps_table(res: dict) -> str:
    from tabulate import tabulate

    rows = [[s["name"], s["task"], f"{s['seconds']:.3f}"] for s in res["steps"]]
    rows += [["(all calls)", "", f"{res['calibration_seconds']:.3f}"],
             ["(casatasks/casatools imports)", "", f"{res['import_seconds']:.3f}"],
             ["(whole CASA process)", "", f"{res['process_seconds']:.3f}"]]
    return tabulate(rows, headers=["step", "CASA task", "wall s"])


def flux_table(res: dict) -> str:
    """fluxscale's fluxes per field and spw; for alma_sim with the truth and the ratio."""
    from tabulate import tabulate

    truth = res.get("truth_ratio", {})
    rows = []
    for field, rec in res["fluxscale"].items():
        for spw, one in rec["spw"].items():
            t = truth.get(field, {}).get(spw)
            rows.append([field, spw, f"{one['freq_hz'] / 1e9:.6f}", f"{one['flux']:.6g}", f"{one['error']:.2g}",
                         one["n_solutions"], f"{t['truth']:.6g}" if t else "-", f"{t['ratio']:.4f}" if t else "-"])
    return tabulate(rows, headers=["field", "spw", "GHz", "flux Jy", "error Jy", "n", "truth Jy", "CASA/truth"])


def setjy_line(res: dict) -> str:
    """The flux calibrator's model at each spw's centre (MODEL_DATA read back)."""
    sj = res["setjy"]
    if "per_spw" in sj:
        return "; ".join(f"spw {s}: {v['model_at_centre_jy']:.6g} Jy at {v['centre_hz'] / 1e9:.6f} GHz "
                         f"(truth {v['truth_at_centre_jy']:.6g})" for s, v in sj["per_spw"].items())
    return (f"3C286 {sj['model_at_centre_jy']:.6g} Jy at {sj['centre_hz'] / 1e9:.6f} GHz (Perley-Butler 2017 "
            f"polynomial {sj['pb2017_polynomial_at_centre_jy']:.6g}; setjy's return value, channel 0: "
            f"{sj['return']['0']['spw']['0'][0]:.6g})")


def report(res: dict) -> str:
    return (f"== {res['dataset']}: CASA {res['casa_version']}, refant {res['refant']['name']}, phase-up calmode "
            f"{res['phaseup_calmode']}\nsetjy: {setjy_line(res)}\n\n{steps_table(res)}\n\n{flux_table(res)}\n")


# ---------------------------------------------------------------- main
def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--casa-venv", type=Path, default=casa_env.DEFAULT_VENV,
                    help=f"the CASA virtual environment (built there once if absent; default {casa_env.DEFAULT_VENV})")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work directory (raw MS cache, CASA outputs)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data directory")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write {dataset: CASA's result} to FILE")
    return ap.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    results = {}
    for ds in args.dataset:
        results[ds] = run(ds, data=args.data, work=args.work, casa_venv=args.casa_venv)
        print(report(results[ds]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
