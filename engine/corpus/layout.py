"""The corpus's tables, read from the facts models: one table per entity kind, its columns,
their storage types, units and the checks the pydantic schema enforces on them.

Every table has ``_dataset`` (the dataset's position in its part); a table nested in an entity
other than the dataset has ``_owner`` (the owner's position in its dataset's list of owners).
An owner holds, for each nested list, the number of items (null: the list is absent) and, for
each nested entity, whether it is present. Rows are in dataset order, then in list order.
Computed facts (``spw.bandwidth``, ``field.is_mosaic`` ...) are stored too (engine.corpus.computed).
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, get_args, get_origin

import annotated_types
import pyarrow as pa
from pydantic import BaseModel, TypeAdapter

from almarules.engine.facts.model import Dataset, Limits
from almarules.engine.facts.schema import kind_of_model, strip_annotation

DATASET = "_dataset"
OWNER = "_owner"
SOURCE = "_source"


@dataclass(frozen=True)
class Check:
    """The constraints on one value (canonical units of the column)."""

    gt: Optional[float] = None
    ge: Optional[float] = None
    le: Optional[float] = None
    nonzero: bool = False
    finite: bool = False  # NaN and inf rejected
    nan_ok: bool = False  # NaN passes the bounds (a failed measurement); else a bound fails on NaN
    allowed: Optional[tuple[str, ...]] = None  # a Literal's members
    unit: str = ""


@dataclass
class ColumnSpec:
    """One stored column: a fact, a computed fact, or an owner's count/presence of nested facts."""

    name: str
    value: str  # element type: "float", "int", "bool", "str"
    many: bool = False  # a list of values
    length: Optional[int] = None  # a tuple of this many values
    required: bool = False
    max_len: Optional[int] = None
    unit: Optional[str] = None
    check: Check = field(default_factory=Check)
    computed: bool = False
    structure: Optional[str] = None  # "count" (a nested list's length) or "present" (a nested entity)
    doc: str = ""
    element: Any = None  # the annotation of a value (of a list's item), validated one by one when not plain

    @property
    def value_type(self) -> pa.DataType:
        """The Arrow type of one value (of a list's item)."""
        return {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}[self.value]

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.list_(self.value_type) if self.many else self.value_type

    @functools.cached_property
    def adapter(self) -> TypeAdapter:
        return TypeAdapter(self.element)


@dataclass
class TableSpec:
    """One entity kind's table."""

    kind: str
    parent: Optional[str] = None  # owner kind (None: the dataset table itself)
    attr: Optional[str] = None  # the owner's attribute holding these entities
    many: bool = True
    columns: list[ColumnSpec] = field(default_factory=list)
    children: list[str] = field(default_factory=list)

    @functools.cached_property
    def by_name(self) -> dict[str, ColumnSpec]:
        return {c.name: c for c in self.columns}

    @functools.cached_property
    def inputs(self) -> frozenset[str]:
        """The keys a summary may give for one of these entities."""
        return frozenset(c.name for c in self.columns if not c.computed)

    @functools.cached_property
    def computed_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.computed)

    def arrow_schema(self, with_source: bool = False) -> pa.Schema:
        fields = [pa.field(DATASET, pa.int64(), nullable=False)]
        if self.parent not in (None, "dataset"):
            fields.append(pa.field(OWNER, pa.int64(), nullable=False))
        if with_source:
            fields.append(pa.field(SOURCE, pa.string(), nullable=False))
        for c in self.columns:
            meta = {"unit": c.unit or "", "doc": c.doc, "computed": "yes" if c.computed else "",
                    "structure": c.structure or ""}
            fields.append(pa.field(c.name, c.arrow_type, metadata={k: v for k, v in meta.items() if v}))
        return pa.schema(fields)


def _check_of(meta: list, unit: Optional[str], allowed: Optional[tuple[str, ...]]) -> Check:
    kw: dict[str, Any] = {"allowed": allowed, "unit": unit or ""}
    for m in meta:
        limits = getattr(getattr(m, "func", None), "limits", None)
        if isinstance(limits, Limits):
            kw.update(gt=limits.gt, ge=limits.ge, le=limits.le, nonzero=limits.nonzero, finite=limits.finite,
                      nan_ok=not limits.finite)
        elif isinstance(m, annotated_types.Ge):
            kw["ge"] = float(m.ge)
        elif isinstance(m, annotated_types.Gt):
            kw["gt"] = float(m.gt)
        elif isinstance(m, annotated_types.Le):
            kw["le"] = float(m.le)
        elif getattr(m, "allow_inf_nan", None) is False:
            kw["finite"] = True
    return Check(**kw)


_SCALARS = {float: "float", int: "int", bool: "bool", str: "str"}


def _column(name: str, annotation: Any, meta: list, required: bool, unit: Optional[str], doc: str,
            computed: bool = False) -> Optional[ColumnSpec]:
    tp, more = strip_annotation(annotation)
    meta = list(meta) + more
    max_len = _max_len(meta)
    many, length, element = False, None, annotation
    origin = get_origin(tp)
    if origin in (list, tuple):
        args = get_args(tp)
        many, length = True, (len(args) if origin is tuple and Ellipsis not in args else None)
        element = args[0]
        tp, item_meta = strip_annotation(element)
        meta = item_meta if many else meta
    allowed = tuple(str(a) for a in get_args(tp)) if get_origin(tp) is Literal else None
    value = "str" if allowed else _SCALARS.get(tp)
    if value is None:
        return None
    return ColumnSpec(name, value, many, length, required, max_len, unit, _check_of(meta, unit, allowed), computed,
                      doc=doc or "", element=element)


def _tables(model: type[BaseModel], kind: str, parent: Optional[str], attr: Optional[str], many: bool,
            out: dict[str, TableSpec]) -> None:
    spec = out[kind] = TableSpec(kind, parent, attr, many)
    nested: list[tuple[str, type[BaseModel], bool]] = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        tp, _ = strip_annotation(info.annotation)
        inner = get_args(tp)[0] if get_origin(tp) is list else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            nested.append((name, inner, True))
            spec.columns.append(ColumnSpec(name, "int", max_len=_max_len(info.metadata), structure="count",
                                           doc=f"number of {name} (null: not known)"))
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            nested.append((name, tp, False))
            spec.columns.append(ColumnSpec(name, "bool", structure="present", doc=f"{name} given"))
            continue
        col = _column(name, info.annotation, info.metadata, info.is_required(), extra.get("unit"),
                      info.description or "")
        if col is not None and not col.many and info.metadata:  # the field's own validators and bounds too
            col.element = typing.Annotated[(info.annotation, *info.metadata)]
        if col is None:
            raise TypeError(f"{model.__name__}.{name}: a fact of a type the corpus cannot store")
        spec.columns.append(col)
    for name, info in model.model_computed_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        col = _column(name, info.return_type, [], False, extra.get("unit"), info.description or "", computed=True)
        if col is not None:
            spec.columns.append(col)
    for name, sub, sub_many in nested:
        sub_kind = kind_of_model(sub)
        spec.children.append(sub_kind)
        _tables(sub, sub_kind, kind, name, sub_many, out)


def _max_len(meta: list) -> Optional[int]:
    return next((m.max_length for m in meta if isinstance(m, annotated_types.MaxLen)), None)


@functools.lru_cache(maxsize=1)
def layout() -> dict[str, TableSpec]:
    """kind -> its table, owners before what they hold ("dataset" first)."""
    out: dict[str, TableSpec] = {}
    _tables(Dataset, "dataset", None, None, False, out)
    return out


__all__ = ["layout", "TableSpec", "ColumnSpec", "Check", "DATASET", "OWNER", "SOURCE"]
