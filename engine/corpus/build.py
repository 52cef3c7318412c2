"""``almarules corpus build``: summaries and Measurement Sets into a corpus folder.

The inputs are split into tasks: summaries in chunks (in input order), each Measurement Set on its
own (its facts take seconds to read). Each task is one part of the corpus, built and written by a
Dask worker (a LocalCluster by default, any cluster with ``--scheduler``; in this process when
there is one task or ``workers=1``). A part already on disk from the same inputs is kept, so a
killed build resumes; the manifest is written last.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from almarules.engine.corpus.batch import Batch, batch_of_summaries
from almarules.engine.corpus.layout import layout
from almarules.engine.corpus.store import BLOCK, MANIFEST, CorpusStore, Manifest, PartInfo, write_part, \
    is_corpus, part_name, write_manifest
from almarules.engine.facts.summary import SUFFIXES, FactsError, dump_summary, read_summary_data
from almarules.engine.io.parallel import run_all
from almarules.engine.ms.facts import MSError, is_ms, read_ms
from almarules.engine.ms.tables import TableAccessError

CHUNK = 2000  # summaries per part


class BuildError(Exception):
    """Inputs that cannot make a corpus (none found, output in the way): one line."""


@dataclass
class Task:
    """One part: its inputs, of one sort."""

    index: int
    sort: str  # "summaries" or "ms"
    paths: list[str]
    key: str = ""

    def digest(self) -> str:
        """What the part is built from: the inputs' paths, sizes and times (`write_part` adds the layout)."""
        h = hashlib.sha1(self.sort.encode())
        for p in self.paths:
            try:
                st = os.stat(p)
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            except OSError:
                h.update(f"{p}\0missing\0".encode())
        return h.hexdigest()


@dataclass
class BuildReport:
    manifest: Manifest
    seconds: float
    resumed: int  # parts kept from an earlier build
    where: str


def find_inputs(sources: Sequence[str | Path]) -> list[Path]:
    """Summaries and Measurement Sets: the files and MSs given, and those directly in the folders given
    (rule tests ``*.test.yaml`` excluded), each folder's sorted by name."""
    found: list[Path] = []
    for src in map(Path, sources):
        if is_ms(src):
            found.append(src)
        elif src.is_dir():
            for p in sorted(src.iterdir()):
                if p.is_dir() and is_ms(p):
                    found.append(p)
                elif p.suffix.lower() in SUFFIXES and not p.name.endswith(".test.yaml") and not p.is_dir():
                    found.append(p)  # a FIFO, device or broken link too: refused unopened, and reported
        elif src.is_file():
            found.append(src)
        else:
            raise BuildError(f"no such file or folder: {src}")
    return found


def tasks_of(paths: Sequence[Path], chunk: int = CHUNK) -> list[Task]:
    tasks: list[Task] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            tasks.append(Task(len(tasks), "summaries", list(pending)))
            pending.clear()

    for p in paths:
        if is_ms(p):
            flush()
            tasks.append(Task(len(tasks), "ms", [str(p)]))
        else:
            pending.append(str(p))
            if len(pending) >= chunk:
                flush()
    flush()
    for t in tasks:
        t.key = part_name(t.index)
    return tasks


def build_part(task: Task, out: str) -> tuple[PartInfo, bool]:
    """Build and write one part (on a worker), a block of inputs at a time; (its description,
    whether it was already there)."""
    blocks = (_read_batch(task.sort, task.paths[start:start + BLOCK]) for start in range(0, len(task.paths), BLOCK))
    return write_part(Path(out), task.index, task.digest(), blocks)


def _read_batch(sort: str, paths: Sequence[str]) -> Batch:
    """The datasets of some inputs as a batch; one that cannot be read is skipped with why (one line)."""
    data, sources, unreadable = [], [], []
    for p in paths:
        try:
            data.append(dump_summary(read_ms([p])) if sort == "ms" else read_summary_data(p))
            sources.append(p)
        except (FactsError, MSError, TableAccessError, OSError) as exc:  # one line naming the file (the MS table)
            unreadable.append((p, [str(exc).splitlines()[0]]))
    batch = batch_of_summaries(data, sources, trusted=sort == "ms")
    order = {p: i for i, p in enumerate(paths)}
    batch.skipped = sorted(batch.skipped + unreadable, key=lambda s: order[s[0]])
    return batch


def build_corpus(sources: Sequence[str | Path], out: str | Path, workers: Optional[int] = None,
                 scheduler: Optional[str] = None, chunk: int = CHUNK,
                 progress: Optional[Callable[[int, int, int], None]] = None) -> BuildReport:
    """Build (or resume building) the corpus `out` from `sources`; progress(datasets, parts done, parts)."""
    t0 = time.perf_counter()
    paths = find_inputs(sources)
    if not paths:
        raise BuildError(f"no dataset summaries (.yaml/.json) or Measurement Sets in {', '.join(map(str, sources))}")
    out = prepare_output(out)
    tasks = tasks_of(paths, chunk)
    _remove_parts_beyond(out, len(tasks))
    return run_parts(tasks, functools.partial(build_part, out=str(out)), out, [str(s) for s in sources], t0,
                     workers, scheduler, progress)


def run_parts(tasks: Sequence, fn: Callable, out: Path, inputs: list[str], t0: float, workers: Optional[int],
              scheduler: Optional[str], progress: Optional[Callable[[int, int, int], None]]) -> BuildReport:
    """Build every part (`fn(task)` -> (PartInfo, kept)) on the executor, then write the manifest."""
    results, where = run_all(fn, tasks, workers, scheduler, count=lambda r: r[0].datasets, progress=progress)
    ordered = [info for info, _ in results]
    manifest = write_manifest(out, ordered, inputs)
    return BuildReport(manifest, time.perf_counter() - t0, sum(kept for _, kept in results), where)


def prepare_output(out: str | Path) -> Path:
    """The corpus folder to (re)build: new, empty, or a corpus (whose finished parts a build may keep);
    its manifest is removed until the build completes."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists() and not (out / "dataset").is_dir():
        raise BuildError(f"{out}: a folder that is not a corpus; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    return out


@contextlib.contextmanager
def opened_corpus(path: str | Path, workers: Optional[int] = None, scheduler: Optional[str] = None,
                  notice: Optional[Callable[[str], None]] = None) -> Iterator[CorpusStore]:
    """A corpus folder, or a temporary corpus built from the summaries and MSs in the folder `path`
    (removed when the block ends; `notice` hears how long a large one took to build)."""
    d = Path(path)
    if is_corpus(d):
        yield CorpusStore(d)
        return
    if not d.is_dir():
        raise BuildError(f"no such corpus folder: {path}")
    n = len(find_inputs([d]))
    if n == 0:
        raise BuildError(f"no dataset summaries (.yaml/.json) or Measurement Sets in {path}")
    with tempfile.TemporaryDirectory(prefix="almarules-corpus-") as tmp:
        report = build_corpus([d], Path(tmp) / "corpus", workers=workers or (1 if n <= CHUNK else None),
                              scheduler=scheduler)
        if report.manifest.datasets == 0:
            raise BuildError(f"none of the {n} datasets in {path} could be read: "
                             + "; ".join(p for s in report.manifest.skipped[:3] for p in s.problems[:1]))
        if n > CHUNK and notice is not None:
            notice(f"built a temporary corpus of {report.manifest.datasets} datasets in {report.seconds:.1f} s "
                   f"('almarules corpus build {path} -o CORPUS' keeps one)")
        yield CorpusStore(Path(tmp) / "corpus")


def _remove_parts_beyond(out: Path, n: int) -> None:
    """Parts of an earlier, larger build (they would not be in the new manifest)."""
    for kind_dir in (out / k for k in layout()):
        if kind_dir.is_dir():
            for f in kind_dir.glob("part-*.parquet"):
                if int(f.stem.split("-")[1]) >= n:
                    f.unlink()


__all__ = ["build_corpus", "opened_corpus", "prepare_output", "run_parts", "build_part", "find_inputs", "tasks_of", "BuildReport", "BuildError", "Task"]
