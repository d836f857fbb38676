"""A map's points read back from the store as one table: the collection is the system of record."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import polars as pl

from . import VectorStore

__all__ = ["points_frame", "POINT_FIELDS", "PIPELINE_FIELDS", "is_pipeline_field", "metadata_columns",
           "level_field", "topic_levels", "full_texts", "vector_hashes", "placement_fields", "class_fields"]

# Payload fields the pipeline itself writes; every other payload field is the record's metadata.
POINT_FIELDS = ("record_id", "partition", "text", "x", "y", "topic_id", "topic_label")
# Bookkeeping fields, never shown as metadata:
# - content_hash: the hash of the record's text (of its text and vector when the source brings vectors);
# - vector_hash: the hash of the vector stored with the point (see vector_hashes);
# - layout_version: the layout model that placed the point;
# - xy_hash: the vector_hash the point's x, y were computed from;
# - topic_hash: the xy_hash its topics were assigned for.
# A point's place and topics are current when vector_hash == xy_hash == topic_hash: whenever its vector
# changes, it is placed and given a topic again.
PIPELINE_FIELDS = ("content_hash", "layout_version", "vector_hash", "xy_hash", "topic_hash", "image_hash")
_LEVEL_FIELD = re.compile(r"^topic_(\d+)_(id|label)$")
# A classifier's fields: class_<name> and class_<name>_score are shown (hover, colour-by, export) like
# metadata; class_<name>_version (the classifier that tagged the point) is bookkeeping.
_CLASS_VERSION_FIELD = re.compile(r"^class_[a-z][a-z0-9_]*_version$")


def class_fields(name: str) -> tuple[str, str, str]:
    """The payload fields classifier ``name`` writes: its class, its score, its version."""
    return f"class_{name}", f"class_{name}_score", f"class_{name}_version"


def level_field(level: int, kind: str) -> str:
    """The payload / column name of a topic level's id (``kind="id"``) or label: ``topic_0_id``, ..."""
    if kind not in ("id", "label"):
        raise ValueError(f"kind must be 'id' or 'label', got {kind!r}")
    return f"topic_{level}_{kind}"


def vector_hashes(vectors: np.ndarray) -> list[str]:
    """One fingerprint per row of ``vectors``: sha256 of its float32 bytes, 16 hex digits."""
    rows = np.ascontiguousarray(np.asarray(vectors, dtype="<f4"))
    return [hashlib.sha256(row.tobytes()).hexdigest()[:16] for row in rows]


def placement_fields(levels: int) -> tuple[str, ...]:
    """The payload fields that say where a point sits and which topics it has, at ``levels`` levels:
    kept while the point's vector is unchanged, dropped (to be computed again) when it changes."""
    topics = tuple(level_field(level, kind) for level in range(levels) for kind in ("id", "label"))
    return ("x", "y", "layout_version", "xy_hash", "topic_id", "topic_label", "topic_hash") + topics


def is_pipeline_field(name: str) -> bool:
    """True for the fields the pipeline writes (place, topics at every level, bookkeeping), not shown as
    the record's metadata (a classifier's class and score are shown)."""
    return (name in POINT_FIELDS or name in PIPELINE_FIELDS or _LEVEL_FIELD.match(name) is not None
            or _CLASS_VERSION_FIELD.match(name) is not None)


def metadata_columns(columns: Iterable[str]) -> list[str]:
    """The record's own metadata among ``columns`` (or payload keys), in their order; ``id`` excluded."""
    return [c for c in columns if c != "id" and not is_pipeline_field(c)]


def topic_levels(columns: Iterable[str]) -> int:
    """How many topic levels the columns (or payload keys) carry: ``topic_0_id`` .. ``topic_{n-1}_id``."""
    found = {int(m.group(1)) for c in columns if (m := _LEVEL_FIELD.match(c)) and m.group(2) == "id"}
    n = 0
    while n in found:
        n += 1
    return n


def points_frame(store: VectorStore) -> pl.DataFrame:
    """One row per point, sorted by id: ``id`` (the record id), ``partition``, ``x``, ``y``,
    ``topic_id``, ``topic_label`` (the finest topic), ``text`` (the stored snippet), the topic levels
    ``topic_0_id``, ``topic_0_label``, ... (broadest first), the record's metadata fields, then the
    bookkeeping fields (``content_hash``, ``layout_version``). Points not yet projected or labelled
    have nulls there."""
    rows = [record.payload or {} for record in store.scroll(with_payload=True, page_size=16384)]
    keys = dict.fromkeys(key for row in rows for key in row)
    depth = topic_levels(keys)
    schema: dict[str, Any] = {
        "id": pl.String,
        "partition": pl.String,
        "x": pl.Float32,
        "y": pl.Float32,
        "topic_id": pl.Int64,
        "topic_label": pl.String,
        "text": pl.String,
    }
    for level in range(depth):
        schema[level_field(level, "id")] = pl.Int64
        schema[level_field(level, "label")] = pl.String
    source = {"id": "record_id"}
    extra = metadata_columns(k for k in keys if k != "record_id")
    extra += [k for k in PIPELINE_FIELDS if k in keys]
    # one pass in polars: the pipeline's fields with their types, the metadata's inferred over every row
    table = pl.from_dicts(rows, schema_overrides={source.get(n, n): t for n, t in schema.items() if source.get(n, n) in keys},
                          infer_schema_length=None) if rows else pl.DataFrame()
    frame = table.select(
        [(pl.col(source.get(n, n)) if source.get(n, n) in keys else pl.lit(None, dtype=t)).alias(n) for n, t in schema.items()]
        + [pl.col(k) for k in extra]
    ) if rows else pl.DataFrame(schema=schema)
    return frame.sort("id")


def full_texts(points: pl.DataFrame, documents_of: Callable[[str], Path]) -> list[str]:
    """Each point's full text, in the order of ``points`` (the payload only holds a snippet).

    ``documents_of(partition)`` is the partition's documents parquet (``id``, ``text``); a point whose
    partition file is gone keeps its snippet.
    """
    frames = []
    for partition in points["partition"].drop_nulls().unique().sort().to_list():
        path = documents_of(partition)
        if path.exists():
            frames.append(pl.read_parquet(path, columns=["id", "text"]).with_columns(pl.lit(partition).alias("partition")))
    if not frames:
        return points["text"].fill_null("").to_list()
    full = points.select("id", "partition", "text").join(
        pl.concat(frames).rename({"text": "full_text"}), on=["partition", "id"], how="left", maintain_order="left"
    )
    return full.select(pl.coalesce("full_text", "text").fill_null("")).to_series().to_list()
