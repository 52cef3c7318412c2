"""A corpus on disk: a folder with one Parquet file per entity kind and part, and ``corpus.json``.

    CORPUS/corpus.json                 the manifest: parts, datasets, tables, units, what was skipped
    CORPUS/<kind>/part-00000.parquet   one table per kind and part (``_dataset`` local to the part)

Within a part, row group b of every kind's file holds the rows of datasets b*BLOCK to (b+1)*BLOCK-1
(empty row groups included), so a block of whole datasets is read alone: the unit out-of-core
evaluation works in.

A part holds whole datasets; parts are written independently (in parallel, atomically; each part's
description ``dataset/part-NNNNN.json`` last, so a part that has one is complete) and the manifest
is written last. A build that was killed resumes from its complete
parts. Every column carries its unit, and the dataset table its datasets' sources (``_source``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import datetime as _dt
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from almarules.engine.corpus.batch import Batch
from almarules.engine.corpus.layout import DATASET, SOURCE, layout
from almarules.engine.io import atomic_file, write_atomic

MANIFEST = "corpus.json"
FORMAT = "almarules corpus"
VERSION = 1
BLOCK = 1000  # datasets per row group


class CorpusError(Exception):
    """A corpus folder that cannot be read or written (one line, naming the file)."""


class Skipped(BaseModel):
    source: str
    problems: list[str]


class PartInfo(BaseModel):
    name: str
    datasets: int
    rows: dict[str, int]
    inputs: str  # digest of what the part was built from (a resumed build reuses a part that matches)
    block: int = BLOCK  # datasets per row group
    skipped: list[Skipped] = Field(default_factory=list)
    seconds: float = 0.0


class ColumnInfo(BaseModel):
    type: str
    unit: Optional[str] = None
    computed: bool = False
    doc: str = ""


class TableInfo(BaseModel):
    parent: Optional[str] = None
    attr: Optional[str] = None
    columns: dict[str, ColumnInfo]


class Manifest(BaseModel):
    format: str = FORMAT
    version: int = VERSION
    created: str
    datasets: int
    parts: list[PartInfo]
    inputs: list[str] = Field(default_factory=list)  # what it was built from (paths, or "synth seed 0")
    tables: dict[str, TableInfo] = Field(default_factory=dict)

    @property
    def skipped(self) -> list[Skipped]:
        return [s for p in self.parts for s in p.skipped]


def part_name(index: int) -> str:
    return f"part-{index:05d}"


class PartWriter:
    """Writes one part block by block: a row group of every kind's file per `block` datasets, the files
    renamed into place at `close` and the part's description (``dataset/part-NNNNN.json``, what
    `finished_part` reads) written last. Memory holds at most two blocks of rows."""

    def __init__(self, directory: Path, index: int, inputs: str):
        self.directory, self.index, self.inputs, self.block = Path(directory), index, inputs, BLOCK
        self.name = part_name(index)
        self.stack = contextlib.ExitStack()
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.pending: dict[str, list[pa.Table]] = {k: [] for k in layout()}
        self.waiting = 0  # datasets in `pending`
        self.n = 0  # datasets written
        self.rows = dict.fromkeys(layout(), 0)
        self.skipped: list[Skipped] = []
        self.t0 = time.perf_counter()
        try:
            for kind, spec in layout().items():
                path = self.directory / kind / f"{self.name}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = self.stack.enter_context(atomic_file(path))
                self.writers[kind] = pq.ParquetWriter(fh, spec.arrow_schema(with_source=kind == "dataset"),
                                                      compression="zstd")
        except BaseException:
            self.stack.close()
            raise

    def add(self, batch: Batch) -> None:
        """Append a batch's datasets (any number)."""
        self.skipped += [Skipped(source=src, problems=p) for src, p in batch.skipped]
        for kind, table in batch.tables.items():
            self.pending[kind].append(shift_datasets(table, self.waiting))
        self.waiting += batch.n
        while self.waiting >= self.block:
            self._flush(self.block)

    def _flush(self, count: int) -> None:
        """Write the first `count` pending datasets as one row group of every kind."""
        for kind, tables in self.pending.items():
            table = pa.concat_tables(tables) if len(tables) != 1 else tables[0]
            cut = int(np.searchsorted(table.column(DATASET).to_numpy(), count))
            head, rest = table.slice(0, cut), table.slice(cut)
            self.writers[kind].write_table(shift_datasets(head, self.n))
            self.rows[kind] += head.num_rows
            self.pending[kind] = [shift_datasets(rest, -count)]
        self.n += count
        self.waiting -= count

    def close(self) -> PartInfo:
        """Finish the part (the last, shorter block; at least one row group); its description."""
        try:
            if self.waiting or self.n == 0:
                self._flush(self.waiting)
            for w in self.writers.values():
                w.close()
        except BaseException:
            self.abort()
            raise
        self.stack.close()
        info = PartInfo(name=self.name, datasets=self.n, rows=self.rows, inputs=self.inputs, skipped=self.skipped,
                        seconds=round(time.perf_counter() - self.t0, 3), block=self.block)
        write_atomic(self.directory / "dataset" / f"{self.name}.json", info.model_dump_json() + "\n")
        return info

    def abort(self) -> None:
        """Leave nothing of the part behind (the temporary files removed)."""
        for w in self.writers.values():
            with contextlib.suppress(Exception):
                w.close()
        with contextlib.suppress(Exception):
            self.stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


def shift_datasets(table: pa.Table, by: int) -> pa.Table:
    """`table` with `by` added to its ``_dataset`` numbers."""
    if not by:
        return table
    j = table.schema.get_field_index(DATASET)
    return table.set_column(j, table.schema.field(j), pc.add(table.column(j), by))


@functools.lru_cache(maxsize=1)
def layout_digest() -> str:
    """The tables' schemas (columns, types, units): a part written under another layout is not kept."""
    text = "\n".join(spec.arrow_schema(with_source=True).to_string(show_field_metadata=True)
                     for spec in layout().values())
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def write_part(directory: Path, index: int, inputs: str, batches: Iterable[Batch]) -> tuple[PartInfo, bool]:
    """Part `index` from `batches` (a block at a time), unless the part on disk is complete and was
    built from the same `inputs` under the same layout: (its description, whether it was kept)."""
    inputs = f"{inputs} (layout {layout_digest()})"
    done = finished_part(directory, index, inputs)
    if done is not None:
        return done, True
    writer = PartWriter(directory, index, inputs)
    try:
        for batch in batches:
            writer.add(batch)
    except BaseException:
        writer.abort()
        raise
    return writer.close(), False


def finished_part(directory: Path, index: int, inputs: str) -> Optional[PartInfo]:
    """The description of part `index` if it is on disk, complete and built from `inputs`."""
    path = directory / "dataset" / f"{part_name(index)}.json"
    try:
        info = PartInfo.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None
    if info.inputs != inputs or any(not (directory / k / f"{info.name}.parquet").is_file() for k in info.rows):
        return None
    return info


def write_manifest(directory: Path, parts: Sequence[PartInfo], inputs: Sequence[str]) -> Manifest:
    tables = {}
    for kind, spec in layout().items():
        tables[kind] = TableInfo(parent=spec.parent, attr=spec.attr, columns={
            c.name: ColumnInfo(type=str(c.arrow_type), unit=c.unit, computed=c.computed, doc=c.doc)
            for c in spec.columns})
    m = Manifest(created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 datasets=sum(p.datasets for p in parts), parts=list(parts), inputs=list(inputs), tables=tables)
    write_atomic(directory / MANIFEST, m.model_dump_json(indent=1) + "\n")
    return m


def is_corpus(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


class CorpusStore:
    """A corpus folder, read column by column (memory-mapped), whole or a range of parts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        try:
            self.manifest = Manifest.model_validate_json(manifest.read_bytes())
        except FileNotFoundError:
            raise CorpusError(f"{self.path}: not a corpus (no {MANIFEST}; build one with 'almarules corpus "
                              "build')") from None
        except (OSError, ValidationError, ValueError) as exc:
            raise CorpusError(f"{manifest}: not a corpus manifest ({str(exc).splitlines()[0]})") from None
        if self.manifest.format != FORMAT or self.manifest.version != VERSION:
            raise CorpusError(f"{manifest}: format {self.manifest.format!r} version {self.manifest.version}, "
                              f"this almarules reads {FORMAT!r} version {VERSION}")
        self._files: dict[Path, pq.ParquetFile] = {}

    @property
    def n(self) -> int:
        return self.manifest.datasets

    @property
    def parts(self) -> list[PartInfo]:
        return self.manifest.parts

    def file(self, kind: str, part: int) -> Path:
        return self.path / kind / f"{self.parts[part].name}.parquet"

    def read(self, kind: str, columns: Optional[Iterable[str]] = None, parts: Optional[Sequence[int]] = None,
             blocks: Optional[tuple[int, int]] = None) -> pa.Table:
        """The rows of `kind` in `parts` (default: all), every column or `columns`, ``_dataset`` (when
        read) numbered across those parts; with `blocks` (first, end), only those row groups of the
        one part given."""
        parts = list(range(len(self.parts))) if parts is None else list(parts)
        cols = None if columns is None else list(dict.fromkeys(columns))
        numbered = cols is None or DATASET in cols
        if blocks is not None and len(parts) != 1:
            raise ValueError("blocks of datasets are read from one part")
        tables = []
        first = 0  # the first dataset of the part read, counted from the first one read
        for i in parts:
            path = self.file(kind, i)
            try:
                f = self._parquet(path)
                if blocks is None:
                    t = f.read(columns=cols)
                else:
                    t = f.read_row_groups(list(range(*blocks)), columns=cols)
                    first = -blocks[0] * self.parts[i].block
            except (OSError, pa.ArrowException) as exc:
                raise CorpusError(f"{path}: cannot read the table ({str(exc).splitlines()[0]})") from None
            tables.append(shift_datasets(t, first) if numbered else t)
            first += self.parts[i].datasets
        if not tables:
            empty = layout()[kind].arrow_schema(with_source=kind == "dataset").empty_table()
            return empty if cols is None else empty.select(cols)
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _parquet(self, path: Path) -> pq.ParquetFile:
        """An open Parquet file (its footer read once; data memory-mapped)."""
        got = self._files.get(path)
        if got is None:
            got = self._files[path] = pq.ParquetFile(path, memory_map=True)
        return got

    def blocks(self, part: int) -> int:
        """Row groups (blocks of datasets) in a part."""
        p = self.parts[part]
        return max(1, -(-p.datasets // p.block))

    def sources(self, parts: Optional[Sequence[int]] = None) -> list[str]:
        return self.read("dataset", [SOURCE], parts).column(SOURCE).to_pylist()

    @property
    def skipped(self) -> list[Skipped]:
        return self.manifest.skipped


__all__ = ["CorpusStore", "CorpusError", "Manifest", "PartInfo", "PartWriter", "Skipped", "finished_part", "shift_datasets",
           "write_manifest", "is_corpus", "MANIFEST"]
