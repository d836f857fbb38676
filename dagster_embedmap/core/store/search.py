"""Semantic search over a map: the query is embedded by the map's own model and settings, Qdrant finds
the nearest records, optionally within one topic, one partition or matching metadata values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..embedding import Encoder
from .payload import is_pipeline_field, level_field, topic_levels
from . import VectorStore

__all__ = ["SearchHit", "search_map"]


@dataclass
class SearchHit:
    id: str
    score: float
    partition: str | None
    x: float | None
    y: float | None
    topic_id: int | None
    topic_label: str | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    topic_path: list[str] = field(default_factory=list)
    """The record's topic label at every level, broadest first (the last is ``topic_label``)."""


def search_map(
    store: VectorStore,
    encoder: Encoder,
    query: str,
    k: int = 10,
    *,
    topic: int | str | None = None,
    level: int | None = None,
    partition: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> list[SearchHit]:
    """The ``k`` records nearest to ``query`` (cosine similarity), best first.

    ``topic`` is a topic id (int) or an exact topic label (str) of the finest level, or of the topic
    tree's ``level`` (0 = broadest) when given; ``partition`` a partition key; ``where`` exact matches
    on metadata fields. All filters combine (AND).
    """
    if not query or not query.strip():
        raise ValueError("the search query is empty")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    must: dict[str, Any] = dict(where or {})
    if level is not None and level < 0:
        raise ValueError(f"level must be 0 (broadest) or more, got {level}")
    if topic is not None:
        kind = "label" if isinstance(topic, str) else "id"
        must[level_field(level, kind) if level is not None else f"topic_{kind}"] = topic
    if partition is not None:
        must["partition"] = partition
    vector = encoder.encode([query])[0]
    hits = []
    for _, score, payload in store.search(vector, k=k, must=must or None):
        hits.append(
            SearchHit(
                id=str(payload.get("record_id")),
                score=score,
                partition=payload.get("partition"),
                x=payload.get("x"),
                y=payload.get("y"),
                topic_id=payload.get("topic_id"),
                topic_label=payload.get("topic_label"),
                text=payload.get("text") or "",
                metadata={k: v for k, v in payload.items() if not is_pipeline_field(k)},
                topic_path=[str(payload.get(level_field(lv, "label"))) for lv in range(topic_levels(payload))],
            )
        )
    return hits
