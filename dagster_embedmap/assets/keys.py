"""The asset keys of one map, step by step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import dagster as dg

__all__ = ["MapKeys", "STEPS", "STEP_TAG", "MAP_TAG", "TRAINED_BY_TAG"]

STEPS = ("documents", "embeddings", "collection", "projection_model", "projection", "topics", "map", "duplicates")
"""The map's steps, upstream first: one asset each."""

STEP_TAG = "embedmap/step"
"""Metadata entry naming the step of each of a map's assets (how :meth:`MapKeys.of` finds them)."""

MAP_TAG = "embedmap/map"
"""Metadata entry naming the map each asset belongs to."""

TRAINED_BY_TAG = "embedmap/trained_by"
"""Metadata entry of a classifier's per-partition classes asset: the key of the asset that trains it
(what :func:`~dagster_embedmap.materialize_map` asks the instance about before tagging partitions)."""


@dataclass(frozen=True)
class MapKeys:
    """The asset keys of one map: by default ``<prefix>/documents`` ... ``<prefix>/map``; a translator
    (:class:`~dagster_embedmap.EmbedMapTranslator`) may give any step another key."""

    by_step: tuple[tuple[str, dg.AssetKey], ...]

    @classmethod
    def for_map(cls, name: str, key_prefix: Sequence[str] | str | None = None) -> "MapKeys":
        """The default keys of map ``name`` (prefix ``key_prefix``, else the name)."""
        prefix = (name,) if key_prefix is None else ((key_prefix,) if isinstance(key_prefix, str) else tuple(key_prefix))
        return cls(tuple((step, dg.AssetKey([*prefix, step])) for step in STEPS))

    @classmethod
    def from_mapping(cls, keys: Mapping[str, dg.AssetKey]) -> "MapKeys":
        missing = [s for s in STEPS if s not in keys]
        if missing:
            raise ValueError(f"no asset key for step(s) {missing}")
        return cls(tuple((step, keys[step]) for step in STEPS))

    @classmethod
    def of(cls, defs: dg.Definitions, name: str) -> "MapKeys":
        """The keys of map ``name`` as built in ``defs`` (whatever its translator made of them)."""
        found: dict[str, dg.AssetKey] = {}
        for asset in defs.assets or []:
            if isinstance(asset, dg.AssetsDefinition):
                for key, spec in asset.specs_by_key.items():
                    meta = spec.metadata or {}
                    if meta.get(MAP_TAG) == name and meta.get(STEP_TAG) in STEPS:
                        found[meta[STEP_TAG]] = key
        if not found:
            raise ValueError(f"these definitions hold no map named {name!r}")
        return cls.from_mapping(found)

    def key(self, step: str) -> dg.AssetKey:
        return dict(self.by_step)[step]

    documents = property(lambda self: self.key("documents"))
    embeddings = property(lambda self: self.key("embeddings"))
    collection = property(lambda self: self.key("collection"))
    projection_model = property(lambda self: self.key("projection_model"))
    projection = property(lambda self: self.key("projection"))
    topics = property(lambda self: self.key("topics"))
    map = property(lambda self: self.key("map"))
    duplicates = property(lambda self: self.key("duplicates"))

    @property
    def ingest(self) -> list[dg.AssetKey]:
        """Per partition, before any layout: documents, embeddings, collection."""
        return [self.documents, self.embeddings, self.collection]

    @property
    def per_partition(self) -> list[dg.AssetKey]:
        return [*self.ingest, self.projection]

    @property
    def summary(self) -> list[dg.AssetKey]:
        """Global, cheap, after the points are placed: topics and the map."""
        return [self.topics, self.map]

    @property
    def global_(self) -> list[dg.AssetKey]:
        return [self.projection_model, *self.summary]
