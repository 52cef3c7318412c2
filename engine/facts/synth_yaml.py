"""YAML output of the synthetic corpora: a summary dict in the layout of the shipped examples."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Sequence

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_+\-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# how each top-level list is laid out: "block" (a mapping per item) or "lines" (one line per item)
_LAYOUT = {"ebs": "block", "spws": "block", "fields": "block", "antennas": "lines", "scans": "lines",
           "weights": "lines", "measurements": "lines"}


def _scalar(v: Any) -> str:
    """A YAML scalar: floats as Python's repr, strings quoted (JSON) unless plain and not reserved."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"not a finite number: {v}")
        return float.__repr__(v)
    if isinstance(v, str):
        return v if _PLAIN.match(v) and v.lower() not in _RESERVED else json.dumps(v)
    if v is None:
        return "null"
    raise TypeError(f"cannot write {type(v).__name__} to YAML")


def _flow(v: Any) -> str:
    """A value in YAML flow style: ``{a: 1, b: [2, 3]}``."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def _block_item(item: dict) -> list[str]:
    """Lines of one list item as a block mapping; a list of several mappings gets one line each."""
    out = []
    lead = "  - "
    for k, x in item.items():
        if isinstance(x, list) and len(x) > 1 and all(isinstance(y, dict) for y in x):
            out.append(f"{lead}{k}:")
            out.extend(f"      - {_flow(y)}" for y in x)
        else:
            out.append(f"{lead}{k}: {_flow(x)}")
        lead = "    "
    return out


def to_yaml(summary: dict, header: Sequence[str] = ()) -> str:
    """A summary as YAML in the layout of the shipped examples, with `header` comment lines."""
    out = [f"# {line}" for line in header]
    if out:
        out.append("")
    for key, value in summary.items():
        layout = _LAYOUT.get(key)
        if key == "fields" and isinstance(value, list) and len(value) > 8 and all(
                isinstance(f, dict) and len(f.get("pointings") or ()) <= 1 for f in value):
            layout = "lines"  # many single-pointing fields: one line each
        if not isinstance(value, list) or not value or layout is None:
            out.append(f"{key}: {_flow(value)}")
            continue
        out.append("")
        out.append(f"{key}:")
        for item in value:
            if layout == "lines" or not isinstance(item, dict):
                out.append(f"  - {_flow(item)}")
            else:
                out.extend(_block_item(item))
    return "\n".join(out) + "\n"
