"""The pipeline's cont.dat file (version 3) and the channel selection it implies.

Layout: one block per field, one sub-block per spw, continuum ranges in GHz with a frame::

    Field: NGC253

    SpectralWindow: 25
    Flags: ALLCONT
    214.4892469235~216.2235771905GHz LSRK
    214.0~214.2GHz LSRK

    SpectralWindow: 27
    NONE

`NONE` means no continuum in that spw, `ALL` all channels. A range may omit its frame (old
files, where it meant TOPO): it is kept as frame None, "the spw's own frame". Blank lines and
lines whose first non-blank character is ``#`` are ignored. The reader is lenient on
whitespace (CRLF, indentation, blanks around ``:`` and ``~``) and strict on everything else:
every problem is a `ContDatError` ``"source:line:col: what"`` (lines and columns from 1, a tab
counts as one column). Frequencies are read exactly (decimal) and written in GHz with the
fewest digits that give back the same float, so ``parse(format(c)) == c`` and
``format(parse(text))`` is a fixed point after one round.
"""

from __future__ import annotations

import math
import re
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from almarules.engine.io import write_bytes_atomic

__all__ = [
    "FRAMES", "UNITS", "EDGE_TOLERANCE", "ContDatError", "ContRange", "SpwContinuum", "ContDat",
    "parse_contdat", "read_contdat", "format_contdat", "write_contdat", "channel_mask", "lookup",
]

FRAMES = ("LSRK", "TOPO", "BARY", "SOURCE")
UNITS = {"GHz": 9, "MHz": 6, "kHz": 3, "Hz": 0}  # unit -> power of ten to Hz
# a channel centre this fraction of its width outside a range still counts as inside (rounding)
EDGE_TOLERANCE = 1e-3

Kind = Literal["ranges", "none", "all"]


class ContDatError(Exception):
    """A cont.dat that cannot be read: ``"source:line:col: what is wrong"``."""

    def __init__(self, message: str, *, source: Optional[str] = None, line: int = 0, column: int = 0):
        super().__init__(message)
        self.source, self.line, self.column = source, line, column


# ---------------------------------------------------------------- the data
class ContRange(BaseModel):
    """One continuum range [low_hz, high_hz] (Hz, inclusive) in `frame` (None: the spw's frame)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low_hz: float
    high_hz: float
    frame: Optional[str] = None

    @field_validator("low_hz", "high_hz")
    @classmethod
    def _frequency(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"frequency must be finite and >= 0 Hz, not {v!r}")
        return v + 0.0  # -0.0 -> 0.0

    @field_validator("frame")
    @classmethod
    def _frame(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v not in FRAMES:
            raise ValueError(f"unknown frame {v!r} (expected one of {', '.join(FRAMES)})")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> "ContRange":
        if self.low_hz > self.high_hz:
            raise ValueError(f"low {self.low_hz!r} Hz > high {self.high_hz!r} Hz")
        return self


class SpwContinuum(BaseModel):
    """The continuum selection of one spw: ranges (kind "ranges"), nothing ("none") or all ("all")."""

    model_config = ConfigDict(extra="forbid")

    spw: int
    ranges: list[ContRange] = []
    flags: list[str] = []  # ALLCONT, LOWBANDWIDTH, ... in file order
    kind: Kind = "ranges"

    @field_validator("spw")
    @classmethod
    def _spw(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"spw id must be >= 0, not {v}")
        return v

    @field_validator("flags")
    @classmethod
    def _flags(cls, v: list[str]) -> list[str]:
        for f in v:
            if not _FLAG.fullmatch(f):
                raise ValueError(f"bad flag {f!r} (upper-case letters, digits and _)")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate flags in {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "SpwContinuum":
        if self.kind == "ranges" and not self.ranges:
            raise ValueError(f"spw {self.spw}: kind 'ranges' needs at least one range")
        if self.kind != "ranges" and self.ranges:
            raise ValueError(f"spw {self.spw}: kind {self.kind!r} takes no ranges")
        return self


class ContDat(BaseModel):
    """A whole cont.dat: field name -> spw id -> selection, in file order."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, dict[int, SpwContinuum]] = {}

    @model_validator(mode="after")
    def _keys(self) -> "ContDat":
        for name, spws in self.fields.items():
            if not name or name != name.strip() or "\n" in name or "\r" in name:
                raise ValueError(f"bad field name {name!r} (non-empty, one line, no outer blanks)")
            for key, sel in spws.items():
                if key != sel.spw:
                    raise ValueError(f"field {name!r}: key {key} holds spw {sel.spw}")
        return self


def lookup(contdat: ContDat, field: str, spw: int) -> Optional[SpwContinuum]:
    """The selection of (`field`, `spw`), or None when the file does not mention it."""
    return contdat.fields.get(field, {}).get(spw)


# ---------------------------------------------------------------- reading
_FIELD = re.compile(r"Field\s*:")
_SPW = re.compile(r"SpectralWindow\s*:")
_FLAGS = re.compile(r"Flags\s*:")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_TOKEN = re.compile(r"\S+")
_FLAG_TOKEN = re.compile(r"[^\s,]+")
_FLAG = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclasses.dataclass
class _Block:
    """The spw sub-block being read."""

    spw: int
    line: int
    column: int
    ranges: list[ContRange] = dataclasses.field(default_factory=list)
    flags: list[str] = dataclasses.field(default_factory=list)
    kind: Optional[str] = None  # "none" / "all" once NONE / ALL is seen


class _Reader:
    """Line-by-line state: the current field and spw block."""

    def __init__(self, source: str):
        self.source = source
        self.fields: dict[str, dict[int, SpwContinuum]] = {}
        self.field_lines: dict[str, int] = {}
        self.spw_lines: dict[int, int] = {}  # of the current field
        self.field: Optional[str] = None
        self.block: Optional[_Block] = None
        self.line = 0

    def fail(self, column: int, what: str, line: Optional[int] = None) -> ContDatError:
        line = self.line if line is None else line
        return ContDatError(f"{self.source}:{line}:{column}: {what}", source=self.source, line=line,
                            column=column)

    def feed(self, text: str) -> None:
        """Read one line (without its newline)."""
        self.line += 1
        start = len(text) - len(text.lstrip())
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            return
        col = start + 1
        if m := _FIELD.match(text, start):
            self.start_field(text, m.end())
        elif m := _SPW.match(text, start):
            self.start_spw(text, col, m.end())
        elif m := _FLAGS.match(text, start):
            self.add_flags(text, col, m.end())
        elif stripped in ("NONE", "ALL"):
            self.set_kind(stripped.lower(), col)
        elif _NUMBER.match(text, start):
            self.add_range(_parse_range(text, start, self.fail), col)
        else:
            raise self.fail(col, f"expected 'Field:', 'SpectralWindow:', 'Flags:', NONE, ALL or a "
                                 f"frequency range, not {stripped!r}")

    def close_block(self) -> None:
        b = self.block
        if b is None:
            return
        if b.kind is None and not b.ranges:
            raise self.fail(b.column, f"SpectralWindow {b.spw} has no ranges: write NONE (no continuum) "
                                      f"or ALL (all channels)", line=b.line)
        kind = b.kind or "ranges"
        assert self.field is not None
        self.fields[self.field][b.spw] = SpwContinuum(spw=b.spw, ranges=b.ranges, flags=b.flags, kind=kind)
        self.block = None

    def start_field(self, text: str, end: int) -> None:
        self.close_block()
        name = text[end:].strip()
        if not name:
            raise self.fail(end + 1, "missing field name after 'Field:'")
        col = end + 1 + (len(text[end:]) - len(text[end:].lstrip()))
        if name in self.fields:
            raise self.fail(col, f"duplicate Field {name!r} (first at line {self.field_lines[name]})")
        self.fields[name], self.field_lines[name], self.spw_lines = {}, self.line, {}
        self.field = name

    def start_spw(self, text: str, col: int, end: int) -> None:
        self.close_block()
        m = _TOKEN.search(text, end)
        if m is None:
            raise self.fail(end + 1, "missing spw id after 'SpectralWindow:'")
        value, vcol = m.group(), m.start() + 1
        if not value.isascii() or not value.isdigit():
            raise self.fail(vcol, f"spw id must be a non-negative integer, not {value!r}")
        if rest := _TOKEN.search(text, m.end()):
            raise self.fail(rest.start() + 1, f"unexpected {rest.group()!r} after the spw id")
        if self.field is None:
            raise self.fail(col, "'SpectralWindow:' before any 'Field:' line")
        spw = int(value)
        if spw in self.spw_lines:
            raise self.fail(vcol, f"duplicate SpectralWindow {spw} in field {self.field!r} "
                                  f"(first at line {self.spw_lines[spw]})")
        self.spw_lines[spw] = self.line
        self.block = _Block(spw, self.line, col)

    def current(self, col: int, what: str) -> _Block:
        """The open spw block, or an error for `what` found outside one."""
        if self.field is None:
            raise self.fail(col, f"{what} before any 'Field:' line")
        if self.block is None:
            raise self.fail(col, f"{what} before any 'SpectralWindow:' line in field {self.field!r}")
        return self.block

    def add_flags(self, text: str, col: int, end: int) -> None:
        block = self.current(col, "'Flags:'")
        tokens = list(_FLAG_TOKEN.finditer(text, end))
        if not tokens:
            raise self.fail(end + 1, "missing flags after 'Flags:'")
        for m in tokens:
            flag = m.group()
            if not _FLAG.fullmatch(flag):
                raise self.fail(m.start() + 1, f"bad flag {flag!r} (upper-case letters, digits and _)")
            if flag in block.flags:
                raise self.fail(m.start() + 1, f"duplicate flag {flag!r}")
            block.flags.append(flag)

    def set_kind(self, kind: str, col: int) -> None:
        word = kind.upper()
        block = self.current(col, word)
        if block.kind is not None:
            raise self.fail(col, f"{word} in SpectralWindow {block.spw}, which is already "
                                 f"{block.kind.upper()}")
        if block.ranges:
            raise self.fail(col, f"{word} in SpectralWindow {block.spw}, which already has ranges")
        block.kind = kind

    def add_range(self, rng: ContRange, col: int) -> None:
        block = self.current(col, "range")
        if block.kind is not None:
            raise self.fail(col, f"range in SpectralWindow {block.spw}, which is {block.kind.upper()}")
        block.ranges.append(rng)


def _to_hz(number: str, unit: str) -> float:
    """The exact decimal `number` `unit` in Hz, rounded once to a float."""
    d = Decimal(number).as_tuple()
    return float(Decimal((d.sign, d.digits, int(d.exponent) + UNITS[unit])))


def _parse_range(text: str, pos: int, fail) -> ContRange:
    """``low ~ high UNIT [FRAME]`` starting at `pos` (a number is known to start there)."""

    def skip(p: int) -> int:
        while p < len(text) and text[p].isspace():
            p += 1
        return p

    low = _NUMBER.match(text, pos)
    p = skip(low.end())
    if not text.startswith("~", p):
        raise fail(p + 1, "expected '~' after the low frequency")
    p = skip(p + 1)
    high = _NUMBER.match(text, p)
    if high is None:
        raise fail(p + 1, "expected a number after '~'")
    p = skip(high.end())
    unit = _TOKEN.match(text, p)
    if unit is None:
        raise fail(p + 1, f"expected a unit ({', '.join(UNITS)}) after the high frequency")
    if unit.group() not in UNITS:
        raise fail(p + 1, f"unknown unit {unit.group()!r} (expected {', '.join(UNITS)})")
    frame = _TOKEN.search(text, unit.end())
    if frame is not None and frame.group() not in FRAMES:
        raise fail(frame.start() + 1, f"unknown frame {frame.group()!r} (expected {', '.join(FRAMES)})")
    if frame is not None and (extra := _TOKEN.search(text, frame.end())):
        raise fail(extra.start() + 1, f"unexpected {extra.group()!r} after the frame")
    lo, hi = _to_hz(low.group(), unit.group()), _to_hz(high.group(), unit.group())
    for value, m in ((lo, low), (hi, high)):
        if not math.isfinite(value):
            raise fail(m.start() + 1, f"frequency {m.group()}{unit.group()} is out of range")
    if lo > hi:
        raise fail(low.start() + 1, f"low frequency {low.group()} > high frequency {high.group()}")
    return ContRange(low_hz=lo, high_hz=hi, frame=frame.group() if frame else None)


def parse_contdat(text: str, source: str = "cont.dat") -> ContDat:
    """Read cont.dat `text`; errors are `ContDatError` naming `source`, line and column."""
    reader = _Reader(source)
    for line in text.split("\n"):
        reader.feed(line)
    reader.close_block()
    return ContDat(fields=reader.fields)


def read_contdat(path: str | Path) -> ContDat:
    """Read the cont.dat at `path` (UTF-8); errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ContDatError(f"{path}: cannot read: {e.strerror or e}", source=str(path)) from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1  # in bytes
        raise ContDatError(f"{path}:{line}:{column}: not UTF-8 text", source=str(path), line=line,
                           column=column) from e
    return parse_contdat(text, source=str(path))


# ---------------------------------------------------------------- writing
def _ghz(hz: float) -> str:
    """`hz` as decimal GHz with the fewest digits that read back as the same float."""
    d = Decimal(repr(hz)).as_tuple()
    text = format(Decimal((d.sign, d.digits, int(d.exponent) - 9)).normalize(), "f")
    return text if "." in text else text + ".0"


def _range_line(r: ContRange) -> str:
    line = f"{_ghz(r.low_hz)}~{_ghz(r.high_hz)}GHz"
    return f"{line} {r.frame}" if r.frame else line


def format_contdat(contdat: ContDat) -> str:
    """The version 3 text of `contdat`: fields and spws in order, ranges in GHz."""
    out: list[str] = []
    for name, spws in contdat.fields.items():
        out += [f"Field: {name}", ""]
        for sel in spws.values():
            out.append(f"SpectralWindow: {sel.spw}")
            if sel.flags:
                out.append("Flags: " + " ".join(sel.flags))
            if sel.kind == "ranges":
                out += [_range_line(r) for r in sel.ranges]
            else:
                out.append(sel.kind.upper())
            out.append("")
    return "".join(line + "\n" for line in out)


def write_contdat(path: str | Path, contdat: ContDat) -> None:
    """Write `contdat` to `path` atomically (UTF-8)."""
    text = format_contdat(contdat)
    write_bytes_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


# ---------------------------------------------------------------- channel selection
def channel_mask(freqs_hz: np.ndarray, chan_widths_hz: np.ndarray | float, sel: SpwContinuum) -> np.ndarray:
    """Which channels of an spw lie in the continuum ranges of `sel` (bool, one per channel).

    `freqs_hz` are the channel centres (Hz) in the frame of the ranges (the caller converts;
    frames are not checked here), increasing or decreasing; `chan_widths_hz` (Hz, scalar or one
    per channel, sign ignored). Like the pipeline, which turns ranges into channel indices by
    the channel centres, a channel is selected when its centre lies in a range, inclusive at
    both ends: ``low - tol <= centre <= high + tol`` with ``tol = EDGE_TOLERANCE * |width|``
    (a thousandth of a channel, so edges written at a channel centre and rounded to 0.1 Hz in
    the file still include that channel). Kind "all" selects every channel, "none" none.
    """
    freqs = np.asarray(freqs_hz, dtype=float)
    if freqs.ndim != 1:
        raise ValueError(f"freqs_hz must be one-dimensional, not of shape {freqs.shape}")
    widths = np.asarray(chan_widths_hz, dtype=float)
    if widths.ndim > 1 or (widths.ndim == 1 and widths.shape != freqs.shape):
        raise ValueError(f"chan_widths_hz must be a scalar or of shape {freqs.shape}, not {widths.shape}")
    if sel.kind != "ranges":
        return np.full(freqs.shape, sel.kind == "all", dtype=bool)
    tol = EDGE_TOLERANCE * np.abs(widths)
    mask = np.zeros(freqs.shape, dtype=bool)
    for r in sel.ranges:
        mask |= (freqs >= r.low_hz - tol) & (freqs <= r.high_hz + tol)
    return mask
