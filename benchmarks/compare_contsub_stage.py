"""The uvcontsub stage of ``almarules run`` against CASA 6.7's ``uvcontsub`` called as the stage's own
commands.log says (part of `compare_casa.py`: ``--only uvcontsub``).

1. ``almarules run RAW --until uvcontsub --fluxfile FLUX`` (findcont's cont.dat, the rules' order)
   into ``<work>/uvcontsub_run`` (reused when complete), for raw alma_sim with its flux file and
   for the simulated 1-hour execution block of `compare_data.SIMULATED` (43 antennas, 3.4 GB
   calibrated: the size of a real ALMA EB) with the flux file written from its truth;
2. the stage's CASA command from run.json (vis = the run's calibrated MS, field, fitspec from the
   cont.dat channels of every spw, fitorder) run in the CASA venv (`compare_uvcontsub.casa_side`),
   its outputvis in ``<work>/uvcontsub_casa.ms``;
3. compared: every (row, channel, correlation) of the field's rows, matched on (TIME, ANTENNA1,
   ANTENNA2, DATA_DESC_ID) -- the CORRECTED_DATA of the line copy made by the timed run of the
   stage's work (below) against CASA's DATA -- as max |ours -
   CASA| / rms(input) over samples neither side flags (target 1e-5, issue 15); flags that differ;
   the throughput of our stage's work (`contsub.line_copy` as the stage calls it, on the machine's
   cores: copying the MS, fitting, subtracting, writing; timed in this process) and of CASA's call
   (splitting the field into a new MS, fitting, writing), alternating the two ``repeat`` times
   (the disk's page cache and the machine's load vary) and keeping the fastest of each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import compare_metrics as cm  # noqa: E402
import compare_uvcontsub  # noqa: E402

TARGET = 1e-5  # max |ours - CASA| / rms of the input (issue 15)
SPEED_TARGET = 3.0  # CASA's time / ours (issue 15)
KEYS = ("TIME", "ANTENNA1", "ANTENNA2", "DATA_DESC_ID")


def stage_run(raw: Path, work: Path, say: Callable[[str], None], fluxfile: Path) -> dict:
    """run.json of ``almarules run RAW --until uvcontsub`` in work/uvcontsub_run (made once)."""
    wd = work / "uvcontsub_run"
    state = wd / "run.json"
    if state.exists():
        run = json.loads(state.read_text())
        if any(s["name"] == "uvcontsub" and s["status"] == "done" for s in run["stages"]):
            return run
    say(f"uvcontsub: almarules run {raw} --until uvcontsub")
    shutil.rmtree(wd, ignore_errors=True)
    cmd = [sys.executable, "-m", "almarules", "run", str(raw), "-o", str(wd), "--until", "uvcontsub", "-q",
           "--no-weblog", "--fluxfile", str(fluxfile)]
    subprocess.run(cmd, check=True, capture_output=True)
    return json.loads(state.read_text())


def casa_call(run: dict) -> dict:
    """The stage's CASA uvcontsub call as keyword values (vis, outputvis, field, fitspec, fitorder)."""
    stage = next(s for s in run["stages"] if s["name"] == "uvcontsub")
    text = next(c["text"] for c in stage["commands"] if c["tool"] == "casa" and c["text"].startswith("uvcontsub("))
    kw = dict(re.findall(r"(\w+)=('[^']*'|\d+)", text))
    return {k: (v.strip("'") if v.startswith("'") else int(v)) for k, v in kw.items()}


def read(ms: Path, column: str, field_id: list[int], dd: int) -> dict:
    """The field's cross-correlation rows of data description `dd` (one spw: one cell shape)."""
    from casacore.tables import table, taql

    with table(str(ms), ack=False) as t:
        sel = taql(f"select from $t where FIELD_ID in {list(field_id)} and ANTENNA1 != ANTENNA2 "
                   f"and DATA_DESC_ID == {int(dd)}")
        out = {c: sel.getcol(c) for c in (*KEYS, column, "FLAG")}
        sel.close()
    out["DATA"] = out.pop(column)
    return out


def data_descriptions(ms: Path) -> int:
    from casacore.tables import table

    with table(str(ms / "DATA_DESCRIPTION"), ack=False) as t:
        return t.nrows()


def field_ids(ms: Path, name: str) -> list[int]:
    from casacore.tables import table

    with table(str(ms / "FIELD"), ack=False) as t:
        return [i for i, n in enumerate(t.getcol("NAME")) if n == name]


def compare(raw: Path, work: Path, casa_venv: Path, say: Callable[[str], None],
            fluxfile: Path = REPO / "examples" / "flux" / "alma_sim.flux.csv") -> dict:
    """Run both sides and compare (module doc); {"metrics": [...], "table": str}."""
    work.mkdir(parents=True, exist_ok=True)
    return compare_run(stage_run(raw, work, say, fluxfile), work, casa_venv, say)


def time_ours(call: dict, work: Path) -> tuple[float, Path]:
    """(seconds, the line copy) of the stage's work on a fresh copy (`contsub.line_copy`, the run's
    cont.dat and order, as many threads as cores, as the run's default)."""
    from almarules.engine.products.contdat import read_contdat
    from almarules.engine.stages.continuum.contsub import line_copy

    contdat = read_contdat(Path(call["outputvis"]).parents[1] / "cont.dat")
    dest = work / "uvcontsub_ours" / Path(call["vis"]).name
    shutil.rmtree(dest.parent, ignore_errors=True)
    t = time.perf_counter()
    line_copy(Path(call["vis"]), dest, f"timing {time.time()}", [call["field"]], contdat, call["fitorder"],
              os.cpu_count() or 1)
    return time.perf_counter() - t, dest


def compare_run(run: dict, work: Path, casa_venv: Path, say: Callable[[str], None], repeat: int = 2) -> dict:
    """CASA's uvcontsub as the uvcontsub stage of `run` (a run.json) says, compared with the stage's
    line copy (module doc, steps 2 and 3)."""
    call = casa_call(run)
    casa_out = work / "uvcontsub_casa.ms"
    spec = {"variants": {"stage": {"ms": call["vis"], "outputvis": str(casa_out)}}, "field": call["field"], "spw": "",
            "fitspec": call["fitspec"], "order": call["fitorder"], "repeat": 1, "result": str(work / "uvcontsub_casa.json")}
    say(f"uvcontsub: CASA uvcontsub(field={call['field']!r}, fitspec={call['fitspec']!r}, fitorder={call['fitorder']}) "
        f"and the stage's work, alternately, {repeat} times each")
    casa_times, ours_times = [], []
    for _ in range(repeat):
        casa = compare_uvcontsub.run_casa(casa_venv, spec, work)
        casa_times += casa["variants"]["stage"]["seconds"]
        seconds, line = time_ours(call, work)
        ours_times.append(seconds)
    casa_s, ours_s = min(casa_times), min(ours_times)
    ids, casa_ids = field_ids(Path(call["vis"]), call["field"]), field_ids(casa_out, call["field"])
    metrics = []
    worst, nvis, differ = 0.0, 0, 0
    # CASA's outputvis keeps the spws in the input's order, renumbered from 0 (all of them here)
    for dd in range(data_descriptions(Path(call["vis"]))):
        src = read(Path(call["vis"]), "CORRECTED_DATA", ids, dd)
        if src["TIME"].size == 0:
            continue
        ours = read(line, "CORRECTED_DATA", ids, dd)
        theirs = read(casa_out, "DATA", casa_ids, dd)
        rows = {n: np.lexsort((d["ANTENNA2"], d["ANTENNA1"], d["TIME"]))
                for n, d in (("src", src), ("ours", ours), ("casa", theirs))}
        for k in ("TIME", "ANTENNA1", "ANTENNA2"):
            a, b = ours[k][rows["ours"]], theirs[k][rows["casa"]]
            if a.shape != b.shape or not np.array_equal(a, b):
                raise RuntimeError(f"uvcontsub: CASA's rows of data description {dd} do not match ours ({k})")
        data_in, flag_in = src["DATA"][rows["src"]], src["FLAG"][rows["src"]]
        o, of = ours["DATA"][rows["ours"]], ours["FLAG"][rows["ours"]]
        c, cf = theirs["DATA"][rows["casa"]].astype(np.complex128), theirs["FLAG"][rows["casa"]]
        rms = float(np.sqrt(np.mean(np.abs(data_in[~flag_in]) ** 2)))
        ok = ~of & ~cf
        rel = float(np.abs(o - c)[ok].max() / rms)
        worst, nvis, differ = max(worst, rel), nvis + o.size, differ + int((of != cf).sum())
        metrics.append(cm.Metric(f"data description {dd}: max |ours - CASA| / rms(input)", rel, None, rel,
                                 TARGET, "", f"{int(ok.sum())} samples, rms(input) {rms:.4g} Jy"))
    metrics.append(cm.Metric("flags that differ", differ, None, differ, 0, "samples"))
    metrics.append(cm.Metric("throughput (visibilities/s)", nvis / ours_s, nvis / casa_s, None, None, "vis/s",
                             f"fastest of {repeat}: ours {ours_s:.2f} s (copy + fit + write, {os.cpu_count()} threads), "
                             f"CASA's call {casa_s:.2f} s (all runs: ours {', '.join(f'{t:.2f}' for t in ours_times)}; "
                             f"CASA {', '.join(f'{t:.2f}' for t in casa_times)})"))
    ratio = casa_s / ours_s
    metrics.append(cm.Metric("speed (CASA time / ours)", ratio, None, None, None, "x", "target >= 3x (issue 15)",
                             judged="PASS" if ratio >= SPEED_TARGET else "FAIL"))
    say(f"uvcontsub: worst {worst:.2e} of rms; ours {ours_s:.2f} s, CASA {casa_s:.2f} s")
    return {"call": call, "metrics": [m.as_dict() for m in metrics], "table": table(metrics),
            "casa_seconds": casa_s, "ours_seconds": ours_s}


def table(metrics: list[cm.Metric]) -> str:
    from tabulate import tabulate

    def num(v):
        return "-" if v is None else f"{v:.4g}"

    return tabulate([[m.name, num(m.ours), num(m.casa), "-" if m.target is None else f"<= {m.target:g}", m.verdict,
                      m.unit, m.how] for m in metrics],
                    headers=["metric", "almarules", "CASA", "target", "verdict", "unit", "how"])
