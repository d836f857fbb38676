"""A map's points read back from the store as one table: the collection is the system of record."""

from __future__ import annotations

from typing import Any

import polars as pl

from .store import VectorStore

__all__ = ["points_frame", "POINT_FIELDS"]

# Payload fields the pipeline itself writes; every other payload field is the record's metadata.
POINT_FIELDS = ("record_id", "partition", "text", "x", "y", "topic_id", "topic_label")


def points_frame(store: VectorStore) -> pl.DataFrame:
    """One row per point: ``id`` (the record id), ``partition``, ``x``, ``y``, ``topic_id``,
    ``topic_label``, ``text`` (the stored snippet), then the metadata fields, sorted by id.
    Points not yet projected or labelled have nulls there."""
    rows: list[dict[str, Any]] = []
    meta_keys: dict[str, None] = {}
    for record in store.scroll(with_payload=True):
        payload = dict(record.payload or {})
        for key in payload:
            if key not in POINT_FIELDS:
                meta_keys.setdefault(key, None)
        rows.append(payload)
    schema = {
        "id": pl.String,
        "partition": pl.String,
        "x": pl.Float32,
        "y": pl.Float32,
        "topic_id": pl.Int64,
        "topic_label": pl.String,
        "text": pl.String,
    }
    data: dict[str, list[Any]] = {
        "id": [r.get("record_id") for r in rows],
        "partition": [r.get("partition") for r in rows],
        "x": [r.get("x") for r in rows],
        "y": [r.get("y") for r in rows],
        "topic_id": [r.get("topic_id") for r in rows],
        "topic_label": [r.get("topic_label") for r in rows],
        "text": [r.get("text") for r in rows],
    }
    frame = pl.DataFrame(data, schema=schema)
    if meta_keys:
        meta = pl.DataFrame([{k: r.get(k) for k in meta_keys} for r in rows], infer_schema_length=None)
        frame = pl.concat([frame, meta], how="horizontal")
    return frame.sort("id")
