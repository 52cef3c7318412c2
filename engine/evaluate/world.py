"""Entities and their fact values, read from a validated `Dataset`.

Fact values leave here in canonical units (see `almarules.dsl.units`); an absent
fact becomes `Unknown` naming its path, e.g. ``spw[25].nchan``.
"""

from __future__ import annotations

from typing import Any, Callable

from almarules.dsl.types import AttrInfo, CollT, EntityT, NumT, Schema
from almarules.dsl.units import parse_unit
from almarules.engine.facts.model import KEY_FACTS, Dataset, key_text
from almarules.engine.evaluate.values import Entity, Unknown


def entity_key(kind: str, model: Any, index: int) -> str:
    """The key of an entity of `kind` (its `index` in its list when the kind has no key facts)."""
    facts = KEY_FACTS.get(kind)
    return key_text(kind, tuple(getattr(model, f) for f in facts)) if facts else str(index)


class World:
    """The dataset's entities, created on first use and cached."""

    def __init__(self, dataset: Dataset, schema: Schema, source: str = "<facts>"):
        self.dataset_model = dataset
        self.schema = schema
        self.source = source
        self.dataset = Entity("dataset", "dataset", dataset, path="dataset")
        self._children: dict[tuple[str, str], Any] = {}
        self._converters: dict[tuple[str, str], Callable[[Any, Entity], Any]] = {}

    def fact(self, ent: Entity, name: str) -> Any:
        """A fact attribute of an entity, canonical; Unknown when absent."""
        if ent.model is None:
            return Unknown([f"{ent.path}.{name}"])
        # (ent.src + name is where the value sits in the summary: see summary_path)
        conv = self._converters.get((ent.kind, name))
        if conv is None:
            info = self.schema.kinds[ent.kind][name]
            conv = self._converter(ent.kind, name, info)
            self._converters[(ent.kind, name)] = conv
        return conv(getattr(ent.model, name), ent)

    def _converter(self, kind: str, name: str, info: AttrInfo) -> Callable[[Any, Entity], Any]:
        t = info.type
        # a computed fact waits for the facts it is computed from
        wanted = f"{{{info.sources}}}" if info.sources and "," in info.sources else (info.sources or name)
        missing = lambda ent: Unknown([f"{ent.path}.{wanted}"])  # noqa: E731
        if isinstance(t, NumT):
            scale = parse_unit(info.unit)[0] if info.unit else 1.0
            return lambda v, ent: missing(ent) if v is None else float(v) * scale
        if isinstance(t, EntityT):
            def to_entity(v, ent):
                if v is None:
                    return missing(ent)
                cache_key = (ent.path, name)
                if cache_key not in self._children:
                    child = Entity(t.kind, f"{ent.key}.{name}", v, path=f"{ent.path}.{name}")
                    child.src = f"{ent.src}.{name}" if ent.src else name
                    self._children[cache_key] = child
                return self._children[cache_key]
            return to_entity
        if isinstance(t, CollT) and isinstance(t.elem, EntityT):
            elem_kind = t.elem.kind

            def to_entities(v, ent):
                if v is None:
                    return missing(ent)
                cache_key = (ent.path, name)
                if cache_key not in self._children:
                    children = []
                    for i, m in enumerate(v):
                        key = entity_key(elem_kind, m, i)
                        child = Entity(elem_kind, key, m, order=i,
                                       path=None if ent.kind == "dataset" else f"{ent.path}.{name}[{key}]")
                        child.src = f"{ent.src}.{name}[{i}]" if ent.src else f"{name}[{i}]"
                        children.append(child)
                    self._children[cache_key] = tuple(children)
                return self._children[cache_key]
            return to_entities
        if isinstance(t, CollT) and isinstance(t.elem, NumT):
            scale = parse_unit(info.unit)[0] if info.unit else 1.0
            return lambda v, ent: missing(ent) if v is None else tuple(float(x) * scale for x in v)
        if isinstance(t, CollT):
            return lambda v, ent: missing(ent) if v is None else tuple(v)
        return lambda v, ent: missing(ent) if v is None else v


def summary_path(ent: Entity, name: str) -> str:
    """Where a fact sits in the summary file: ``spws[2].nchan``, ``ebs[0].baselines.l80``."""
    return f"{ent.src}.{name}" if ent.src else name
