"""Resuming a run: an image whose record and products on disk match this run's inputs is kept,
not made again.

The inputs are summed up in one SHA-256 (`inputs_digest`, kept in every record as
``inputs_sha256``): the almarules version, the rule set's hash, the ``--set`` assignments, the
OUS id given, the cont.dat, ``--data-calibrated``, ``--extra-products``, and every Measurement
Set by its resolved path and the size and modification time of each of its files but the
lock files (so a
recalibrated MS is imaged again). An image is kept when its record has that digest, the image's
parameters the rules give now, a status other than failed, and each of its products on disk with
the size the record lists; anything else is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from almarules import __version__
from almarules.engine.stages.imaging.record import ImageRecord

if TYPE_CHECKING:
    from almarules.engine.stages.imaging.writer import ProductWriter
    from almarules.engine.stages.imaging.stage import Stage


def ms_identity(ms: Path) -> list[tuple[str, int, int]]:
    """(path within the MS, size, mtime in ns) of every file of the MS tree, sorted."""
    found = []
    for root, dirs, files in os.walk(ms):
        dirs.sort()
        for name in sorted(files):
            if name == "table.lock":  # rewritten whenever casacore opens the table, even to read
                continue
            path = Path(root) / name
            st = path.stat()
            found.append((str(path.relative_to(ms)), st.st_size, st.st_mtime_ns))
    return found


def inputs_digest(stage: "Stage") -> str:
    """The SHA-256 of what an image depends on besides its parameters (module docstring)."""
    inputs = {
        "almarules": __version__, "rules_sha256": stage.dec.rules_sha256, "sets": list(stage.sets),
        "mous": stage.mous, "contdat": stage.contdat.model_dump(mode="json") if stage.contdat else None,
        "data_calibrated": stage.data_calibrated, "extra_products": stage.extra_products,
        **({"unscaled": stage.unscaled} if stage.unscaled else {}),
        "ms": [[str(Path(m).resolve()), ms_identity(Path(m))] for m in stage.ms_paths],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def kept_record(stage: "Stage", writer: "ProductWriter", digest: str) -> Optional[ImageRecord]:
    """The record of the image on disk when it and its products match this run (else None)."""
    path = writer.path("record", "json")
    try:
        rec = ImageRecord.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    if rec.status == "failed" or rec.inputs_sha256 != digest:
        return None
    now = {k: v.model_dump() for k, v in writer.job.settings.items()}
    if {k: v.model_dump() for k, v in rec.parameters.items()} != now:
        return None
    if sorted(p.kind for p in rec.products) != sorted(writer.expected_kinds(rec)):
        return None
    for p in rec.products:
        file = stage.out_dir / p.file
        if file.name != p.file or not file.is_file() or file.stat().st_size != p.bytes:
            return None
    return rec
