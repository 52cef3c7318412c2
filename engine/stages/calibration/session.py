"""What the calibration stages of one run share: the working copies, the calibrator roles, the
rules evaluated on the facts *with the stages' measurements*, and the solutions so far.

Roles come from the intents (the MS's or an intents file's): BANDPASS, AMPLITUDE (flux), PHASE,
CHECK and TARGET fields. Each execution block (MS) is calibrated on its own. A target or check
source takes the solutions of the phase calibrator nearest to it on the sky.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np

from almarules.engine.evaluate import api
from almarules.engine.evaluate.decisions import LazyDecisions
from almarules.engine.evaluate.program import Program
from almarules.engine.facts.model import CalibrationFacts, Dataset
from almarules.engine.stages.calibration.solve import Bandpass
from almarules.engine.stages.calibration.visdata import CalDataError, SpwSetup, open_table, spw_setups
from almarules.kernels import gaincal

CALIBRATOR_INTENTS = ("BANDPASS", "AMPLITUDE", "PHASE")

_T = TypeVar("_T")
_R = TypeVar("_R")


class CalibrationError(ValueError):
    """A calibration that cannot go on (no calibrator, no solution): one line for the user."""


@dataclass
class MSInfo:
    """One working copy: its spectral windows, antennas and fields (ids in this MS)."""

    source: Path
    path: Path
    setups: dict[int, SpwSetup]
    antennas: list[str]
    positions: np.ndarray  # (nant, 3) ITRF m
    diameters: np.ndarray  # (nant,) m
    fields: dict[str, int]  # name -> FIELD id (the first of its rows)
    directions: dict[str, tuple[float, float]]  # name -> (ra, dec) rad
    field_ids: dict[str, list[int]] = field(default_factory=dict)  # name -> every FIELD id (a mosaic's pointings)

    @property
    def nant(self) -> int:
        return len(self.antennas)


def read_ms_info(source: Path, path: Path) -> MSInfo:
    """The spws, antennas and fields of the working copy `path` of `source`."""
    ant, fld = open_table(path, "ANTENNA"), open_table(path, "FIELD")
    try:
        names = [str(n) for n in ant.getcol("NAME")]
        pos = np.asarray(ant.getcol("POSITION"), dtype=np.float64).reshape(len(names), 3)
        dia = np.asarray(ant.getcol("DISH_DIAMETER"), dtype=np.float64)
        fnames = [str(n) for n in fld.getcol("NAME")]
        pdir = np.asarray(fld.getcol("PHASE_DIR"), dtype=np.float64).reshape(len(fnames), -1, 2)[:, 0]
    except RuntimeError as exc:
        raise CalDataError(f"{path}: ANTENNA or FIELD subtable unreadable: {exc}") from None
    finally:
        ant.close()
        fld.close()
    fields: dict[str, int] = {}
    ids: dict[str, list[int]] = {}
    for i, n in enumerate(fnames):
        fields.setdefault(n, i)
        ids.setdefault(n, []).append(i)
    return MSInfo(Path(source), Path(path), spw_setups(path), names, pos, dia, fields,
                  {n: (float(pdir[i, 0]), float(pdir[i, 1])) for n, i in fields.items()}, ids)


@dataclass
class SpwSolutions:
    """The solutions of one spw of one MS."""

    bandpass: Optional[Bandpass] = None
    phase_int: dict[str, gaincal.GainTable] = field(default_factory=dict)  # calibrator -> per integration
    amp_scan: dict[str, gaincal.GainTable] = field(default_factory=dict)  # calibrator -> amplitude per scan
    phase_scan: dict[str, gaincal.GainTable] = field(default_factory=dict)  # phase calibrator -> per scan
    offset: Optional[gaincal.GainTable] = None  # spwphaseup: this spw's phase offset from its mapped spw
    mapped_to: Optional[int] = None


@dataclass
class CalSession:
    """The calibration state of a run (module doc)."""

    program: Program
    facts: Dataset
    sets: Sequence[str]
    workdir: Path
    ms: list[MSInfo] = field(default_factory=list)
    refants: list[str] = field(default_factory=list)
    models: dict[tuple[str, int], tuple[float, float, float, str]] = field(default_factory=dict)  # (I Jy, spix, ref Hz, source)
    catalogue: dict[tuple[str, int], float] = field(default_factory=dict)  # flux.csv I (Jy) by (field, spw)
    solutions: dict[tuple[int, int], SpwSolutions] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)
    data: dict[tuple[str, int, str], Any] = field(default_factory=dict)  # calibrator visibilities, per flag state
    gains: dict[tuple[str, int, str], Any] = field(default_factory=dict)  # gfluxscale's (phase, amp, model) per field
    workers: int = 1  # threads for the per-MS, per-spw tasks of a stage (`map`)
    _dec: Optional[LazyDecisions] = None

    def __post_init__(self) -> None:
        if self.facts.calibration is None:
            self.facts.calibration = CalibrationFacts()

    # ---------------------------------------------------------------- parallel tasks
    def map(self, fn: Callable[[_T], _R], tasks: Iterable[_T]) -> list[_R]:
        """`fn` over `tasks` (one per MS and spw, say), on `workers` threads, results in task order.

        A stage reads the rules and measures before (the facts and the rules are not touched in
        here), runs its solves as tasks, then records their results in order, so the outcome does
        not depend on the number of threads. The numerics release the GIL; the tasks' table
        access is serialised (`visdata.IO_LOCK`)."""
        tasks = list(tasks)
        if self.workers <= 1 or len(tasks) <= 1:
            return [fn(t) for t in tasks]
        self.dec  # evaluated here, once, not raced for by the tasks
        with ThreadPoolExecutor(max_workers=min(self.workers, len(tasks)), thread_name_prefix="calibration") as pool:
            return list(pool.map(fn, tasks))

    # ---------------------------------------------------------------- rules
    def changed(self) -> None:
        """The facts changed (a stage measured something): evaluate the rules again when asked."""
        self._dec = None

    @property
    def dec(self) -> LazyDecisions:
        if self._dec is None:
            self._dec = LazyDecisions(api.run(self.program, self.facts, list(self.sets), "calibration"))
        return self._dec

    def value(self, path: str, default: Any = None) -> Any:
        """The known value at `path`, or `default` (unknown, or the rules define none)."""
        try:
            v = self.dec.value(path)
        except KeyError:
            return default
        return v.value if v.status == "known" else default

    def source(self, path: str) -> str:
        """Where the value at `path` comes from (rules file:line:col)."""
        try:
            return str(self.dec.value(path).at or "")
        except KeyError:
            return ""

    # ---------------------------------------------------------------- roles
    def fields_with(self, intent: str) -> list[str]:
        return [f.name for f in self.facts.fields or [] if intent in (f.intents or [])]

    @property
    def calibrators(self) -> list[str]:
        seen: dict[str, None] = {}
        for intent in CALIBRATOR_INTENTS:
            seen.update(dict.fromkeys(self.fields_with(intent)))
        return list(seen)

    def unscaled(self) -> Optional[str]:
        """Why the solutions have no flux scale (None when a flux calibrator has a flux model)."""
        refs = self.fields_with("AMPLITUDE")
        if not refs:
            return "the calibration has no flux scale: no field has the flux calibrator (AMPLITUDE) intent"
        if any(name in refs for name, _ in self.models):
            return None
        return (f"the calibration has no flux scale: the flux calibrator {', '.join(refs)} has no flux model (not in "
                f"a flux file, no catalogue model)")

    def phase_calibrator_for(self, info: MSInfo, name: str) -> Optional[str]:
        """The phase calibrator of this MS nearest on the sky to field `name`."""
        cals = [c for c in self.fields_with("PHASE") if c in info.fields and c != name]
        if not cals:
            return None
        ra, dec = info.directions[name]
        return min(cals, key=lambda c: _separation((ra, dec), info.directions[c]))

    def refant_index(self, info: MSInfo) -> Optional[int]:
        """The best-ranked reference antenna present in this MS."""
        for name in self.refants:
            if name in info.antennas:
                return info.antennas.index(name)
        return None

    def spw_fact(self, spw: int):
        for s in self.facts.spws or []:
            if s.id == spw:
                return s
        raise CalibrationError(f"spw {spw} is not in the facts")


def _separation(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Angular separation (rad) of two (ra, dec) directions (rad)."""
    s = (math.sin((b[1] - a[1]) / 2) ** 2
         + math.cos(a[1]) * math.cos(b[1]) * math.sin((b[0] - a[0]) / 2) ** 2)
    return 2 * math.asin(min(1.0, math.sqrt(s)))


@dataclass
class Outcome:
    """What one calibration stage did, for the run's record: the items it worked on, notes
    (each a line of the weblog), warnings (attention items), the rules paths of its QA score and
    colour, the calibration tables it wrote, and numbers for its record."""

    items: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    score: Optional[str] = None
    colour: Optional[str] = None
    tables: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    products: dict[str, str] = field(default_factory=dict)  # file -> kind, delivered by exportdata
    reasons_from: list[str] = field(default_factory=list)  # score paths whose reasons explain the stage's score
    skipped: Optional[str] = None  # why the stage had nothing to do (it is then shown as skipped, with this)
