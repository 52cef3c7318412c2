"""Dataset summaries: YAML/JSON files of facts, loaded into a `Dataset`.

A summary is a mapping shaped like `almarules.engine.facts.model.Dataset`. Quantities
are plain numbers in the unit the schema names, or strings with a compatible
unit (``"230.5 GHz"``, ``"50 uJy/beam"``). Absent facts are unknown.

Every problem with a summary raises `FactsError`, whose message has one line per
problem: ``<file>: <field path>: <what is wrong>``, for example::

    examples/x.yaml: spws[2].nchan: Input should be a valid integer, unable to parse string as an integer (got 'many')
    examples/x.yaml: fields[0].intents[1]: 'TARGT' is not one of TARGET, PHASE, ... (did you mean 'TARGET'?)
    examples/x.yaml: unknown field 'spw' at top level (did you mean 'spws'?)
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal, Optional, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from almarules.dsl.errors import printable
from almarules.dsl.units import UnitError, parse_quantity, parse_unit
from almarules.dsl.limits import MAX_SUMMARY_BYTES, MAX_SUMMARY_DEPTH, MAX_SUMMARY_NODES
from almarules.engine.facts.model import Dataset
from almarules.engine.facts.schema import strip_annotation
from almarules.engine.io import UserFileError, read_user_text

__all__ = ["FactsError", "kind_text", "load_summary", "read_summary_data", "parse_summary", "read_data_file",
           "dump_summary", "schema_json", "check_json_structure", "check_yaml_structure", "short_text"]

SUFFIXES = (".json", ".yaml", ".yml")


class FactsError(Exception):
    """A summary that cannot be read or does not validate.

    ``str(err)`` is one line per problem; ``err.problems`` holds the same lines.
    """

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- loading


class _DuplicateKeys:
    """A loader mixin: a key given twice in one mapping is an error."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = self.construct_object(key_node)
                    try:
                        duplicate = key in seen
                        seen.add(key)
                    except TypeError:  # unhashable key: let the base class report it
                        continue
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


class _SummaryLoader(_DuplicateKeys, yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats (``5.0e9``, ``1e9``) and duplicate-key errors.

    PyYAML follows YAML 1.1, where ``5.0e9`` (no sign in the exponent) is a
    *string*; in a summary that would be a frequency "without a unit".
    """


_SummaryLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SummaryLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


if hasattr(yaml, "CSafeLoader"):
    class _FastSummaryLoader(_DuplicateKeys, yaml.CSafeLoader):
        """`_SummaryLoader`'s rules on libyaml's C parser (about 7x faster on large summaries)."""

    _FastSummaryLoader.yaml_implicit_resolvers = _SummaryLoader.yaml_implicit_resolvers
else:  # pragma: no cover - PyYAML without libyaml
    _FastSummaryLoader = _SummaryLoader  # type: ignore[misc,assignment]


def _yaml_error(source: str, exc: yaml.YAMLError, text: str = "") -> str:
    """One line: the file, where (line and column) and what."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, ESC, ...)
        pos = max(0, min(int(exc.position), len(text)))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return (f"{source}: invalid YAML at line {line}, column {column}: character U+{code:04X} "
                f"is not allowed in YAML")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem:
            what = f"{exc.problem} ({exc.context})"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{source}: invalid YAML{where}: {what}"
    return f"{source}: invalid YAML: {exc}"


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_summary(path: str | Path) -> Dataset:
    """Read a ``.json``, ``.yaml`` or ``.yml`` summary file into a `Dataset`.

    The file must be a regular file of at most `MAX_SUMMARY_BYTES` (64 MiB) of UTF-8; its
    structure is checked before any Python object is built: nesting at most `MAX_SUMMARY_DEPTH`
    (64) deep and at most `MAX_SUMMARY_NODES` (2,000,000) nodes, YAML aliases counted at every
    use, so an alias bomb or a 100,000-deep nesting is refused at once, in bounded memory.
    """
    return parse_summary(read_summary_data(path), str(path))


def read_summary_data(path: str | Path) -> Any:
    """The parsed (not yet validated) data of a summary file (``.json``, ``.yaml`` or ``.yml``),
    read with the bounds `load_summary` describes. Raises `FactsError` (one line naming the file)."""
    source = str(path)
    path = Path(path)
    if path.is_dir():
        raise FactsError(f"{source}: is a directory, not a dataset summary (.json, .yaml or .yml)")
    if path.suffix.lower() not in SUFFIXES:
        raise FactsError(
            f"{source}: unsupported summary format {path.suffix or '(no suffix)'!r} "
            f"(expected .json, .yaml or .yml)")
    return read_data_file(path, "a dataset summary")


def read_data_file(path: str | Path, what: str = "a data file") -> Any:
    """The data of a small user YAML/JSON file (``.json``: JSON, otherwise YAML), read with the
    bounds of a summary (regular file, `MAX_SUMMARY_BYTES`, `MAX_SUMMARY_DEPTH`, `MAX_SUMMARY_NODES`).
    Raises `FactsError` (one line naming the file)."""
    try:
        text = read_user_text(path, MAX_SUMMARY_BYTES, what)
    except UserFileError as exc:
        raise FactsError(str(exc)) from None
    return _load_json(text, str(path)) if str(path).lower().endswith(".json") else _load_yaml(text, str(path))


def _load_json(text: str, source: str) -> Any:
    check_json_structure(text, source)
    try:
        return json.loads(text, object_pairs_hook=_json_pairs)
    except json.JSONDecodeError as exc:
        raise FactsError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # duplicate key
        raise FactsError(f"{source}: invalid JSON: {exc}") from None


def _load_yaml(text: str, source: str) -> Any:
    try:
        check_yaml_structure(text, source)
        return yaml.load(text, Loader=_FastSummaryLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        try:  # the pure-Python parser's messages are the clearer ones: parse again for them
            check_yaml_structure(text, source, _SummaryLoader)  # libyaml may stop before the limits
            return yaml.load(text, Loader=_SummaryLoader)  # noqa: S506
        except yaml.YAMLError as exc:
            raise FactsError(_yaml_error(source, exc, text)) from None


# --------------------------------------------------------------------------- structure bounds

_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def check_json_structure(text: str, source: str) -> None:
    """Refuse JSON nested deeper than `MAX_SUMMARY_DEPTH` or with more than `MAX_SUMMARY_NODES`
    values and keys, before `json.loads` (which recurses) builds anything.

    Strings are blanked out first, so brackets inside them do not count; the depth is the running
    sum of openers minus closers (a malformed text is left to the parser to report).
    """
    bare = _JSON_STRING.sub('""', text).encode("utf-8", "replace")
    raw = np.frombuffer(bare, dtype=np.uint8)
    opens = (raw == ord("[")) | (raw == ord("{"))
    step = opens.astype(np.int32) - ((raw == ord("]")) | (raw == ord("}")))
    if raw.size:
        depth = np.cumsum(step, dtype=np.int64)
        deepest = int(depth.argmax())
        if depth[deepest] > MAX_SUMMARY_DEPTH:
            first = int(np.argmax(depth > MAX_SUMMARY_DEPTH))
            line = bare.count(b"\n", 0, first) + 1
            raise FactsError(f"{source}: nesting deeper than {MAX_SUMMARY_DEPTH} levels (the limit) at line "
                             f"{line} (a summary nests at most a few levels)")
    nodes = int(opens.sum()) + bare.count(b",") + bare.count(b":") + 1
    if nodes > MAX_SUMMARY_NODES:
        raise FactsError(f"{source}: about {nodes} values, more than the limit of {MAX_SUMMARY_NODES}")


def check_yaml_structure(text: str, source: str, loader: type = _FastSummaryLoader) -> None:
    """Refuse YAML nested deeper than `MAX_SUMMARY_DEPTH` or expanding to more than
    `MAX_SUMMARY_NODES` nodes, an alias counted with its whole subtree at every use, by a scan
    of the parser's events before anything is composed or constructed (so a "billion laughs"
    costs the size of its text, not of its expansion). The message names the field path and
    the line. Syntax errors raise `yaml.YAMLError`.
    """
    sizes: dict[str, int] = {}  # anchor -> expanded nodes of its subtree
    frames: list[_Frame] = []  # the open collections, outermost first
    count = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            count += 1
            frames.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor, count))
            if len(frames) > MAX_SUMMARY_DEPTH:
                raise FactsError(f"{source}: {_frames_path(frames[:-1])}: nesting deeper than {MAX_SUMMARY_DEPTH} "
                                 f"levels (the limit) at {_mark(event)}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = frames.pop()
            if frame.anchor is not None:
                sizes[frame.anchor] = count - frame.start + 1
        elif isinstance(event, yaml.ScalarEvent):
            count += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
            if frames and frames[-1].is_map and frames[-1].at_key:
                frames[-1].key = event.value
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:  # undefined (the composer reports it) or still open
                if any(f.anchor == event.anchor for f in frames):
                    raise FactsError(f"{source}: {_frames_path(frames)}: alias *{event.anchor} at {_mark(event)} "
                                     f"refers to a node that contains it (a summary cannot be recursive)")
            else:
                count += sizes[event.anchor]
        else:
            continue
        if count > MAX_SUMMARY_NODES:
            opened = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
            where = _frames_path(frames[:-1] if opened else frames)
            raise FactsError(f"{source}: {where}: more than {MAX_SUMMARY_NODES} nodes (the limit; aliases counted "
                             f"at every use) at {_mark(event)}")
        if frames and not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            frames[-1].advance()


class _Frame:
    """An open mapping or sequence while scanning YAML events: where its next child goes."""

    __slots__ = ("is_map", "anchor", "start", "at_key", "key", "index")

    def __init__(self, is_map: bool, anchor: Optional[str], start: int):
        self.is_map, self.anchor, self.start = is_map, anchor, start
        self.at_key, self.key, self.index = True, "?", 0

    def advance(self) -> None:
        """A child node is complete."""
        if self.is_map:
            self.at_key = not self.at_key
        else:
            self.index += 1

    def part(self) -> str | int:
        return self.key if self.is_map else self.index


def _frames_path(frames: list[_Frame]) -> str:
    """The field path of the node being read in the collections `frames` (``top level``: none)."""
    parts = tuple(f.part() for f in frames)
    if len(parts) > 8:  # a deep nesting: its start says where it is
        return f"{_path(parts[:6])}...({len(parts) - 6} more levels)"
    return _path(parts) or "top level"


def _mark(event: Any) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown place"


def parse_summary(data: Any, source: str = "<summary>") -> Dataset:
    """Validate an already-parsed summary mapping; `source` prefixes every message."""
    if data is None:
        raise FactsError(f"{source}: the summary is empty (expected a mapping of dataset facts)")
    if not isinstance(data, dict):
        raise FactsError(
            f"{source}: top level must be a mapping of dataset facts, not {kind_text(data)}")
    _check_integers(data, source)
    try:
        return Dataset.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {printable(_describe(err))}" for err in exc.errors()]
        raise FactsError(list(dict.fromkeys(lines))) from None  # one line per problem


# --------------------------------------------------------------------------- messages


def kind_text(value: Any) -> str:
    """What a value is, for a message: ``a list``, ``a string ('x')``, ``a number (3)`` ..."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({short_text(value)})"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return f"a {type(value).__name__}"


MAX_FACT_INTEGER = 2 ** 53
"""Largest integer magnitude a summary may hold: every integer fact is exact as a float below it
(ids, counts, times in seconds are all far smaller)."""


def _check_integers(data: Any, source: str) -> None:
    """FactsError (with the field path) for an integer beyond MAX_FACT_INTEGER anywhere in the
    summary; walked without recursion."""
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, loc + (k,)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, loc + (i,)) for i, v in enumerate(node))
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_FACT_INTEGER:
            digits = len(str(abs(node))) if abs(node) < 10 ** 4000 else "over 4000"
            raise FactsError(f"{source}: {printable(_path(loc))}: an integer of {digits} digits: at most "
                             f"{MAX_FACT_INTEGER} (the limit)")


def short_text(value: Any, limit: int = 60) -> str:
    """`value`'s repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _resolve(loc: tuple) -> tuple[Any, Optional[FieldInfo]]:
    """Annotation and FieldInfo of the value at `loc` in a Dataset, or (None, None)."""
    tp: Any = Dataset
    info: Optional[FieldInfo] = None
    for part in loc:
        tp, _ = strip_annotation(tp)
        if isinstance(part, int):
            origin = get_origin(tp)
            args = get_args(tp)
            if origin is list and args:
                tp = args[0]
            elif origin is tuple and args:
                if len(args) == 2 and args[1] is Ellipsis:
                    tp = args[0]
                elif part < len(args):
                    tp = args[part]
                else:
                    return None, None
            else:
                return None, None
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None, None
            tp, info = field.annotation, field
        else:
            return None, None
    return tp, info


def _unit_of(loc: tuple) -> Optional[str]:
    if not loc or not isinstance(loc[-1], str):
        return None
    _, info = _resolve(loc)
    extra = info.json_schema_extra if info is not None else None
    return extra.get("unit") if isinstance(extra, dict) else None


def _physical_type(unit_text: str) -> Optional[str]:
    try:
        kind = parse_unit(unit_text)[1].physical_type
    except Exception:  # noqa: BLE001 - only a nicety for the message
        return None
    return None if kind in ("unknown", "dimensionless") else kind


def _expected(unit: str) -> str:
    """``a length in m``: what a quantity field wants."""
    kind = _physical_type(unit) or "quantity"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} in {unit}"


def _unit_message(value: Any, unit: str, fallback: str) -> str:
    """Why `value` (a string) is not a quantity in `unit`."""
    if not isinstance(value, str):
        return fallback
    expected = _expected(unit)
    try:
        _, dim = parse_quantity(value)
    except UnitError as exc:
        message = str(exc)
        if message.startswith("unknown unit"):
            return f"{message} in {value!r}: expected {expected}"
        return f"{value!r} is not a number with a unit: expected {expected}"
    if dim.is_dimensionless:
        return (f"{value!r} has no unit: expected {expected} "
                f"(write a plain number, taken as {unit}, or add a unit)")
    got = dim.physical_type
    got_text = f", got a {got}" if got not in ("unknown", "dimensionless") else ""
    return f"{value!r} is not compatible with {unit}: expected {expected}{got_text}"


def _allowed(loc: tuple, ctx: dict) -> list[str]:
    tp, _ = _resolve(loc)
    tp, _ = strip_annotation(tp)
    if get_origin(tp) is Literal:
        return [str(a) for a in get_args(tp)]
    return re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))


def _computed_names(loc: tuple) -> set[str]:
    tp, _ = _resolve(loc)
    tp, _ = strip_annotation(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return set(tp.model_computed_fields)
    return set()


def _did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice (ignoring case), or ''."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def _tuple_length(loc: tuple) -> Optional[int]:
    tp, _ = _resolve(loc)
    tp, _ = strip_annotation(tp)
    args = get_args(tp)
    if get_origin(tp) is tuple and args and Ellipsis not in args:
        return len(args)
    return None


def _length(value: Any) -> str:
    return str(len(value)) if isinstance(value, (list, tuple)) else short_text(value)


_LIMIT_WORDS = {"greater_than_equal": "at least", "greater_than": "greater than",
                "less_than_equal": "at most", "less_than": "less than"}


def _describe(err: dict) -> str:
    """One line (without the source) for one pydantic error."""
    kind = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    path = _path(loc)

    if kind == "extra_forbidden":
        parent, name = loc[:-1], loc[-1]
        where = f"{_path(parent)}: " if parent else ""
        top = "" if parent else " at top level"
        if name in _computed_names(parent):
            return f"{where}'{name}' is computed from other facts and cannot be given{top}"
        tp, _ = _resolve(parent)
        tp, _ = strip_annotation(tp)
        names = list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []
        hint = _did_you_mean(str(name), names)
        return f"{where}unknown field '{name}'{top}{hint}"
    if kind == "invalid_key":
        parent = loc[:-1]
        where = f"{_path(parent)}: " if parent else ""
        return f"{where}key {loc[-1]!r} is not a string{'' if parent else ' at top level'}"
    if kind == "missing":
        if loc and isinstance(loc[-1], int):  # a tuple too short
            return f"{_path(loc[:-1])}: expected {_tuple_length(loc[:-1])} items, not {_length(value)}"
        return f"{path}: required field is missing"
    if kind in ("too_long", "too_short") and _tuple_length(loc) is not None:
        return f"{path}: expected {_tuple_length(loc)} items, not {_length(value)}"
    if kind == "too_long" and "max_length" in ctx:
        return (f"{path}: {ctx.get('actual_length', _length(value))} items, more than the limit of "
                f"{ctx['max_length']} (far above real data: see 'almarules schema')")
    if kind in ("literal_error", "enum"):
        allowed = _allowed(loc, ctx)
        hint = _did_you_mean(value, allowed) if isinstance(value, str) else ""
        return f"{path}: {short_text(value)} is not one of {', '.join(allowed)}{hint}"

    if kind == "fact_range":  # an impossible value: the limit and the value are in the message
        return f"{path}: {err['msg']}"
    limit = next((ctx[k] for k in ("ge", "gt", "le", "lt") if k in ctx), None)
    if kind in _LIMIT_WORDS and limit is not None:
        return f"{path}: must be {_LIMIT_WORDS[kind]} {limit:g} (got {short_text(value)})"
    if kind == "finite_number":
        return f"{path}: must be a finite number (got {short_text(value)})"
    unit = _unit_of(loc)
    if kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
        if unit is not None:
            message = _unit_message(value, unit, message)
        return f"{path}: {message}"
    if unit is not None and kind in ("float_type", "float_parsing"):
        return (f"{path}: expected {_expected(unit)}, as a number or a string with a unit "
                f"(got {short_text(value)})")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path or 'top level'}: expected a mapping, not {kind_text(value)}"
    return f"{path or 'top level'}: {err['msg']} (got {short_text(value)})"


# --------------------------------------------------------------------------- output


def dump_summary(dataset: Dataset) -> dict:
    """The summary of `dataset` as JSON-able data: known facts only, no computed ones.

    ``parse_summary(dump_summary(d), ...) == d``.
    """
    return dataset.model_dump(mode="json", exclude_none=True, exclude_computed_fields=True)


def _add_computed(val: dict, ser: dict) -> None:
    """Copy read-only (computed) properties of the serialization schema into `val`."""
    pairs = [(val, ser)]
    for name, definition in val.get("$defs", {}).items():
        if name in ser.get("$defs", {}):
            pairs.append((definition, ser["$defs"][name]))
    for target, source in pairs:
        props = target.get("properties")
        if props is None:
            continue
        for prop, schema in source.get("properties", {}).items():
            if prop not in props and schema.get("readOnly"):
                props[prop] = schema


def schema_json() -> str:
    """JSON Schema of a summary (validation mode, plus read-only computed facts).

    Pretty-printed with sorted keys, so the text is deterministic; every quantity
    carries its ``unit``.
    """
    val = Dataset.model_json_schema(mode="validation")
    ser = Dataset.model_json_schema(mode="serialization")
    _add_computed(val, ser)
    return json.dumps(val, indent=2, sort_keys=True, ensure_ascii=False)
