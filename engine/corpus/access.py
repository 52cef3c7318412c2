"""The facts of a corpus as Arrow columns, for the evaluator: in memory (a `Batch`) or read
column by column from a stored corpus (only the columns the rules use are read)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from almarules.engine.corpus.batch import Batch
from almarules.engine.corpus.layout import DATASET, OWNER, SOURCE, layout
from almarules.engine.corpus.store import CorpusStore


class FactTables:
    """Datasets' facts, one Arrow table per entity kind (see engine.corpus.layout)."""

    n: int
    names: list[str]

    def __init__(self) -> None:
        self._structure: dict[str, tuple[np.ndarray, Optional[np.ndarray]]] = {}

    def column(self, kind: str, name: str) -> pa.ChunkedArray:
        """The values of one stored column, every row of the kind."""
        raise NotImplementedError

    def structure(self, kind: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(dataset of each row, position of its owner in the dataset's list of owners, or None)."""
        got = self._structure.get(kind)
        if got is None:
            ds = _ints(self.column(kind, DATASET))
            owner = _ints(self.column(kind, OWNER)) if layout()[kind].parent not in (None, "dataset") else None
            got = self._structure[kind] = (ds, owner)
        return got


class MemoryTables(FactTables):
    """The tables of a batch built in memory."""

    def __init__(self, batch: Batch):
        super().__init__()
        self.batch = batch
        self.n = batch.n
        self.names = list(batch.sources)

    def column(self, kind: str, name: str) -> pa.ChunkedArray:
        return self.batch.tables[kind].column(name)


class StoredTables(FactTables):
    """A stored corpus (or some of its parts), read column by column on first use."""

    def __init__(self, store: CorpusStore, parts: Optional[Sequence[int]] = None,
                 blocks: Optional[tuple[int, int]] = None):
        """All of `store`, some of its parts, or the blocks (first, end) of datasets of one part."""
        super().__init__()
        self.store = store
        self.parts = list(range(len(store.parts))) if parts is None else list(parts)
        self.blocks = blocks
        if blocks is not None:
            p = store.parts[self.parts[0]]
            self.n = min(blocks[1] * p.block, p.datasets) - blocks[0] * p.block
        else:
            self.n = sum(store.parts[i].datasets for i in self.parts)
        self._names: Optional[list[str]] = None

    @property
    def names(self) -> list[str]:  # type: ignore[override]
        if self._names is None:
            self._names = self.column("dataset", SOURCE).to_pylist()
        return self._names

    def column(self, kind: str, name: str) -> pa.ChunkedArray:
        """Read on each call (memory-mapped; the evaluator keeps what it converts, not the Arrow data)."""
        return self.store.read(kind, [name], self.parts, self.blocks).column(name)


def contiguous(col: Union[pa.ChunkedArray, pa.Array]) -> pa.Array:
    """One contiguous array: a single chunk as it is (numpy then views its buffer: zero-copy), several
    (one per part read) concatenated once."""
    if not isinstance(col, pa.ChunkedArray):
        return col
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _ints(col: pa.ChunkedArray) -> np.ndarray:
    return contiguous(col).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


__all__ = ["FactTables", "MemoryTables", "StoredTables", "contiguous"]
