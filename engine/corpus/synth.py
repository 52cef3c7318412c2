"""``almarules synth-corpus N --format parquet``: synthetic datasets straight into a corpus, part by
part in parallel (Dask workers draw and write their own parts; dataset i depends only on the seed
and i, so a part is the same whoever draws it, and a killed run resumes from its finished parts)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from almarules.engine.corpus.batch import batch_of_summaries
from almarules.engine.corpus.build import BuildReport, prepare_output, run_parts
from almarules.engine.corpus.store import BLOCK, PartInfo, part_name, write_part
from almarules.engine.facts.synth import dataset_rng, synth_dataset

PART = 10_000  # datasets per part


@dataclass
class SynthTask:
    index: int
    start: int
    count: int
    seed: int
    key: str = ""

    def digest(self) -> str:
        return f"synth seed {self.seed} datasets {self.start}-{self.start + self.count - 1}"


def synth_part(task: SynthTask, out: str) -> tuple[PartInfo, bool]:
    """Draw and write one part (on a worker), a block at a time; (its description, whether it was
    already there)."""
    end = task.start + task.count
    blocks = (batch_of_summaries([synth_dataset(dataset_rng(task.seed, i)) for i in ids],
                                 [f"synth_{i:06d}" for i in ids])
              for ids in (range(lo, min(lo + BLOCK, end)) for lo in range(task.start, end, BLOCK)))
    return write_part(Path(out), task.index, task.digest(), blocks)


def synth_corpus(n: int, out: str | Path, seed: int = 0, part: int = PART, workers: Optional[int] = None,
                 scheduler: Optional[str] = None,
                 progress: Optional[Callable[[int, int, int], None]] = None) -> BuildReport:
    """Write `n` synthetic datasets (seed `seed`) as the corpus `out`, `part` datasets a part."""
    t0 = time.perf_counter()
    out = prepare_output(out)
    tasks = [SynthTask(i, s, min(part, n - s), seed, key=part_name(i)) for i, s in enumerate(range(0, n, part))]
    return run_parts(tasks, functools.partial(synth_part, out=str(out)), out,
                     [f"almarules synth-corpus {n} --seed {seed}"], t0, workers, scheduler, progress)


__all__ = ["synth_corpus", "synth_part", "SynthTask", "PART"]
