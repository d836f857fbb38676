"""Semantic search over a map: the query is embedded by the map's own model and settings, Qdrant finds
the nearest records, optionally within one topic, one partition or matching metadata values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..embedding import Encoder
from ..errors import EmbedMapInputError
from .payload import is_pipeline_field, level_field, topic_levels
from . import VectorStore

__all__ = ["SearchHit", "search_map", "check_topic_filter", "explain_no_match"]

NOISE_TOPIC = -1
"""The topic id of the records no topic holds (outliers); always a valid filter."""


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


def _some(values: Sequence[Any], limit: int = 8, show=repr) -> str:
    shown = ", ".join(show(v) for v in list(values)[:limit])
    more = len(values) - limit
    return (shown + (f" and {more} more" if more > 0 else "")) or "none"


def check_topic_filter(topics, topic: int | str | None, level: int | None) -> None:
    """Refuse a ``topic`` or ``level`` the map's topic table (``topics.parquet``: level, topic_id, label)
    does not hold, with :class:`EmbedMapInputError` listing those it holds."""
    levels = sorted(int(v) for v in topics.get_column("level").unique().to_list())
    if not levels:
        return
    if level is not None and level not in levels:
        raise EmbedMapInputError(
            f"topic level {level} does not exist: the map's topic tree has levels {levels[0]} (broadest) to "
            f"{levels[-1]} (finest)",
            fix="pass level= one of those", cli_fix="pass --level one of those")
    if topic is None:
        return
    at = level if level is not None else levels[-1]
    rows = topics.filter((topics.get_column("level") == at) & (topics.get_column("topic_id") >= 0)).sort("topic_id")
    ids, labels = rows.get_column("topic_id").to_list(), rows.get_column("label").to_list()
    known = [f"{i} {label!r}" for i, label in zip(ids, labels)]
    if isinstance(topic, str) and topic not in labels:
        what = f"no topic at level {at} is labelled {topic!r}"
    elif not isinstance(topic, str) and topic not in ids and topic != NOISE_TOPIC:
        what = f"topic {topic} does not exist at level {at}"
    else:
        return
    raise EmbedMapInputError(
        f"{what}; its topics are {_some(known, show=str)} ({NOISE_TOPIC}: records in no topic)",
        fix="pass topic= one of those ids or exact labels, or level= another level",
        cli_fix="pass --topic one of those ids or exact labels, or --level another level")


def explain_no_match(store: VectorStore, *, partition: str | None = None,
                     where: Mapping[str, Any] | None = None) -> None:
    """After a search found nothing: refuse a ``partition``, a ``where`` field or a value that no point
    of the map has, with :class:`EmbedMapInputError` listing those it has. Returns when each filter
    alone matches some point (their combination matches none)."""
    if partition is not None and not store.count(partition):
        partitions = sorted({str(p.payload.get("partition")) for p in store.scroll(with_payload=["partition"])})
        raise EmbedMapInputError(f"partition {partition!r} does not exist in the map; its partitions are "
                                 f"{_some(partitions)}", fix="pass partition= one of those",
                                 cli_fix="pass --partition one of those")
    for name, value in (where or {}).items():
        values = [p.payload[name] for p in store.scroll(with_payload=[name]) if name in p.payload]
        if not values:
            sample = next(iter(store.scroll(with_payload=True, page_size=256)), None)
            fields = [k for k in (sample.payload if sample else {}) if not is_pipeline_field(k)]
            raise EmbedMapInputError(f"no record of the map has the field {name!r}; its metadata fields are "
                                     f"{_some(sorted(fields))}", fix="filter on one of those with where=",
                                     cli_fix="filter on one of those with --where FIELD=VALUE")
        if value not in values:
            distinct = sorted({v for v in values if isinstance(v, (str, int, float, bool))}, key=repr)
            raise EmbedMapInputError(f"no record of the map has {name}={value!r}; its values of {name!r} include "
                                     f"{_some(distinct)}", fix=f"pass where={{{name!r}: one of those}}",
                                     cli_fix=f"pass --where {name}=VALUE with one of those values")
