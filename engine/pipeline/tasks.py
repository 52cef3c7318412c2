"""One image as a task that runs anywhere: in this process, or on a Dask worker of this machine or
of another one that sees the same files.

A task carries only paths and plain values (`ImageTask`), never the compiled rules: a worker loads
the rule set once and reads the facts once (cached per process), builds an imaging `Stage` with
the facts as the plan saw them (no other image's measurements, so an image does not depend on the
order or the worker it ran on) and makes the one image. Products and the record are written by
the worker into WORKDIR/images atomically; the task returns a small `TaskResult`.
"""

from __future__ import annotations

import functools
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

from pydantic import BaseModel

from almarules.engine.evaluate.api import load_program
from almarules.engine.evaluate.program import Program
from almarules.engine.facts.model import Dataset
from almarules.engine.products.contdat import ContDat, read_contdat


class ImageTask(BaseModel):
    """Everything a worker needs to make one image."""

    key: str
    rules: list[str]
    sets: list[str]
    facts: str  # path of WORKDIR/facts.json
    ms: list[str]
    out_dir: str
    mous: Optional[str] = None
    contfile: Optional[str] = None
    extra_products: bool = True
    memory_limit: int  # bytes of visibilities held at once (cubes stream)
    nthreads: int  # gridder and FFT threads (1: byte-identical products)
    data_calibrated: bool = False
    unscaled: Optional[str] = None  # why the run's calibration has no flux scale (imaging.stage.Stage.unscaled)
    started: str  # the run's start (the FITS DATE card), UTC ISO 8601
    inputs: str  # this image's inputs digest (engine.pipeline.inputs), kept in its record
    pictures: Optional[str] = None  # draw the weblog's pictures of the image here (weblog.thumbs.predraw)


class TaskResult(BaseModel):
    key: str
    record: Optional[str] = None  # path of the record written (None if the image failed before one)
    status: str
    error: Optional[str] = None
    kept: bool = False  # its earlier record and products matched: not made again
    seconds: float  # making (or keeping) the image
    pictures_seconds: float = 0.0  # drawing its weblog pictures
    worker: str  # "local" or the Dask worker's address


@functools.lru_cache(maxsize=4)
def _program(rules: tuple[str, ...]) -> Program:
    return load_program(list(rules))


@functools.lru_cache(maxsize=4)
def _facts(path: str, mtime_ns: int) -> Dataset:
    return Dataset.model_validate_json(Path(path).read_bytes())


@functools.lru_cache(maxsize=4)
def _contdat(path: str, mtime_ns: int) -> ContDat:
    return read_contdat(path)


def _worker_name() -> str:
    """The Dask worker's address, or "local" (distributed is not imported for that: 0.5 s)."""
    dist = sys.modules.get("distributed")
    if dist is None:
        return "local"
    try:
        return dist.get_worker().address
    except ValueError:
        return "local"


def make_stage(task: ImageTask, log=None):
    """The imaging `Stage` of `task` (rules and facts cached per process)."""
    from almarules.engine.stages.imaging.stage import Stage

    facts = _facts(task.facts, Path(task.facts).stat().st_mtime_ns)
    contdat = _contdat(task.contfile, Path(task.contfile).stat().st_mtime_ns) if task.contfile else None
    return Stage(_program(tuple(task.rules)), facts, [Path(m) for m in task.ms], Path(task.out_dir), task.sets,
                 task.mous, contdat, task.extra_products, task.memory_limit, task.nthreads, log,
                 task.data_calibrated, unscaled=task.unscaled, started=datetime.fromisoformat(task.started),
                 inputs=task.inputs)


def kept_result(task: ImageTask) -> Optional[TaskResult]:
    """The result of `task` when its image is already whole on disk with these inputs (checked in
    this process, so a re-run with nothing to do starts no worker), else None."""
    from almarules.engine.stages.imaging.stage import kept_image, record_path

    t0 = time.perf_counter()
    stage = make_stage(task)
    rec = kept_image(stage, task.key)
    if rec is None:
        return None
    record = record_path(stage, task.key)
    return TaskResult(key=task.key, record=str(record), status=rec.status, error=rec.error, kept=True,
                      seconds=time.perf_counter() - t0, worker="local")


def run_image(task: ImageTask) -> TaskResult:
    """Make (or keep) the image of `task`; never raises for a failed image (its record says why)."""
    from almarules.engine.stages.imaging.stage import kept_image, make_image, record_path

    t0 = time.perf_counter()
    where = _worker_name()
    if where != "local":
        where = f"{where} ({socket.gethostname()})"
    stage = make_stage(task)
    kept = kept_image(stage, task.key)
    rec = kept if kept is not None else make_image(stage, task.key)
    t1 = time.perf_counter()
    if task.pictures and kept is None and rec.status != "failed":
        from almarules.engine.pipeline.weblog.thumbs import predraw

        predraw(rec, Path(task.out_dir), Path(task.pictures))
    record = record_path(stage, task.key)
    return TaskResult(key=task.key, record=str(record) if record and record.is_file() else None, status=rec.status,
                      error=rec.error, kept=kept is not None, seconds=t1 - t0,
                      pictures_seconds=time.perf_counter() - t1, worker=where)
