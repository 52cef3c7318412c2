"""Entities and their fact values, read from a validated `Dataset`.

Fact values leave here in canonical units (see `almarules.dsl.units`); an absent
fact becomes `Unknown` naming its path, e.g. ``spw[25].nchan``.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Optional

from almarules.dsl.types import AttrInfo, CollT, EntityT, NumT, Schema
from almarules.dsl.units import parse_unit
from almarules.engine.facts.model import KEY_FACTS, Dataset, key_text
from almarules.engine.evaluate.values import Entity, Unknown


def key_function(kind: str) -> Callable[[Any, int], str]:
    """``key(model, index)``: the key of an entity of `kind` (its `index` in its list when the
    kind has no key facts)."""
    facts = KEY_FACTS.get(kind)
    if not facts:
        return lambda model, index: str(index)
    read = attrgetter(*facts)
    if len(facts) == 1:
        return lambda model, index: key_text(kind, (read(model),))
    return lambda model, index: key_text(kind, read(model))


Reader = Callable[["World", Any, Entity], Any]  # (world, the model's value, entity) -> fact value


class FactReaders:
    """How each fact attribute is read from the models, in canonical units: one reader per
    (kind, attribute), made on first use and kept for every dataset (one per program)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.readers: dict[tuple[str, str], Reader] = {}

    def get(self, kind: str, name: str) -> Reader:
        read = self.readers.get((kind, name))
        if read is None:
            read = self.readers[(kind, name)] = fact_reader(name, self.schema.kinds[kind][name])
        return read


def fact_reader(name: str, info: AttrInfo) -> Reader:
    """How the fact `name` (described by `info`) is read from a model's value, in canonical units."""
    t = info.type
    # a computed fact waits for the facts it is computed from
    wanted = f"{{{info.sources}}}" if info.sources and "," in info.sources else (info.sources or name)
    missing = lambda ent: Unknown([f"{ent.path}.{wanted}"])  # noqa: E731
    if isinstance(t, NumT):
        scale = parse_unit(info.unit)[0] if info.unit else 1.0
        return lambda world, v, ent: missing(ent) if v is None else float(v) * scale
    if isinstance(t, EntityT):
        def to_entity(world: World, v: Any, ent: Entity) -> Any:
            if v is None:
                return missing(ent)

            def make() -> Entity:
                child = Entity(t.kind, f"{ent.key}.{name}", v, path=f"{ent.path}.{name}", home=world.home)
                child.src = summary_path(ent, name)
                world.made(t.kind).append(child)
                return child
            return world.child(ent, name, make)
        return to_entity
    if isinstance(t, CollT) and isinstance(t.elem, EntityT):
        elem_kind = t.elem.kind
        key_of = key_function(elem_kind)

        def to_entities(world: World, v: Any, ent: Entity) -> Any:
            if v is None:
                return missing(ent)

            def make() -> tuple[Entity, ...]:
                home = world.home
                src = summary_path(ent, name)
                within = None if ent.kind == "dataset" else f"{ent.path}.{name}"
                children = []
                for i, m in enumerate(v):
                    key = key_of(m, i)
                    child = Entity(elem_kind, key, m, order=i, path=within and f"{within}[{key}]", home=home)
                    child.src = f"{src}[{i}]"
                    children.append(child)
                world.made(elem_kind).extend(children)
                return tuple(children)
            return world.child(ent, name, make)
        return to_entities
    if isinstance(t, CollT) and isinstance(t.elem, NumT):
        scale = parse_unit(info.unit)[0] if info.unit else 1.0
        return lambda world, v, ent: missing(ent) if v is None else tuple(float(x) * scale for x in v)
    if isinstance(t, CollT):
        return lambda world, v, ent: missing(ent) if v is None else tuple(v)
    return lambda world, v, ent: missing(ent) if v is None else v


class World:
    """The dataset's entities, created on first use and cached."""

    def __init__(self, dataset: Dataset, schema: Schema, source: str = "<facts>",
                 readers: Optional[FactReaders] = None) -> None:
        self.dataset_model = dataset
        self.schema = schema
        self.source = source
        self.home = object()  # the evaluation state of its entities' values (records.ProvMap.home)
        self.dataset = Entity("dataset", "dataset", dataset, path="dataset", home=self.home)
        self.by_kind: dict[str, list[Entity]] = {"dataset": [self.dataset]}  # kind -> its entities made so far
        self.children: dict[tuple[str, str], Any] = {}  # (entity path, attribute) -> its entity or entities
        self.readers = readers if readers is not None and readers.schema is schema else FactReaders(schema)

    def made(self, kind: str) -> list[Entity]:
        """The entities of `kind` made so far (a list to add those made next to)."""
        return self.by_kind.setdefault(kind, [])

    def child(self, ent: Entity, name: str, make: Callable[[], Any]) -> Any:
        """The entity or entities of fact `name` of `ent`, made by `make` the first time."""
        key = (ent.path, name)
        got = self.children.get(key)
        if got is None:
            got = self.children[key] = make()
        return got

    def fact(self, ent: Entity, name: str) -> Any:
        """A fact attribute of an entity, canonical; Unknown when absent."""
        if ent.model is None:
            return Unknown([f"{ent.path}.{name}"])
        # (ent.src + name is where the value sits in the summary: see summary_path)
        read = self.readers.readers.get((ent.kind, name)) or self.readers.get(ent.kind, name)
        return read(self, getattr(ent.model, name), ent)


def summary_path(ent: Entity, name: str) -> str:
    """Where a fact sits in the summary file: ``spws[2].nchan``, ``ebs[0].baselines.l80``."""
    return f"{ent.src}.{name}" if ent.src else name
