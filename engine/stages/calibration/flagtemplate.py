"""Flag templates and online flags: CASA ``flagdata`` "list" commands, parsed, resolved against a
Measurement Set and applied to its FLAG column.

Syntax (as the ALMA pipeline's ``*.flagtemplate.txt`` and ``flagcmd`` files use it): one command
per line, ``key='value'`` pairs separated by blanks (``"value"`` and bare ``value`` also work),
``#`` starts a comment, blank lines are skipped. Keys: ``mode`` (only ``'manual'``, the default),
``antenna``, ``spw``, ``field``, ``scan``, ``timerange``, ``correlation``, ``intent``, ``reason``.
A command selects the visibilities that match every key it gives.

Selection semantics, as CASA 6.7's ``flagdata(mode='manual')`` does them (measured on a small MS
with auto-correlations; differences are marked *almarules*):

* ``antenna``: expressions separated by ``;`` (their union). An expression is a list of antennas
  (``,``-separated names, name globs ``DA4*``, ids, id ranges ``0~3``; names win over ids) with an
  optional baseline operator: ``L`` = cross-correlations with any antenna of L (= ``L&*``);
  ``L&R`` = cross-correlations between L and R (``*`` = all); ``L&`` = among L; ``L&&R`` / ``L&&``
  = the same including auto-correlations; ``L&&&`` = auto-correlations of L only. A leading ``!``
  negates an expression (everything else, auto-correlations included); *almarules*: negated
  expressions are subtracted from the union of the others (CASA refuses ``'A,!B'``).
* ``spw``: ``,``-separated items ``spw[:chans]``; spw is an id, a range ``0~2``, ``*`` or a name glob;
  chans are ``;``-separated channels or ranges ``0~3``. Channel steps (``^``) are refused
  (CASA 6.7 silently ignores them).
* ``field``: names (globs) or ids / id ranges, ``,``-separated. ``scan``: ``1,3~5``, ``>2``, ``<4``.
* ``timerange``: ``,``-separated items ``T1~T2`` (rows whose TIME midpoint is in [T1, T2]),
  ``>T``, ``<T``, or a single ``T`` (the integrations (TIME - INTERVAL/2, TIME + INTERVAL/2]
  containing T). T is
  ``YYYY/MM/DD/hh:mm:ss[.s]`` or ``hh:mm[:ss[.s]]``; a time without a date takes T1's date, or
  that of the MS's first row. Times are read in the time scale of the MS's TIME column (its
  MEASINFO reference: UTC for ALMA, TAI for old VLA data), as CASA does: no scale conversion.
* ``correlation``: ``,``-separated names (``XX``, ``YY``, ``RR``, ``XY``, ...); data descriptions
  without them are not touched. ``intent``: ``,``-separated patterns matched against STATE
  OBS_MODE; a pattern with ``*`` is a glob of the whole OBS_MODE, *almarules*: one without ``*``
  matches as a substring (CASA needs the exact OBS_MODE).

Names that match nothing in the MS (antenna, field, spw, intent) are errors with file:line:column,
as in CASA; online flags (`online_flags`) are lenient instead: such names are noted and select
nothing, as CASA's flagcmd skips them. A command that selects no rows flags nothing (CASA raises
MSSelectionNullSelection). `apply` sets FLAG in a writable working MS, chunk by chunk over rows,
and FLAG_ROW where a whole row ends up flagged (*almarules*: CASA 6.7 leaves FLAG_ROW unset when a
channel or correlation selection happens to cover the whole row), and reports per command what
it newly flagged and what was flagged already; a row's FLAG_ROW counts as all of it flagged.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict

from almarules.engine.ms.metadata import STOKES_NAMES

__all__ = ["FlagTemplateError", "FlagCommand", "Selection", "CommandCount", "FlagReport",
           "parse", "parse_file", "select", "apply", "online_flags"]

KEYS = ("mode", "antenna", "spw", "field", "scan", "timerange", "correlation", "intent", "reason")
SELECTION_KEYS = ("antenna", "spw", "field", "scan", "timerange", "correlation", "intent")
#: rows read per chunk of the main table
CHUNK_ROWS = 200_000
_MJD0 = _dt.datetime(1858, 11, 17)


class FlagTemplateError(ValueError):
    """A command that cannot be parsed or resolved: ``file:line:column: what was expected``."""


class FlagCommand(BaseModel):
    """One flag command. Empty strings select everything for their key; `columns` holds the
    1-based column of each value given, for error messages. A `lenient` command (online flags, as
    CASA's flagcmd treats them) skips names the MS lacks, noting them, instead of failing."""

    model_config = ConfigDict(frozen=True)

    mode: str = "manual"
    antenna: str = ""
    spw: str = ""
    field: str = ""
    scan: str = ""
    timerange: str = ""
    correlation: str = ""
    intent: str = ""
    reason: str = ""
    source: str = "<string>"
    line: int = 0
    text: str = ""
    columns: dict[str, int] = {}
    lenient: bool = False  # names matching nothing in the MS are notes, not errors (online flags)

    @property
    def where(self) -> str:
        """``file:line`` of the command."""
        return f"{self.source}:{self.line}"

    def error(self, key: str, message: str) -> FlagTemplateError:
        """An error about the value of `key`, located at its column."""
        return FlagTemplateError(f"{self.where}:{self.columns.get(key, 1)}: {key}: {message}")


class Selection(NamedTuple):
    """Rows (ascending main-table row numbers, int64) of one data description, and the channel
    (nchan,) and correlation (ncorr,) masks a command selects in them."""

    rows: np.ndarray
    chan_mask: np.ndarray
    corr_mask: np.ndarray


class CommandCount(BaseModel):
    """What one command did: rows and visibilities (one channel of one correlation of one row) it
    selected, those it newly flagged and those already flagged before it."""

    where: str
    reason: str
    rows_selected: int = 0
    rows_newly_flagged: int = 0
    visibilities_selected: int = 0
    newly_flagged: int = 0
    already_flagged: int = 0
    notes: list[str] = []


class FlagReport(BaseModel):
    """Per command counts (in order) and totals over the MS after `apply`."""

    ms: str
    commands: list[CommandCount]
    visibilities: int
    flagged_before: int
    flagged_after: int
    rows_flag_row_set: int


# --------------------------------------------------------------------------- parsing

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _fail(source: str, line: int, col: int, message: str) -> FlagTemplateError:
    return FlagTemplateError(f"{source}:{line}:{col}: {message}")


def _read_value(text: str, i: int, source: str, line: int) -> tuple[str, int]:
    """The value starting at index `i` (after ``=``) and the index after it."""
    if i < len(text) and text[i] in "'\"":
        end = text.find(text[i], i + 1)
        if end < 0:
            raise _fail(source, line, i + 1, f"unterminated quoted value: expected a closing {text[i]}")
        return text[i + 1:end], end + 1
    j = i
    while j < len(text) and not text[j].isspace():
        j += 1
    if j == i:
        raise _fail(source, line, i + 1, "expected a value after '='")
    return text[i:j], j


def _parse_line(text: str, source: str, line: int) -> Optional[FlagCommand]:
    """The command on one line, or None for a blank or comment line."""
    values: dict[str, str] = {}
    cols: dict[str, int] = {}
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text) or text[i] == "#":
            break
        m = _KEY.match(text, i)
        if not m or m.end() >= len(text) or text[m.end()] != "=":
            raise _fail(source, line, i + 1, "expected key='value'")
        key = m.group(0)
        if key not in KEYS:
            raise _fail(source, line, i + 1, f"unknown key {key!r} (expected one of {', '.join(KEYS)})")
        if key in values:
            raise _fail(source, line, i + 1, f"{key} given twice")
        cols[key] = m.end() + 2 + (text[m.end() + 1:m.end() + 2] in ("'", '"'))  # 1-based, the value's first character
        values[key], i = _read_value(text, m.end() + 1, source, line)
        if i < len(text) and not text[i].isspace() and text[i] != "#":
            raise _fail(source, line, i + 1, "expected a blank between key='value' pairs")
    if not values:
        return None
    cmd = FlagCommand(**{k: v.strip() for k, v in values.items()}, source=source, line=line,
                      text=text.strip(), columns=cols)
    if cmd.mode not in ("manual", ""):
        raise cmd.error("mode", f"mode {cmd.mode!r} is not supported (expected 'manual')")
    return cmd


def parse(text: str, source: str = "<string>") -> list[FlagCommand]:
    """The commands of a flag template / flagcmd text; `source` names it in errors."""
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        cmd = _parse_line(raw, source, n)
        if cmd is not None:
            out.append(cmd)
    return out


def parse_file(path: str | Path) -> list[FlagCommand]:
    """The commands of a flag template file."""
    return parse(Path(path).read_text(), str(path))


# --------------------------------------------------------------------------- the MS's tables


@dataclass
class _MSInfo:
    """What selections resolve against: the MS's subtables and its first time."""

    path: str
    antennas: list[str]
    fields: list[str]
    spw_nchan: list[int]
    spw_names: list[str]
    dd_spw: np.ndarray
    dd_pol: np.ndarray
    pol_corrs: list[list[str]]
    states: list[str]
    first_day: float  # MJD seconds of 0h on the day of the first row, in the TIME column's scale
    nrows: int
    strict: bool = True  # names matching nothing are errors; else notes, and match nothing
    notes: list[str] = field(default_factory=list)  # of the command being compiled


def _col(path: str, sub: str, column: str) -> list:
    from casacore.tables import table

    p = Path(path) / sub
    if not p.is_dir():
        return []
    with table(str(p), ack=False) as t:
        if column not in t.colnames():
            return []
        if t.isscalarcol(column):
            return list(t.getcol(column)) if t.nrows() else []
        return [t.getcell(column, r) for r in range(t.nrows())]  # cells may differ in shape


def _ms_info(path: str | Path) -> _MSInfo:
    from casacore.tables import table

    path = str(path)
    with table(path, ack=False) as t:
        nrows = t.nrows()
        first = float(t.getcell("TIME", 0)) if nrows else 0.0
    return _MSInfo(
        path=path, antennas=[str(n) for n in _col(path, "ANTENNA", "NAME")],
        fields=[str(n) for n in _col(path, "FIELD", "NAME")],
        spw_nchan=[int(n) for n in _col(path, "SPECTRAL_WINDOW", "NUM_CHAN")],
        spw_names=[str(n) for n in _col(path, "SPECTRAL_WINDOW", "NAME")],
        dd_spw=np.asarray(_col(path, "DATA_DESCRIPTION", "SPECTRAL_WINDOW_ID"), dtype=np.int64),
        dd_pol=np.asarray(_col(path, "DATA_DESCRIPTION", "POLARIZATION_ID"), dtype=np.int64),
        pol_corrs=[[STOKES_NAMES.get(int(c), str(c)) for c in row] for row in _col(path, "POLARIZATION", "CORR_TYPE")],
        states=[str(s) for s in _col(path, "STATE", "OBS_MODE")],
        first_day=np.floor(first / 86400.0) * 86400.0, nrows=nrows)


# --------------------------------------------------------------------------- resolving one key


def _ids(cmd: FlagCommand, key: str, item: str, names: list[str], what: str) -> np.ndarray:
    """Ids of `names` that the list item `item` (name glob, "quoted literal name", id or id range) matches."""
    if len(item) > 1 and item[0] == item[-1] == '"':
        hits = [i for i, n in enumerate(names) if n == item[1:-1]]
    else:
        hits = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, item)]
    if hits:
        return np.asarray(hits, dtype=np.int64)
    m = re.fullmatch(r"(\d+)(?:~(\d+))?", item)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo <= hi < len(names):
            return np.arange(lo, hi + 1)
        raise _Unmatched(cmd.error(key, f"{what} id {item!r} out of range (the MS has {len(names)}: 0~{len(names) - 1})"))
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise _Unmatched(cmd.error(key, f"no {what} {item!r} in the MS (expected a name, id or id range; {what}s: {shown})"))


class _Unmatched(Exception):
    """A name or id that matches nothing in the MS (an error, or a note when not strict)."""


def _id_list(cmd: FlagCommand, key: str, text: str, names: list[str], what: str, info: _MSInfo) -> np.ndarray:
    """Boolean mask over `names` of a ``,``-separated list of name globs, ids and id ranges."""
    mask = np.zeros(len(names), dtype=bool)
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise cmd.error(key, f"expected a {what} name or id, got an empty list item")
        if item == "*":
            mask[:] = True
        elif item.startswith("!"):
            raise cmd.error(key, "'!' negates a whole expression: write '!A' or 'A;!B', not 'A,!B'")
        else:
            try:
                mask[_ids(cmd, key, item, names, what)] = True
            except _Unmatched as exc:
                if info.strict:
                    raise exc.args[0] from None
                info.notes.append(str(exc.args[0]))
    return mask


_BASELINE_OP = re.compile(r"^(.*?)(&&&|&&|&)(.*)$")


def _antenna_expr(cmd: FlagCommand, expr: str, info: _MSInfo) -> tuple[bool, np.ndarray]:
    """(negated, baseline mask [nant, nant]) of one antenna expression (see the module doc)."""
    negated = expr.startswith("!")
    expr = expr[1:].strip() if negated else expr
    m = _BASELINE_OP.match(expr)
    left_text, op, right_text = (m.group(1).strip(), m.group(2), m.group(3).strip()) if m else (expr, "", "")
    names = info.antennas
    left = _id_list(cmd, "antenna", left_text, names, "antenna", info)
    n = len(names)
    if not left.any():  # only when lenient: names the MS lacks select nothing, negated or not
        return False, np.zeros((n, n), dtype=bool)
    auto = np.eye(n, dtype=bool)
    if op == "&&&":
        if right_text:
            raise cmd.error("antenna", f"expected nothing after '&&&' (auto-correlations of the list), got {right_text!r}")
        return negated, auto & left[:, None]
    right = np.ones(n, dtype=bool) if (not op or right_text == "*") else (
        left if not right_text else _id_list(cmd, "antenna", right_text, names, "antenna", info))
    pairs = (left[:, None] & right[None, :]) | (right[:, None] & left[None, :])
    return negated, pairs if op == "&&" else pairs & ~auto


def _antennas(cmd: FlagCommand, info: _MSInfo) -> Optional[np.ndarray]:
    if not cmd.antenna:
        return None
    n = len(info.antennas)
    union, minus, any_positive = np.zeros((n, n), bool), np.zeros((n, n), bool), False
    for expr in cmd.antenna.split(";"):
        if not expr.strip():
            raise cmd.error("antenna", "expected an antenna expression, got an empty one")
        negated, mask = _antenna_expr(cmd, expr.strip(), info)
        if negated:
            minus |= mask
        else:
            union |= mask
            any_positive = True
    return (union if any_positive else np.ones((n, n), bool)) & ~minus


def _channels(cmd: FlagCommand, text: str, nchan: int, spw: int) -> np.ndarray:
    mask = np.zeros(nchan, dtype=bool)
    for part in text.split(";"):
        part = part.strip()
        if "^" in part:
            raise cmd.error("spw", f"channel steps ('^') are not supported: {part!r}")
        if part == "*":
            mask[:] = True
            continue
        m = re.fullmatch(r"(\d+)(?:~(\d+))?", part)
        if not m:
            raise cmd.error("spw", f"expected channels 'a~b' or 'a' separated by ';', got {part!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo > hi or hi >= nchan:
            raise cmd.error("spw", f"channels {part!r} out of range: spw {spw} has {nchan} channels (0~{nchan - 1})")
        mask[lo:hi + 1] = True
    return mask


def _spws(cmd: FlagCommand, info: _MSInfo) -> Optional[dict[int, np.ndarray]]:
    """Channel mask per selected spw, or None for all channels of all spws."""
    if not cmd.spw:
        return None
    out: dict[int, np.ndarray] = {}
    for item in cmd.spw.split(","):
        spw_text, _, chan_text = item.strip().partition(":")
        if spw_text.strip() == "*":
            ids = np.arange(len(info.spw_nchan))
        else:
            names = info.spw_names if re.search(r"[^\d~\s]", spw_text) else [str(i) for i in range(len(info.spw_nchan))]
            ids = np.flatnonzero(_id_list(cmd, "spw", spw_text.strip(), names, "spw", info))
        for s in ids:
            s = int(s)
            nchan = info.spw_nchan[s]
            mask = _channels(cmd, chan_text, nchan, s) if chan_text.strip() else np.ones(nchan, bool)
            out[s] = out.get(s, np.zeros(nchan, bool)) | mask
    return out


def _scans(cmd: FlagCommand) -> Optional[list[tuple[float, float]]]:
    if not cmd.scan:
        return None
    out = []
    for item in cmd.scan.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:~(\d+))?|([<>])\s*(\d+)", item)
        if not m:
            raise cmd.error("scan", f"expected scan numbers like '1,3~5', '>2' or '<4', got {item!r}")
        if m.group(3):
            v = float(m.group(4))
            out.append((v + 1, np.inf) if m.group(3) == ">" else (-np.inf, v - 1))
        else:
            out.append((float(m.group(1)), float(m.group(2) or m.group(1))))
    return out


_TIME = re.compile(r"^(?:(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?:[/T](?=\d)|$))?"
                   r"(?:(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?$")


def _time(cmd: FlagCommand, text: str, day: float) -> tuple[float, float]:
    """(MJD seconds of `text`, MJD seconds of its day); `day` is used when `text` has no date."""
    m = _TIME.match(text.strip())
    if not text.strip() or not m:
        raise cmd.error("timerange", f"expected a time 'YYYY/MM/DD/hh:mm:ss' or 'hh:mm:ss', got {text.strip()!r}")
    if m.group(1):
        try:
            date = _dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError as exc:
            raise cmd.error("timerange", f"bad date in {text.strip()!r}: {exc}") from None
        day = (date - _MJD0).days * 86400.0
    hours, minutes = int(m.group(4) or 0), int(m.group(5) or 0)
    seconds = float(m.group(6) or 0.0)
    if hours > 24 or minutes > 59 or seconds >= 60.0 + 1e-9:
        raise cmd.error("timerange", f"bad time of day in {text.strip()!r}")
    return day + hours * 3600.0 + minutes * 60.0 + seconds, day


def _times(cmd: FlagCommand, info: _MSInfo) -> Optional[list[tuple[str, float, float]]]:
    """(kind, t0, t1) per timerange item: kind 'range' (TIME in [t0, t1]) or 'at' (t0 within the integration)."""
    if not cmd.timerange:
        return None
    out = []
    for item in cmd.timerange.split(","):
        item = item.strip()
        if item[:1] in "<>" and item:
            t, _ = _time(cmd, item[1:], info.first_day)
            out.append(("range", t, np.inf) if item[0] == ">" else ("range", -np.inf, t))
        elif "~" in item:
            a, _, b = item.partition("~")
            t0, day = _time(cmd, a, info.first_day)
            t1, _ = _time(cmd, b, day)
            if t1 < t0:
                raise cmd.error("timerange", f"the range {item!r} ends before it starts")
            out.append(("range", t0, t1))
        else:
            t, _ = _time(cmd, item, info.first_day)
            out.append(("at", t, t))
    return out


def _corrs(cmd: FlagCommand) -> Optional[set[str]]:
    if not cmd.correlation:
        return None
    out = {c.strip().upper() for c in cmd.correlation.split(",")}
    bad = sorted(out - set(STOKES_NAMES.values()))
    if bad:
        raise cmd.error("correlation", f"unknown correlation {bad[0]!r} (expected XX, YY, XY, YX, RR, LL, RL or LR)")
    return out


def _intents(cmd: FlagCommand, info: _MSInfo) -> Optional[np.ndarray]:
    if not cmd.intent:
        return None
    mask = np.zeros(len(info.states), dtype=bool)
    for pat in (p.strip() for p in cmd.intent.split(",")):
        hit = np.array([fnmatch.fnmatchcase(s, pat) if "*" in pat else pat in s for s in info.states], dtype=bool)
        if not hit.any():
            err = cmd.error("intent", f"no STATE OBS_MODE of the MS matches {pat!r}")
            if info.strict:
                raise err
            info.notes.append(str(err))
        mask |= hit
    return mask


# --------------------------------------------------------------------------- one command, compiled


@dataclass
class _Compiled:
    """A command resolved against one MS."""

    baselines: Optional[np.ndarray]
    fields: Optional[np.ndarray]
    scans: Optional[list[tuple[float, float]]]
    times: Optional[list[tuple[str, float, float]]]
    states: Optional[np.ndarray]
    dd_chan: list[Optional[np.ndarray]]  # channel mask per data description (None: dd not selected)
    dd_corr: list[Optional[np.ndarray]]  # correlation mask per data description
    notes: list[str]  # names the MS lacks (lenient commands)


def _compile(cmd: FlagCommand, info: _MSInfo) -> _Compiled:
    info.strict, info.notes = not cmd.lenient, []
    spws, corrs = _spws(cmd, info), _corrs(cmd)
    fields = _id_list(cmd, "field", cmd.field, info.fields, "field", info) if cmd.field else None
    dd_chan, dd_corr = [], []
    for spw, pol in zip(info.dd_spw, info.dd_pol, strict=True):
        chan = np.ones(info.spw_nchan[spw], bool) if spws is None else spws.get(int(spw))
        names = info.pol_corrs[pol]
        corr = np.ones(len(names), bool) if corrs is None else np.array([c in corrs for c in names], bool)
        ok = chan is not None and chan.any() and corr.any()
        dd_chan.append(chan if ok else None)
        dd_corr.append(corr if ok else None)
    return _Compiled(_antennas(cmd, info), fields, _scans(cmd), _times(cmd, info), _intents(cmd, info),
                     dd_chan, dd_corr, info.notes)


def _lookup(mask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """mask[ids], False for ids outside the mask (e.g. STATE_ID -1)."""
    ok = (ids >= 0) & (ids < len(mask))
    out = np.zeros(len(ids), dtype=bool)
    out[ok] = mask[ids[ok]]
    return out


def _row_mask(c: _Compiled, meta: dict[str, np.ndarray]) -> np.ndarray:
    """The rows of a chunk (`meta`: its columns) the command selects, before channels and correlations."""
    if all(d is None for d in c.dd_chan) or (c.baselines is not None and not c.baselines.any()):
        return np.zeros(len(meta["TIME"]), dtype=bool)
    m = _lookup(np.array([d is not None for d in c.dd_chan], dtype=bool), meta["DATA_DESC_ID"])
    if c.baselines is not None:
        nant = len(c.baselines)
        a1, a2 = meta["ANTENNA1"], meta["ANTENNA2"]
        ok = (a1 >= 0) & (a1 < nant) & (a2 >= 0) & (a2 < nant)
        m &= ok & c.baselines[np.where(ok, a1, 0), np.where(ok, a2, 0)]
    if c.fields is not None:
        m &= _lookup(c.fields, meta["FIELD_ID"])
    if c.states is not None:
        m &= _lookup(c.states, meta["STATE_ID"])
    if c.scans is not None:
        s = meta["SCAN_NUMBER"]
        m &= np.any([(s >= lo) & (s <= hi) for lo, hi in c.scans], axis=0)
    if c.times is not None:
        t, half = meta["TIME"], meta["INTERVAL"] / 2.0
        m &= np.any([(t >= t0) & (t <= t1) if kind == "range" else (t - half < t0) & (t0 <= t + half)
                     for kind, t0, t1 in c.times], axis=0)
    return m


_META = ("TIME", "INTERVAL", "ANTENNA1", "ANTENNA2", "FIELD_ID", "SCAN_NUMBER", "STATE_ID", "DATA_DESC_ID")


def _chunks(tab, nrows: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    for start in range(0, nrows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, nrows - start)
        yield start, {c: np.asarray(tab.getcol(c, start, n)) for c in _META}


def _selections(tab, info: _MSInfo, compiled: list[_Compiled]) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(start row of the chunk, command index, data description, selected rows of the chunk as local
    indices) for every chunk, command and data description with rows selected."""
    for start, meta in _chunks(tab, info.nrows):
        dd = meta["DATA_DESC_ID"]
        for k, c in enumerate(compiled):
            rows = np.flatnonzero(_row_mask(c, meta))
            for d in np.unique(dd[rows]):
                yield start, k, int(d), rows[dd[rows] == d]


def select(ms_path: str | Path, commands: list[FlagCommand]) -> Iterator[Selection]:
    """What each command selects: one `Selection` per (chunk of rows, command, data description)
    with rows, in command order within a chunk. Raises `FlagTemplateError` before yielding
    anything if a command does not resolve against the MS."""
    from casacore.tables import table

    info = _ms_info(ms_path)
    compiled = [_compile(c, info) for c in commands]
    with table(str(ms_path), ack=False) as tab:
        for start, k, d, rows in _selections(tab, info, compiled):
            yield Selection(rows + start, compiled[k].dd_chan[d], compiled[k].dd_corr[d])


# --------------------------------------------------------------------------- applying


def _apply_dd(tab, rows: np.ndarray, picks: list[tuple[int, np.ndarray]], compiled: list[_Compiled], d: int,
              counts: list[CommandCount]) -> int:
    """Flag `rows` (absolute, one data description `d`) for the commands in `picks` ((command, rows
    of `rows` it selects as a bool mask)), in order; the number of rows whose FLAG_ROW was set."""
    sub = tab.selectrows(rows)
    flag = np.asarray(sub.getcol("FLAG"), dtype=bool)
    flag_row = np.asarray(sub.getcol("FLAG_ROW"), dtype=bool)
    flag |= flag_row[:, None, None]  # a flagged row is flagged in every channel and correlation
    for k, in_rows in picks:
        cube = in_rows[:, None, None] & compiled[k].dd_chan[d][None, :, None] & compiled[k].dd_corr[d][None, None, :]
        new = cube & ~flag
        cnt = counts[k]
        cnt.rows_selected += int(in_rows.sum())
        cnt.rows_newly_flagged += int(new.any(axis=(1, 2)).sum())
        cnt.visibilities_selected += int(cube.sum())
        cnt.newly_flagged += int(new.sum())
        cnt.already_flagged += int((cube & flag).sum())
        flag |= cube
    whole = flag.all(axis=(1, 2)) & ~flag_row
    sub.putcol("FLAG", flag)
    sub.putcol("FLAG_ROW", flag_row | whole)
    sub.close()
    return int(whole.sum())


def _count_flags(tab, nrows: int) -> tuple[int, int]:
    """(visibilities, flagged visibilities) of the MS, FLAG_ROW counting as all flagged."""
    total = flagged = 0
    for start in range(0, nrows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, nrows - start)
        dd = np.asarray(tab.getcol("DATA_DESC_ID", start, n))
        for d in np.unique(dd):
            sub = tab.selectrows(np.flatnonzero(dd == d) + start)
            f = np.asarray(sub.getcol("FLAG"), dtype=bool) | np.asarray(sub.getcol("FLAG_ROW"), bool)[:, None, None]
            total, flagged = total + f.size, flagged + int(f.sum())
            sub.close()
    return total, flagged


def apply(ms_path: str | Path, commands: list[FlagCommand]) -> FlagReport:
    """Flag what `commands` select in the writable MS `ms_path` (FLAG; FLAG_ROW where a whole row
    is flagged); counts per command, in order. Nothing is written if a command does not resolve."""
    from casacore.tables import table

    info = _ms_info(ms_path)
    compiled = [_compile(c, info) for c in commands]
    counts = [CommandCount(where=c.where, reason=c.reason, notes=k.notes) for c, k in zip(commands, compiled, strict=True)]
    rows_set = 0
    with table(str(ms_path), readonly=False, ack=False) as tab:
        total, before = _count_flags(tab, info.nrows)
        for start, meta in _chunks(tab, info.nrows):
            masks = [_row_mask(c, meta) for c in compiled]
            dd = meta["DATA_DESC_ID"]
            hit = np.any(masks, axis=0) if masks else np.zeros(len(dd), dtype=bool)
            for d in np.unique(dd[hit]):
                local = np.flatnonzero(hit & (dd == d))
                picks = [(k, m[local]) for k, m in enumerate(masks) if m[local].any()]
                rows_set += _apply_dd(tab, local + start, picks, compiled, int(d), counts)
        tab.flush()
    return FlagReport(ms=str(ms_path), commands=counts, visibilities=total, flagged_before=before,
                      flagged_after=before + sum(c.newly_flagged for c in counts), rows_flag_row_set=rows_set)


# --------------------------------------------------------------------------- online flags


def online_flags(ms_path: str | Path) -> list[FlagCommand]:
    """The FLAG_CMD subtable's commands not yet applied (APPLIED false) of TYPE 'FLAG' (or empty),
    parsed like a template (source ``<ms>/FLAG_CMD``, line = row + 1), lenient (antennas or spws
    the MS lacks, e.g. after a split, are skipped as CASA's flagcmd skips them); the REASON column
    fills in a command's reason. [] when FLAG_CMD is absent or empty."""
    from casacore.tables import table

    path = Path(ms_path) / "FLAG_CMD"
    if not (path / "table.dat").exists():
        return []
    out = []
    with table(str(path), ack=False) as t:
        if t.nrows() == 0:
            return []
        get: Callable[[str], list] = lambda c: list(t.getcol(c)) if c in t.colnames() else [None] * t.nrows()
        cols = zip(get("TYPE"), get("COMMAND"), get("APPLIED"), get("REASON"), strict=True)
        for row, (kind, command, applied, reason) in enumerate(cols):
            if applied or (kind or "FLAG").strip().upper() != "FLAG" or not (command or "").strip():
                continue
            cmd = _parse_line(str(command), str(path), row + 1)
            if cmd is not None:
                update = {"lenient": True} | ({} if cmd.reason or not reason else {"reason": str(reason)})
                out.append(cmd.model_copy(update=update))
    return out
