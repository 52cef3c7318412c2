"""Benchmark: `almarules plan` end to end on every Measurement Set in ../shared/data (printed).

    python benchmarks/bench_plan.py [--data DIR]

Per MS: reading the facts (`read_ms`), evaluating and building the plan (with the residuals'
re-evaluations), and rendering text, markdown, JSON and HTML; median of 3. The baseline is the
evaluation alone (`Program.run` + `compute_all`): the plan's overhead is the rest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTENTS = {"ngc5921.ms": REPO / "examples" / "intents" / "ngc5921.yaml",
           "day2_TDEM0003_10s_norx_1src_1spw.ms": REPO / "examples" / "intents" / "day2_TDEM0003.yaml"}


def median_time(fn, k: int = 3):
    out, times = None, []
    for _ in range(k):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    archives = sorted(Path(args.data).glob("*.ms.tar.gz"))
    if not archives:
        print(f"no *.ms.tar.gz in {args.data}")
        return 1
    from almarules.engine.plan.render import html as plan_html
    from almarules.engine.plan.render import markdown as plan_markdown
    from almarules.engine.plan.render import text as plan_text
    from almarules.engine.evaluate.api import default_rules, load_dataset, load_program
    from almarules.engine.plan.build import build_plan

    program = load_program(default_rules())
    print(f"{'MS':45s} {'facts':>8s} {'eval':>8s} {'plan':>8s} {'render':>8s} {'total':>8s}  images residuals")
    with tempfile.TemporaryDirectory() as tmp:
        for archive in archives:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
            name = archive.name.removesuffix(".tar.gz")
            ms = Path(tmp) / name
            facts, t_facts = median_time(lambda: load_dataset([ms], INTENTS.get(name)))
            _, t_eval = median_time(lambda: program.run(facts).compute_all())
            plan, t_plan = median_time(lambda: build_plan(program, facts, name))
            _, t_render = median_time(lambda: (plan_text.render(plan, explain=True), plan_markdown.render(plan),
                                               plan.to_json(), plan_html.render(plan)))
            total = t_facts + t_plan + t_render
            print(f"{name:45s} {t_facts * 1e3:7.0f}ms {t_eval * 1e3:7.0f}ms {t_plan * 1e3:7.0f}ms "
                  f"{t_render * 1e3:7.0f}ms {total * 1e3:7.0f}ms  {len(plan.images):6d} {len(plan.residuals):9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
