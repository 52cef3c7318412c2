"""Where independent tasks run: in this process (``--workers 1``), on a Dask ``LocalCluster`` sized
to the machine (the default), or on an existing Dask cluster (``--scheduler tcp://host:8786``,
whose workers must see the files a task reads and writes at the same paths: a pipeline run's
WORKDIR and Measurement Sets, a corpus build's inputs and output).

The cluster starts only when there are two or more tasks to run, and is closed at the end of the
run (or on Ctrl-C, which also stops its workers). Each task's result arrives as soon as it is done,
in completion order; the runner records them by key, so the order never changes a result.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Callable, Iterator, Optional, Sequence


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Executor:
    """Runs a function over tasks, serially or on Dask."""

    def __init__(self, workers: Optional[int] = None, scheduler: Optional[str] = None,
                 memory_bytes: int = 4 * 1024 ** 3, threads: int = 0):
        self.workers = workers
        self.scheduler = scheduler
        self.memory_bytes = memory_bytes
        self.threads = threads
        self._client: Any = None
        self._cluster: Any = None
        self._early: dict[str, tuple[Any, Any]] = {}  # key -> (task, future) submitted by `start`

    @property
    def serial(self) -> bool:
        return self.scheduler is None and (self.workers or self.default_workers()) <= 1

    def default_workers(self) -> int:
        """One worker per core, as many as the machine's memory holds at `memory_bytes` + 1 GB each."""
        cores = _cores()
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return cores
        return max(1, min(cores, total // (self.memory_bytes + 1024 ** 3)))

    def local_threads(self) -> int:
        """Threads for work that stays in this process (the calibration's per-spw solves): 1 when
        serial (``--workers 1``), else this machine's cores (at most --workers)."""
        if self.serial:
            return 1
        return max(1, min(_cores(), self.workers or _cores()))

    def task_threads(self) -> int:
        """Gridder/FFT threads per task: --threads, else the cores shared among local workers
        (0, all cores, when serial; 1 on a remote cluster)."""
        if self.threads:
            return self.threads
        if self.scheduler:
            return 1
        if self.serial:
            return 0
        return max(1, _cores() // (self.workers or self.default_workers()))

    def describe(self) -> str:
        if self.scheduler:
            n = len(self._client.scheduler_info()["workers"]) if self._client else "?"
            return f"Dask scheduler {self.scheduler} ({n} workers)"
        if self.serial:
            return "serial (this process)"
        n = self.workers or self.default_workers()
        return f"Dask LocalCluster: {n} worker processes x 1 thread"

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        import dask
        from distributed import Client, LocalCluster

        for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"cannot reach the Dask scheduler {self.scheduler}: {exc}") from None
        else:
            n = self.workers or self.default_workers()
            # the workers ignore SIGINT (inherited at their start): Ctrl-C reaches the whole process group,
            # and only this process handles it, closing the cluster, instead of each worker dying loudly
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which also fixes glibc's
                # mmap threshold: every large numpy temporary is then mapped and unmapped, and imaging ran
                # 2.4x slower on a worker than in this process (measured); unset, as in this process
                # the scheduler's HTTP server on a free port, no dashboard: two runs at once do not collide
                # (on 8787, the second warned that the port was taken)
                with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                    self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                 memory_limit=self.memory_bytes + 1024 ** 3, dashboard_address=None,
                                                 scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
                                                 silence_logs=logging.CRITICAL)
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)
            self._client = Client(self._cluster)
        return self._client

    def start(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> None:
        """Submit `tasks` now (Dask only; serial: nothing), for a later `map` of the same tasks to
        collect: a later stage's images run while this stage's last ones finish."""
        if self.serial or not tasks:
            return
        client = self._connect()
        for t in tasks:
            if t.key not in self._early:
                self._early[t.key] = (t, client.submit(fn, t, pure=False, key=f"{t.key}-early"))

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[Any, Any, Optional[BaseException]]]:
        """Yield (task, result, exception) as each task finishes (taking over those `start` submitted
        when they are the same task)."""
        early = {t.key: self._early.pop(t.key)[1] for t in tasks if t.key in self._early and self._early[t.key][0] == t}
        if (self.serial or len(tasks) < 2 and self.scheduler is None) and not early:
            for t in tasks:
                try:
                    yield t, fn(t), None
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # a bug in one task: recorded, the others go on
                    yield t, None, exc
            return
        from distributed import as_completed

        client = self._connect()
        futures = {early.get(t.key) or client.submit(fn, t, pure=False, key=f"{t.key}-{i}"): t
                   for i, t in enumerate(tasks)}
        for fut in as_completed(list(futures)):
            t = futures[fut]
            try:
                yield t, fut.result(), None
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                yield t, None, exc

    def results(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield (task, result) as each task finishes; the first task that failed raises its error."""
        for task, result, exc in self.map(fn, tasks):
            if exc is not None:
                raise exc
            yield task, result

    def close(self) -> None:
        for _task, fut in self._early.values():  # submitted early, never collected (--until, Ctrl-C)
            fut.cancel()
        self._early = {}
        for thing in (self._client, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a cluster that already died
                    pass
        self._client = self._cluster = None


def run_all(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: Optional[int] = None,
            scheduler: Optional[str] = None, memory_bytes: int = 2 * 1024 ** 3,
            count: Optional[Callable[[Any], int]] = None,
            progress: Optional[Callable[[int, int, int], None]] = None) -> tuple[list[Any], str]:
    """``fn(task)`` for every task (each with a distinct ``key``) on an `Executor` of `workers`
    (default: one per core as memory allows, at most one per task) or on `scheduler`: the results
    in task order, and where they ran. After each task, ``progress(items, done, total)`` (the
    convention of `cli.common.progress_printer`: done and total last), items summed over the
    results so far by `count`."""
    executor = Executor(workers=workers, scheduler=scheduler, memory_bytes=memory_bytes)
    if not workers:
        executor.workers = max(1, min(len(tasks), executor.default_workers()))
    order = {t.key: k for k, t in enumerate(tasks)}
    results: dict[int, Any] = {}
    items = 0
    try:
        for task, result in executor.results(fn, tasks):
            results[order[task.key]] = result
            items += count(result) if count is not None else 0
            if progress is not None:
                progress(items, len(results), len(tasks))
        where = executor.describe()
    finally:
        executor.close()
    return [results[k] for k in range(len(tasks))], where
