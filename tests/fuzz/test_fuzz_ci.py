"""CI-sized hostile-input fuzz run (issue 11): a fixed seed, mutations of the shipped rules, the
example summaries and ``--set`` values, each run through the real CLI in killable, memory-limited
subprocess workers. Every input must be accepted or refused with a located error: no internal
error, no unlocated error, no hang, no memory blow-up, no crash, no write into the repository."""

from __future__ import annotations

from pathlib import Path

from .runner import FAILURES, run_campaign, suspicious_writes, untracked_files

SEED = 20261206
INPUTS = 600  # ~30 s on 2 quiet cores (~20 inputs/s; eval and plan of valid inputs dominate)
TIMEOUT_S = 30.0  # a hang is a hang at 30 s too; `test` of a whole rule set takes 2-5 s, more on a busy machine
MEMORY_GB = 2.0


def test_fuzz_ci(tmp_path: Path) -> None:
    """Zero internal errors, unlocated errors, hangs, memory blow-ups and crashes."""
    before = untracked_files()
    report = run_campaign(SEED, INPUTS, tmp_path / "fuzz", jobs=2, timeout=TIMEOUT_S, mem_gb=MEMORY_GB)
    writes = suspicious_writes(before, untracked_files())
    assert report.n == INPUTS
    bad = {cls: report.counts.get(cls, 0) for cls in FAILURES}
    assert not any(bad.values()) and not writes, (
        f"fuzz seed {SEED}, {INPUTS} inputs: counts {report.counts}; failures {bad}; "
        f"repository writes {writes}\n" + report.failures(per_class=3))
