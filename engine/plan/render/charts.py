"""Small inline SVG charts for the plan's HTML: pure functions from numbers to SVG text.

No external assets and no `url(...)` references (no markers, gradients or fonts): each chart is
a `<svg role="img">` with a `<title>` and `<desc>` (its accessible name and description), axis
labels with units, and the values written beside the bars, so it reads without colour.

- `size_panel`: one bar per cascade step (before, then after each step) of a size in GB on a
  log10 axis, with the limit as a dashed line; bars above the limit are red, within it green.
- `runtime_bars`: one horizontal bar per image (hours, linear axis from 0) and a bar for the
  total, with the run-time requirement as a dashed line; the total is red when it exceeds it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from typing import Optional, Sequence

RED, GREEN, BLUE, INK, MUTED, GRID = "#c62828", "#2e7d32", "#1565c0", "#1b1b1b", "#5f6368", "#dcdfe3"
_SCALE = {"b": 1e-9, "byte": 1e-9, "kb": 1e-6, "mb": 1e-3, "gb": 1.0, "tb": 1e3, "pb": 1e6,  # to GB
          "s": 1 / 3600, "min": 1 / 60, "h": 1.0, "d": 24.0, "day": 24.0, "days": 24.0}  # to hours
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")


def parse_quantity(text: str, unit: str) -> Optional[float]:
    """'308.3 GB' -> 308.3 (unit 'GB'), '2 TB' -> 2000.0, '90 min' -> 1.5 (unit 'h'), a bare
    number is taken in `unit`; None for anything else ('unknown', ranges, words)."""
    m = _NUMBER.match(text)
    if m is None:
        return None
    got = (m.group(2) or unit).lower()
    want = unit.lower()
    if got not in _SCALE or want not in _SCALE:
        return float(m.group(1)) if got == want else None
    return float(m.group(1)) * _SCALE[got] / _SCALE[want]


def _f(x: float) -> str:
    """A coordinate with at most one decimal ('52', '67.2'), never '-0'."""
    s = f"{x:.1f}".removesuffix(".0")
    return "0" if s == "-0" else s


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 10, fill: str = INK,
          weight: str = "normal") -> str:
    """A text element; the chart's defaults (10 px, ink, start) are not repeated."""
    extra = "" if anchor == "start" else f' text-anchor="{anchor}"'
    extra += "" if size == 10 else f' font-size="{size}"'
    extra += "" if fill == INK else f' fill="{fill}"'
    extra += ' font-weight="bold"' if weight == "bold" else ""
    return f'<text x="{_f(x)}" y="{_f(y)}"{extra}>{escape(s)}</text>'


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> str:
    return (f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="10" '
            f'fill="{INK}" aria-label="{escape(title)}"><title>{escape(title)}</title><desc>{escape(desc)}</desc>'
            + "".join(body) + "</svg>")


def _lines(label: str, chars: int, most: int = 2) -> list[str]:
    """The label's words in at most `most` lines of about `chars` characters (the last cut with '…')."""
    lines: list[str] = []
    for word in label.split():
        if lines and len(lines[-1]) + 1 + len(word) <= chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][: chars - 1] + "…"
    return [ln if len(ln) <= chars else ln[: chars - 1] + "…" for ln in lines]


def _g(x: float) -> str:
    """A tick label: 0.1, 1, 10, 100, 1000, 1e+04 ..."""
    return f"{x:g}"


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value (None: unknown, drawn as a gap) and the text written beside it."""

    label: str
    value: Optional[float]
    text: str


def size_panel(title: str, unit: str, bars: Sequence[Bar], limit: Optional[float], limit_text: str = "",
               width: int = 420, height: int = 230) -> str:
    """Vertical bars on a log10 axis (unit `unit`), a dashed line at `limit`; bars above the
    limit red, within it green (grey when there is no limit)."""
    left, right, top, bottom = 46, 50, 26, 58
    known = [b.value for b in bars if b.value is not None and b.value > 0]
    if limit is not None and limit > 0:
        known.append(limit)
    lo = 10 ** math.floor(math.log10(min(known))) if known else 1.0
    hi = 10 ** math.ceil(math.log10(max(known) * 1.05)) if known else 10.0
    hi = max(hi, lo * 10)
    plot_h, plot_w = height - top - bottom, width - left - right

    def y(v: float) -> float:
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    body = [_text(0, 15, f"{title} ({unit}, log scale)", size=12, weight="bold")]
    d = lo
    while d <= hi * 1.0001:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(y(d))}" y2="{_f(y(d))}" stroke="{GRID}"/>')
        body.append(_text(left - 4, y(d) + 4, _g(d), "end", 10, MUTED))
        d *= 10
    slot = plot_w / max(len(bars), 1)
    bw = min(34.0, slot * 0.6)
    for i, b in enumerate(bars):
        cx = left + slot * (i + 0.5)
        if b.value is not None and b.value > 0:
            over = limit is not None and b.value > limit
            colour = (RED if over else GREEN) if limit is not None else MUTED
            yt = y(max(b.value, lo))
            body.append(f'<rect x="{_f(cx - bw / 2)}" y="{_f(yt)}" width="{_f(bw)}" height="{_f(top + plot_h - yt)}" '
                        f'fill="{colour}"/>')
            body.append(_text(cx, yt - 3, b.text, "middle", 10))
        else:
            body.append(_text(cx, top + plot_h - 3, b.text or "?", "middle", 10, MUTED))
        for j, line in enumerate(_lines(b.label, max(int(slot / 5.6), 4))):
            body.append(_text(cx, top + plot_h + 13 + 12 * j, line, "middle"))
    if limit is not None and limit > 0:
        yl = y(limit)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(yl)}" y2="{_f(yl)}" stroke="{INK}" '
                    f'stroke-width="1.5" stroke-dasharray="6 4"/>')
        body.append(_text(width - right + 4, yl - 2, "limit", weight="bold"))
        body.append(_text(width - right + 4, yl + 10, limit_text, weight="bold"))
    body.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="{MUTED}"/>')
    body.append(_text(left + plot_w / 2, height - 6, "cascade step", "middle", 10, MUTED))
    desc = "; ".join(f"{b.label}: {b.text}" for b in bars)
    if limit is not None:
        desc += f"; limit {limit_text}"
    return _svg(width, height, title, desc, body)


def _short(label: str, room: float) -> str:
    """The label cut to fit `room` px at ~6 px a character."""
    n = max(int(room / 5.6), 4)
    return label if len(label) <= n else label[: n - 1] + "…"


def runtime_bars(bars: Sequence[Bar], total: Bar, limit: Optional[float], limit_text: str = "",
                 width: int = 560, row: int = 14) -> str:
    """Horizontal bars in hours from 0: one per image, then the total; a dashed line at `limit`."""
    left, right, top, bottom = 200, 56, 30, 34
    rows = list(bars) + [total]
    height = top + bottom + row * len(rows) + 6
    values = [b.value for b in rows if b.value is not None] + ([limit] if limit is not None else [])
    hi = max(values + [1e-9]) * 1.05
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + plot_w * v / hi

    body = [_text(0, 15, "Run time per image (h, linear scale)", size=12, weight="bold")]
    for tick in _ticks(hi):
        body.append(f'<line x1="{_f(x(tick))}" x2="{_f(x(tick))}" y1="{top}" y2="{height - bottom}" stroke="{GRID}"/>')
        body.append(_text(x(tick), height - bottom + 12, _g(tick), "middle", 10, MUTED))
    for i, b in enumerate(rows):
        yy = top + row * i + (6 if b is total else 0)
        is_total = b is total
        if is_total:
            body.append(f'<line x1="0" x2="{width}" y1="{_f(yy - 3)}" y2="{_f(yy - 3)}" stroke="{GRID}"/>')
        colour = BLUE
        if is_total and limit is not None and b.value is not None:
            colour = RED if b.value > limit else GREEN
        body.append(_text(left - 6, yy + row * 0.75, _short(b.label, left - 10), "end", 10, INK,
                          "bold" if is_total else "normal"))
        if b.value is not None:
            w = max(x(b.value) - left, 0.8)
            body.append(f'<rect x="{left}" y="{_f(yy + 2)}" width="{_f(w)}" height="{row - 4}" fill="{colour}"/>')
            body.append(_text(left + w + 4, yy + row * 0.75, b.text))
        else:
            body.append(_text(left + 4, yy + row * 0.75, b.text or "?", "start", 10, MUTED))
    if limit is not None:
        xl = x(limit)
        body.append(f'<line x1="{_f(xl)}" x2="{_f(xl)}" y1="{top - 4}" y2="{height - bottom}" stroke="{INK}" '
                    f'stroke-width="1.5" stroke-dasharray="6 4"/>')
        body.append(_text(xl, top - 7, f"requirement {limit_text}", "middle", 10, INK, "bold"))
    body.append(_text(left + plot_w / 2, height - 6, "hours", "middle", 10, MUTED))
    desc = "; ".join(f"{b.label}: {b.text}" for b in rows)
    if limit is not None:
        desc += f"; requirement {limit_text}"
    return _svg(width, height, "Run time per image against the requirement", desc, body)


def _ticks(hi: float) -> list[float]:
    """About five round ticks from 0 to `hi`."""
    raw = hi / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(hi / step) + 1)]
