"""Benchmarks of the rule language and the engine (printed, not asserted).

    python benchmarks/bench_rules.py

1. parse + check of all shipped rule sets (target <= 200 ms), with the one-off grammar build
   reported separately;
2. evaluation of cycle4 on a 5-field x 4-spw summary (target <= 2 ms median): `run` (collection,
   cascade) and `decisions` (every value of every entity, with provenance), separately;
3. the same for the long-baseline example, whose cascade applies all four steps;
4. the interpreter over the first 500 synthetic summaries (seed 0), cycle4 and current: the mean
   of ``program.run(d).compute_all()`` per dataset (target <= 5 ms).
The evaluation figure is every derived value of every entity computed, each with its provenance
(rule, inputs); the last figure adds turning them into the `Decisions` model (units, text).
Baseline: the targets of issue 2. Machines here are noisy; compare ratios within one run.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timeit(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def five_by_four():
    from almarules.engine.facts.model import Dataset

    spws = [{"id": 17 + 2 * i, "nchan": 128, "start_frequency": f"{217 + 2 * i} GHz", "channel_width": "15.625 MHz",
             "intents": ["TARGET", "PHASE", "BANDPASS", "CHECK", "ATMOSPHERE"]} for i in range(4)]
    fields = [{"id": 0, "name": "J1517-2422", "intents": ["BANDPASS", "AMPLITUDE"], "pointings": [{}]},
              {"id": 1, "name": "J1625-2527", "intents": ["PHASE"], "pointings": [{}]},
              {"id": 2, "name": "J1633-2557", "intents": ["CHECK"], "pointings": [{}]}]
    fields += [{"id": 3 + k, "name": f"Target_{k}", "intents": ["TARGET"], "pointings": [{}]} for k in range(2)]
    meas = [{"field": f["name"], "intent": "TARGET", "spws": [s["id"]], "specmode": mode,
             "sensitivity": "0.05 mJy/beam", "dirty_dr": 80, "rms": "0.12 mJy/beam"}
            for f in fields[3:] for s in spws for mode in ("mfs", "cube")]
    return Dataset.model_validate({
        "project": "bench", "array": "12m",
        "ebs": [{"id": "eb1", "syscal_rows": 400, "processing_history": False, "baselines": {"l80": 310}}],
        "antennas": [{"name": f"DA{i}", "dish_diameter": 12} for i in range(41, 84)],
        "spws": spws, "fields": fields,
        "scans": [{"number": 1, "intents": ["ATMOSPHERE", "BANDPASS"]}], "measurements": meas})


def main() -> None:
    from almarules.dsl import parser as dsl_parser
    from almarules.dsl.checker import check
    from almarules.dsl.loader import load_ruleset, rule_set_dirs
    from almarules.engine.evaluate.api import load_facts, load_program, run
    from almarules.engine.evaluate.decisions import decisions
    from almarules.engine.facts.schema import fact_schema

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    t = time.perf_counter()
    dsl_parser._lark()
    print(f"grammar build (once per process): {1e3 * (time.perf_counter() - t):.1f} ms")
    sets = rule_set_dirs(REPO / "rules")
    nfiles = sum(len(load_ruleset([s]).modules) for s in sets)

    def parse_check_all():
        for s in sets:
            rs = load_ruleset([s])
            result = check(rs, fact_schema())
            assert not result.findings

    times = timeit(parse_check_all, 20)
    print(f"parse + check, all shipped rules ({len(sets)} sets, {nfiles} files): "
          f"median {1e3 * statistics.median(times):.1f} ms, min {1e3 * min(times):.1f} ms  (target <= 200 ms)")

    program = load_program([REPO / "rules" / "alma" / "cycle4"])
    for label, facts in [("5-field x 4-spw summary", five_by_four()),
                         ("long-baseline example (cascade, 4 steps)",
                          load_facts(REPO / "examples" / "12m_long_baseline_cascade.yaml"))]:
        run(program, facts)
        t_run = timeit(lambda: run(program, facts), 200)
        t_eval = timeit(lambda: run(program, facts).compute_all(), 200)
        t_all = timeit(lambda: decisions(run(program, facts)), 100)
        n_values = len(run(program, facts).compute_all())
        print(f"cycle4 on {label} ({n_values} values):\n"
              f"  image list + cascade                       median {1e3 * statistics.median(t_run):6.2f} ms\n"
              f"  evaluation: every value, with provenance   median {1e3 * statistics.median(t_eval):6.2f} ms"
              f"  (target <= 2 ms)\n"
              f"  evaluation + the Decisions report model    median {1e3 * statistics.median(t_all):6.2f} ms")
    synthetic_corpus()
    tracemalloc.start()
    decisions(run(program, five_by_four()))
    _, peak = tracemalloc.get_traced_memory()
    print(f"peak memory of one full evaluation: {peak / 1e6:.2f} MB")


def synthetic_corpus(n: int = 500) -> None:
    """Mean evaluation time per dataset (every value, with provenance) of the first `n` synthetic summaries."""
    from almarules.engine.evaluate.api import load_program
    from almarules.engine.facts.model import Dataset
    from almarules.engine.facts.synth import synthesize

    corpus = [Dataset.model_validate(s) for s in synthesize(n, seed=0)]
    for name in ("cycle4", "current"):
        program = load_program([REPO / "rules" / "alma" / name])
        t = time.perf_counter()
        for d in corpus:
            program.run(d).compute_all()
        print(f"{name} on the first {n} synthetic summaries (seed 0), every value with provenance: "
              f"mean {1e3 * (time.perf_counter() - t) / n:6.2f} ms per dataset  (target <= 5 ms)")


if __name__ == "__main__":
    sys.exit(main())
