"""Plan against outcome: each image's dry-run estimates (`ImageEntry.plan`: run_time s, size GB,
sensitivity and threshold Jy/beam) next to what happened (task wall time, FITS image size, the
record's sensitivity and threshold), the ratios actual/estimate, their median and worst over the
run, and a small log-log plot of the run times (inline SVG, drawn here: no script, no asset)."""

from __future__ import annotations

import math
from html import escape
from statistics import median
from typing import Optional

from almarules.engine.pipeline.state import ImageEntry
from almarules.engine.pipeline.weblog import fmt
from almarules.engine.pipeline.weblog.model import ImageView, OutcomeCell, OutcomeRow, OutcomeSummary
from almarules.engine.plan.model import Plan
from almarules.engine.stages.imaging.record import ImageRecord

#: quantity -> (label, unit shown, its factor from the base unit: s, GB, Jy/beam)
QUANTITIES = {"run_time": ("run time", "s", 1.0), "size": ("image size", "MB", 1e3),
              "sensitivity": ("sensitivity", "mJy/beam", 1e3), "threshold": ("threshold", "mJy/beam", 1e3)}
SIZE_KINDS = ("image", "pbcor", "image.tt0", "tt0.pbcor")  # the product whose bytes are the image size, first found


def _actual(quantity: str, entry: ImageEntry, record: Optional[ImageRecord]) -> Optional[float]:
    if quantity == "run_time":
        if entry.seconds is not None:
            return entry.seconds
        return record.timings.get("total") if record else None
    if record is None:
        return None
    if quantity == "size":
        sizes = {p.kind: p.bytes for p in record.products}
        found = next((sizes[k] for k in SIZE_KINDS if k in sizes), None)
        return None if found is None else found / 1e9
    s = getattr(record.weblog, quantity)
    return None if s is None else fmt.to_base(s.value, s.unit)


def _cell(quantity: str, entry: ImageEntry, record: Optional[ImageRecord], planned: str) -> OutcomeCell:
    """`planned`: the plan's words for the estimate, shown where it has no number (a threshold
    that waits for the dirty image's dynamic range)."""
    factor = QUANTITIES[quantity][2]
    est, act = entry.plan.get(quantity), _actual(quantity, entry, record)
    r = fmt.ratio(act, est)
    show = fmt.duration if quantity == "run_time" else (lambda v: fmt.number(v * factor))
    return OutcomeCell(quantity=quantity, estimate=est, actual=act,
                       estimate_text=show(est) if est is not None else (planned or "–"),
                       actual_text=show(act) if act is not None else "–", ratio=r,
                       ratio_text="–" if r is None else fmt.number(r, digits=3))


def outcome_rows(images: list[ImageView], entries: dict[str, ImageEntry], plan: Optional[Plan]) -> list[OutcomeRow]:
    """One row per image, the cells in the order of QUANTITIES (also set on each view)."""
    texts = {row.key: {k: c.text for k, c in row.cells.items()} for row in plan.images} if plan else {}
    rows = []
    for view in images:
        words = texts.get(view.key, {})
        cells = [_cell(q, entries[view.key], view.record, words.get(q, "")) for q in QUANTITIES]
        view.outcome = cells
        rows.append(OutcomeRow(key=view.key, href=view.page, status=view.status, cells=cells))
    return rows


def summarise(rows: list[OutcomeRow]) -> list[OutcomeSummary]:
    """Per quantity: how many images have both numbers, the median ratio, the worst (farthest from 1)."""
    out = []
    for i, quantity in enumerate(QUANTITIES):
        pairs = [(r.key, r.cells[i].ratio) for r in rows if r.cells[i].ratio is not None and r.cells[i].ratio > 0]
        if not pairs:
            out.append(OutcomeSummary(quantity, 0, None, None, None))
            continue
        key, worst = max(pairs, key=lambda p: (abs(math.log(p[1])), p[0]))
        out.append(OutcomeSummary(quantity, len(pairs), median(p[1] for p in pairs), worst, key))
    return out


def _ticks(lo: float, hi: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1)]


def runtime_svg(rows: list[OutcomeRow], width: int = 360, height: int = 300) -> str:
    """Actual against estimated run time (s), log-log, with the line actual = estimate; '' with no data."""
    pts = [(r.cells[0].estimate, r.cells[0].actual, r.key) for r in rows
           if r.cells[0].ratio is not None and r.cells[0].estimate > 0 and r.cells[0].actual > 0]
    if not pts:
        return ""
    logs = [math.log10(v) for e, a, _ in pts for v in (e, a)]
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    hi = hi if hi > lo else lo + 1
    m = 44  # margin, px

    def x(v: float) -> float:
        return m + (math.log10(v) - lo) / (hi - lo) * (width - m - 10)

    def y(v: float) -> float:
        return height - m - (math.log10(v) - lo) / (hi - lo) * (height - m - 10)

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="actual against estimated run time">',
             f'<line x1="{x(10**lo):.1f}" y1="{y(10**lo):.1f}" x2="{x(10**hi):.1f}" y2="{y(10**hi):.1f}" '
             'stroke="#9aa0a6" stroke-dasharray="4 3"/>']
    for t in _ticks(lo, hi):
        label = fmt.number(t)
        parts.append(f'<text x="{x(t):.1f}" y="{height - m + 14}" font-size="10" text-anchor="middle">{label}</text>')
        parts.append(f'<text x="{m - 4}" y="{y(t) + 3:.1f}" font-size="10" text-anchor="end">{label}</text>')
    parts.append(f'<line x1="{m}" y1="{height - m}" x2="{width - 10}" y2="{height - m}" stroke="#5f6368"/>')
    parts.append(f'<line x1="{m}" y1="10" x2="{m}" y2="{height - m}" stroke="#5f6368"/>')
    parts.append(f'<text x="{(width + m) / 2:.0f}" y="{height - 8}" font-size="11" text-anchor="middle">'
                 'estimated run time (s)</text>')
    parts.append(f'<text transform="translate(12 {(height - m) / 2:.0f}) rotate(-90)" font-size="11" '
                 'text-anchor="middle">actual run time (s)</text>')
    for e, a, key in pts:
        parts.append(f'<circle cx="{x(e):.1f}" cy="{y(a):.1f}" r="3.5" fill="#1565c0" fill-opacity=".75">'
                     f'<title>{escape(key)}: {fmt.duration(a)} for {fmt.duration(e)} estimated</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts)
