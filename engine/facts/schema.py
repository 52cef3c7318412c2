"""The rule language's view of the facts models: kinds, attributes, types, units."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Literal, Optional, get_args, get_origin

from pydantic import BaseModel

from almarules.dsl.types import (
    ANY, BOOL, NUM, STR, AttrInfo, CollT, EntityT, EnumT, NumT, Schema, StrT, T,
)
from almarules.dsl.units import parse_unit
from almarules.engine.facts.model import COLLECTIONS, FACT_KINDS, INTENTS

INTENT_ENUM = EnumT("intent", frozenset(INTENTS))


def kind_of_model(model: type) -> str:
    for kind, m in FACT_KINDS.items():
        if m is model:
            return kind
    return model.__name__.lower()


def strip_annotation(tp: Any) -> tuple[Any, list]:
    """(the type without Optional/Annotated, the Annotated metadata met on the way)."""
    meta: list = []
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            args = get_args(tp)
            meta.extend(args[1:])
            tp = args[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, meta
            tp = args[0]
        else:
            return tp, meta


def type_of(ann: Any, unit: Optional[str], nested: dict[str, type]) -> Optional[T]:
    """Static type of a pydantic annotation (None: not visible to rules)."""
    ann, _ = strip_annotation(ann)
    origin = get_origin(ann)
    if origin is Literal:
        values = frozenset(str(v) for v in get_args(ann))
        return INTENT_ENUM if values == INTENT_ENUM.members else StrT(values)
    if origin is list:
        (elem_ann,) = get_args(ann)
        elem = type_of(elem_ann, unit, nested)
        return CollT(elem) if elem is not None else None
    if origin is tuple:
        return None
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        kind = kind_of_model(ann)
        nested[kind] = ann
        return EntityT(kind)
    if ann is bool:
        return BOOL
    if ann is int:
        return NUM
    if ann is float:
        return NumT(parse_unit(unit)[1]) if unit else NUM
    if ann is str:
        return STR
    return None


def _attrs_of(model: type[BaseModel], nested: dict[str, type]) -> dict[str, AttrInfo]:
    out: dict[str, AttrInfo] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        unit = extra.get("unit")
        t = type_of(info.annotation, unit, nested)
        if t is not None:
            out[name] = AttrInfo(t, "fact", unit=unit, doc=info.description, fact_name=name)
    for name, info in model.model_computed_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        unit = extra.get("unit")
        t = type_of(info.return_type, unit, nested)
        if t is not None:
            out[name] = AttrInfo(t, "fact", unit=unit, doc=info.description, fact_name=name,
                                 sources=extra.get("from"))
    return out


@functools.lru_cache(maxsize=1)
def _fact_schema() -> Schema:
    kinds: dict[str, dict[str, AttrInfo]] = {}
    nested: dict[str, type] = {}
    pending = dict(FACT_KINDS)
    while pending:
        kind, model = pending.popitem()
        if kind in kinds:
            continue
        kinds[kind] = _attrs_of(model, nested)
        kinds[kind].setdefault("key", AttrInfo(STR, "builtin", doc="identity of the entity"))
        for k, m in nested.items():
            if k not in kinds:
                pending[k] = m
    return Schema(kinds, dict(COLLECTIONS), {"intent": INTENT_ENUM})


def fact_schema() -> Schema:
    """A fresh copy of the facts schema (the checker extends it)."""
    return _fact_schema().copy()


__all__ = ["fact_schema", "kind_of_model", "INTENT_ENUM", "ANY"]
