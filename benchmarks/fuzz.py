"""The long hostile-input campaign (issue 11):

    python benchmarks/fuzz.py --inputs 100000 --seed 1 --jobs 2 [--out fuzz-failures]

Mutated rules, summaries and ``--set`` values run through the real CLI in subprocess workers
(per-input time limit -- an input that exceeds it runs once more with 3x the limit before it
counts as a hang, so a busy machine does not make slow inputs look hung --, RLIMIT_AS memory
limit, fresh temp cwd). Prints counts per class and per
command, throughput, the workers' peak RSS, the failures grouped by signature, and writes each
failing input (its files, argv, label, output) under ``--out`` for reproduction. Exit 1 if any
internal error, unlocated error, hang, memory blow-up, crash or repository write was seen."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz.runner import (CLASSES, FAILURES, Outcome, Report, run_campaign, signature,  # noqa: E402
                         suspicious_writes, untracked_files)


def save(out: Path, o: Outcome) -> None:
    """Write one failing input (files + case.json with argv, label, class and output)."""
    d = out / o.cls / o.case["id"].replace(":", "_")
    for rel, data in o.case["files"].items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    d.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in o.case.items() if k != "files"}
    meta.update(cls=o.cls, rc=o.res.get("rc"), stderr=o.res.get("err"), frame=o.res.get("frame"),
                files=sorted(o.case["files"]))
    (d / "case.json").write_text(json.dumps(meta, indent=1))


def print_report(r: Report, writes: list[str]) -> None:
    """Counts per class and per command, throughput, peak RSS, grouped failures."""
    print(f"{r.n} inputs in {r.secs:.1f} s: {r.n / max(r.secs, 1e-9):.1f} inputs/s; "
          f"worker peak RSS {r.peak_rss_kb / 1024:.0f} MB")
    print("per class: " + ", ".join(f"{c} {r.counts.get(c, 0)}" for c in CLASSES))
    for key, row in sorted(r.per_command.items()):
        print(f"  {key:16s} " + ", ".join(f"{c} {row[c]}" for c in CLASSES if c in row))
    print(f"repository writes: {writes or 'none'}")
    print(f"\n{len(r.groups)} distinct failures (class | kind command | exception | innermost frame):")
    print(r.failures(per_class=3))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    ap.add_argument("--memory-gb", type=float, default=2.0, help="RLIMIT_AS of each worker")
    ap.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    ap.add_argument("--log", type=Path, help="append one JSON line per input (id, class, signature)")
    ap.add_argument("--progress", type=int, default=1000, help="print a line every N inputs")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the workers and temp dir are cleaned up
    before = untracked_files()
    t0 = time.perf_counter()
    seen = [0]

    def on_outcome(o: Outcome) -> None:
        seen[0] += 1
        if args.log:
            with args.log.open("a") as f:
                f.write(json.dumps({"id": o.case["id"], "kind": o.case["kind"], "command": o.case["command"],
                                    "cls": o.cls, "sig": signature(o.case, o.cls, o.res) if o.cls in FAILURES else "",
                                    "label": o.case["label"][:200], "err": (o.res.get("err") or "")[:300]}) + "\n")
        if o.cls in FAILURES:
            save(args.out, o)
        if args.progress and seen[0] % args.progress == 0:
            print(f"  {seen[0]} inputs, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="almarules-fuzz-") as tmp:
        report = run_campaign(args.seed, args.inputs, Path(tmp), args.jobs, args.timeout, args.memory_gb,
                              on_outcome)
    writes = suspicious_writes(before, untracked_files())
    print_report(report, writes)
    return 1 if writes or any(report.counts.get(c, 0) for c in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
