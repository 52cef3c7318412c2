"""`simulate`: the execution blocks of a config, one after another, into their MSs and truth files.

Execution blocks: one EB writes exactly ``OUT``; several write ``<OUT stem>_eb1.ms``,
``<OUT stem>_eb2.ms``, ... beside it (``OUT`` = ``dir/name.ms`` gives ``dir/name_eb1.ms``);
each EB starts ``eb_gap`` after the previous one ends, has its own gains, bandpasses and
noise, and the same sky. Truth files: ``<MS path without .ms>.truth.json``. Every MS is
written under a temporary name in the target directory and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time as _time
import uuid
from pathlib import Path
from typing import Callable, Optional

from almarules.engine.ms.measures import setup_measures

from .config import SimConfig, load_sim_config
from .errors import SimConfigError, SimError
from .execution_block import simulate_eb, Timer
from .plan import Plan, make_timeline


def output_paths(out: str | Path, n_ebs: int) -> list[tuple[Path, Path]]:
    """(MS, truth file) paths: ``OUT`` for one EB, ``<stem>_eb<k>.ms`` beside it for several."""
    out = Path(out)
    stem = out.name[:-3] if out.name.endswith(".ms") else out.name
    if n_ebs == 1:
        ms = [out]
    else:
        ms = [out.parent / f"{stem}_eb{k + 1}.ms" for k in range(n_ebs)]
    res = []
    for m in ms:
        s = m.name[:-3] if m.name.endswith(".ms") else m.name
        res.append((m, m.parent / f"{s}.truth.json"))
    return res


def simulate(config: SimConfig | str | Path, out_path: str | Path, seed: Optional[int] = None,
             progress: Optional[Callable[[int, int], None]] = None, *, overwrite: bool = False,
             timings: Optional[dict] = None) -> dict:
    """Simulate the execution block(s) of `config` into `out_path` (see the package docstring).

    Returns ``{"ms": [paths], "truth_files": [paths], "execution_blocks": [truth, ...]}``; each
    truth is also written as JSON next to its MS. `progress(done, total)` is called with
    main-table rows written. `timings`, if given, is filled with seconds per stage.
    Raises `SimConfigError` for an inconsistent config, `SimError` when the outputs exist
    (unless `overwrite`) or the schedule cannot be observed (source below min_elevation).
    """
    setup_measures()  # current leap seconds / Earth orientation for casacore, before its first use
    cfg = config if isinstance(config, SimConfig) else load_sim_config(config)
    seed = cfg.seed if seed is None else int(seed)
    if seed < 0:
        raise SimConfigError("seed: must be >= 0")
    timer = Timer()
    t0 = _time.perf_counter()
    plan = Plan(cfg, seed)
    outputs = output_paths(out_path, len(plan.ebs))
    for ms, truth in outputs:
        if not ms.parent.is_dir():
            raise SimError(f"output directory does not exist: {ms.parent}")
        for p in (ms, truth):
            if p.exists() and not overwrite:
                raise SimError(f"{p} exists (use --force to replace it)")
    timer.add("planning", t0)
    total = sum(plan.nbl * len(plan.spws) * make_timeline(plan, eb).times.size for eb in plan.ebs)
    done = 0
    truths = []
    for eb, (ms, truth_path) in zip(plan.ebs, outputs):
        tmp = ms.parent / f".{ms.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            truth = simulate_eb(plan, eb, tmp, progress, done, total, timer, ms)
            done += truth["observation"]["rows"]
            t1 = _time.perf_counter()
            text = json.dumps(truth, indent=1, allow_nan=False)
            tmp_truth = truth_path.parent / f".{truth_path.name}.tmp-{uuid.uuid4().hex[:8]}"
            tmp_truth.write_text(text + "\n", encoding="utf-8")
            if ms.exists():
                trash = ms.parent / f".{ms.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(ms, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, ms)
            os.replace(tmp_truth, truth_path)
            timer.add("truth file", t1)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            for p in ms.parent.glob(f".{truth_path.name}.tmp-*"):
                p.unlink(missing_ok=True)
            raise
        truths.append(truth)
    if timings is not None:
        timings.update(timer.t)
    return {"ms": [str(m) for m, _ in outputs], "truth_files": [str(t) for _, t in outputs],
            "execution_blocks": truths}
