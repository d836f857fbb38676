"""What each of a map's steps is as an asset by default (its props), what it depends on, what it checks."""

from __future__ import annotations

import dagster as dg

from .keys import STEPS, MapKeys
from .translator import EmbedMapStepProps

__all__ = ["DEPS", "PARTITIONED", "default_props", "check_specs"]

DEPS: dict[str, tuple[str, ...]] = {
    "documents": (), "embeddings": ("documents",), "collection": ("embeddings",),
    "projection_model": ("collection",), "projection": ("collection", "projection_model"),
    "topics": ("projection",), "map": ("topics",), "duplicates": ("topics",),
}
"""Each step's upstream steps (the documents step also reads the source asset, when there is one)."""

PARTITIONED = frozenset({"documents", "embeddings", "collection", "projection"})

_KINDS = {
    "documents": {"polars", "parquet"}, "embeddings": {"pytorch", "parquet"}, "collection": {"qdrant"},
    "projection_model": {"umap"}, "projection": {"umap"}, "topics": {"hdbscan"}, "map": {"html"},
    "duplicates": {"qdrant", "parquet"},
}


def _descriptions(source: str, collection: str, sample_size: int, duplicate_threshold: float) -> dict[str, str]:
    return {
        "documents": f"Records of one partition {source}, validated: id, text, content hash, metadata.",
        "embeddings": "One vector per record (sentence-transformers, or the source's own vector column), as parquet.",
        "collection": f"The partition's points in Qdrant collection {collection!r}: vector + payload (record id, "
        "partition, text snippet, metadata). Rerunning leaves one point per record; unchanged records keep "
        "their place and topic.",
        "projection_model": f"The 2-D layout model: UMAP fitted on a sample of up to {sample_size} points, chosen "
        "and ordered by vector content (the same records give the same map under any name or partitioning), with "
        "the 10-d cluster space the topics use, versioned, and aligned to the previous version (orthogonal "
        "Procrustes on the shared points) so a refit does not rotate or flip the map.",
        "projection": "The partition's 2-D coordinates from the layout model; x, y written to the payload. Points "
        "already placed by the current layout version keep their place.",
        "topics": "Topics: HDBSCAN's dense cores in the layout's 10-d cluster space, joined by their mean "
        "embedding into fine topics and a tree of broad ones, named by c-TF-IDF candidates the model ranks by "
        "meaning. New points join their neighbours' topic; a recluster (after a refit, or when asked) keeps "
        "matched topics' ids and labels and records births, merges and splits. Points of removed partitions are "
        "dropped here.",
        "map": "The data map: an interactive HTML file, a PNG preview and the topic table, read from Qdrant.",
        "duplicates": f"Near-duplicate pairs (cosine similarity >= {duplicate_threshold}, found through Qdrant's "
        "nearest-neighbour search) and the points farthest from their topic. Materialize it when you want it: "
        "it asks Qdrant about every point.",
    }


def _automation(step: str) -> dg.AutomationCondition | None:
    if step == "duplicates":
        return None  # on demand: it asks Qdrant about every point
    if step == "projection_model":
        # fitted by automation only while missing (once its partitions exist); refitted when asked, by the
        # refit schedule or by the drift sensor, never because a partition landed
        return (dg.AutomationCondition.missing() & ~dg.AutomationCondition.any_deps_missing()
                & ~dg.AutomationCondition.in_progress())
    return dg.AutomationCondition.eager()


def default_props(name: str, keys: MapKeys, group: str, *, source: str, collection: str, sample_size: int,
                  duplicate_threshold: float) -> list[EmbedMapStepProps]:
    """Every step's props, upstream first, as the default translator keeps them."""
    text = _descriptions(source, collection, sample_size, duplicate_threshold)
    return [
        EmbedMapStepProps(map_name=name, step=step, key=keys.key(step), group_name=group, description=text[step],
                          kinds=frozenset(_KINDS[step]), automation_condition=_automation(step),
                          partitioned=step in PARTITIONED)
        for step in STEPS
    ]


def check_specs(step: str, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks a step's asset reports with each materialization."""
    if step == "embeddings":
        return [dg.AssetCheckSpec("embeddings_sane", asset=key,
                                  description="One finite, non-zero vector of the model's dimension per record.")]
    if step == "collection":
        return [dg.AssetCheckSpec("partition_points_match_documents", asset=key,
                                  description="The collection holds exactly one point per document of the partition.")]
    if step == "projection":
        return [dg.AssetCheckSpec("every_point_projected", asset=key,
                                  description="Every point of the partition has finite 2-D coordinates.")]
    if step == "map":
        # the map's checks carry its automation condition, so the runs automation launches for the map
        # select them too and record their results (per-partition checks cannot: a partitioned check would
        # break plain asset backfills, which select assets without their checks)
        eager = dg.AutomationCondition.eager()
        return [
            dg.AssetCheckSpec("collection_matches_documents", automation_condition=eager, asset=key,
                              description="The collection holds as many points as there are documents in all "
                              "partitions."),
            dg.AssetCheckSpec("every_point_mapped", automation_condition=eager, asset=key,
                              description="Every point in the collection has coordinates and a topic."),
            dg.AssetCheckSpec("every_point_current", automation_condition=eager, asset=key,
                              description="Every point agrees with its record: its stored text hash is the "
                              "record's, its place was computed from its current vector and its topic for that "
                              "place."),
        ]
    return []
