"""The map step: read every point back from the store, audit it, draw the PNG preview and the HTML map."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import polars as pl

from ..core.embedding.static import static_table
from ..core.paths import Log, MapLayout, atomic_path, read_or_set_aside
from ..core.store.payload import metadata_columns, points_frame
from ..core.render import draw_preview, render_html_map, semantic_payload
from ..core.render.html import cap_thumbnails
from ..core.render.semantic import MAX_POINTS
from ..core.store import VectorStore
from .audit import audit_points
from .common import Check, pending_partitions

__all__ = ["MapRender", "render_map"]


@dataclass
class MapRender:
    """What :func:`render_map` drew and found."""

    points: int
    """Points on the map (those of half-written partitions left out)."""
    collection_points: int
    documents: int
    """Documents over every readable partition."""
    pending: set[str]
    """Partitions whose points are half written (left off the map)."""
    unmapped: int
    """Points without coordinates or without a topic."""
    topics: pl.DataFrame | None
    """The topic table, None when it is missing or unreadable."""
    checks: list[Check] = field(default_factory=list)
    preview_labels: list[tuple[int, str]] = field(default_factory=list)
    """The labels the PNG preview shows, ``(level, label)``: the HTML map's overview labels (same rules)."""
    semantic: bool = False
    """Whether the HTML map searches by meaning (it carries a static table and the points' vectors)."""
    thumbnails: tuple[int, int, int] = (0, 0, 0)
    """Image records with a thumbnail on the page, image records, and the thumbnails' bytes (the page
    carries at most :data:`~..core.render.html.THUMBNAIL_BUDGET` bytes of them)."""


def render_map(
    open_store: Callable[[], AbstractContextManager[VectorStore]],
    layout: MapLayout,
    name: str,
    partition_keys: Iterable[str],
    *,
    log: Log,
    collection_step: str,
    topics_step: str,
    semantic_model: str | None = None,
    model_cache_dir: str | None = None,
) -> MapRender:
    """Draw ``layout.png`` and ``layout.html`` from the collection, and check the map: one point per
    document, every point placed and in a topic, every point agreeing with its record.

    ``open_store`` opens the collection read-only; ``partition_keys`` are the partitions that exist now;
    ``collection_step`` / ``topics_step`` name the steps a fix reruns (in the checks and warnings).
    With ``semantic_model`` (the model that embedded the records; ``model_cache_dir`` its cache folder)
    the page also searches by meaning (:func:`..core.render.semantic_payload`)."""
    with open_store() as store:
        points = points_frame(store)
        total = store.count()
        # over MAX_POINTS the page searches by words only: the vectors are not read at all
        vectors = _vectors_by_record(store) if semantic_model and total <= MAX_POINTS else None
    if semantic_model and vectors is None:
        log.info(f"the map has {total:,} points, more than {MAX_POINTS:,}: its page searches by words only")
    pending = pending_partitions(layout, name, collection_step, log)
    points = points.filter(~pl.col("partition").is_in(list(pending)))
    partition_keys = list(partition_keys)
    audit = audit_points(points, layout, set(partition_keys) - pending)
    documents = sum(
        pl.scan_parquet(layout.documents(p)).select(pl.len()).collect().item()
        for p in partition_keys
        if layout.documents(p).exists() and p not in audit.unreadable
    )
    title = f"{name}: {points.height} records"
    drawable = points.drop_nulls(["x", "y"]).with_columns(pl.col("topic_id").fill_null(-1))
    drawable, thumbnails = _with_thumbnails(drawable, layout, set(partition_keys) - pending - set(audit.unreadable))
    png, preview_labels = draw_preview(drawable, title=title)
    with atomic_path(layout.png) as tmp:
        tmp.write_bytes(png)
    semantic = _semantic(drawable, vectors, semantic_model, model_cache_dir, log) if vectors is not None else None
    render_html_map(drawable, layout.html, title=title, extra_columns=metadata_columns(points.columns),
                    semantic=semantic)
    unmapped = points.filter(pl.col("x").is_null() | pl.col("topic_id").is_null() | (pl.col("topic_id") < 0)).height
    topics = read_or_set_aside(layout.topics, pl.read_parquet, log=log, holds="the topic table",
                               then=f"the map is drawn without it; materialize {topics_step} again")
    checks = [
        Check("collection_matches_documents", passed=total == documents and not pending,
              metadata={"collection_points": total, "documents": documents, "incomplete_partitions": sorted(pending)},
              description=(f"partition(s) {sorted(pending)} were interrupted while writing their points and are "
                           f"left off the map; rematerialize their collection step") if pending else None),
        Check("every_point_mapped", passed=unmapped == 0, metadata={"unmapped_points": unmapped,
                                                                      "points": points.height}),
        audit.check(),
    ]
    return MapRender(points=points.height, collection_points=total, documents=documents, pending=pending,
                     unmapped=unmapped, topics=topics, checks=checks, preview_labels=preview_labels,
                     semantic=semantic is not None, thumbnails=thumbnails)


def _with_thumbnails(drawable: pl.DataFrame, layout: MapLayout, partitions: set[str]
                     ) -> tuple[pl.DataFrame, tuple[int, int, int]]:
    """The points with their records' thumbnails (read from the partitions' documents, where they have
    images), capped for the page (:func:`cap_thumbnails`); kept, image records, bytes kept."""
    frames = []
    for partition in sorted(partitions):
        path = layout.documents(partition)
        if path.exists() and "thumbnail" in pl.read_parquet_schema(path):
            frames.append(pl.read_parquet(path, columns=["id", "thumbnail"]).with_columns(
                pl.lit(partition, dtype=pl.String).alias("_partition")))
    if not frames:
        return drawable, (0, 0, 0)
    thumbs = pl.concat(frames).filter(pl.col("thumbnail").is_not_null())
    joined = drawable.with_columns(pl.col("partition").cast(pl.String).alias("_partition")).join(
        thumbs, on=["_partition", "id"], how="left", maintain_order="left").drop("_partition")
    capped, kept, size = cap_thumbnails(joined)
    return capped, (kept, thumbs.height, size)


def _vectors_by_record(store: VectorStore) -> dict[tuple[str, str], np.ndarray]:
    """Every point's vector (float32), by (partition, record id)."""
    return {(str(r.payload.get("partition")), str(r.payload.get("record_id"))): np.asarray(r.vector, dtype=np.float32)
            for r in store.scroll(with_payload=["partition", "record_id"], with_vectors=True, page_size=4096)}


def _semantic(drawable: pl.DataFrame, vectors: dict, model: str, cache_dir: str | None, log: Log) -> dict | None:
    """The page's data for search by meaning, or None (logged) when the model cannot give it."""
    table, why = static_table(model, cache_dir)
    if table is None:
        log.warning(f"the map's page searches by words only: {why}")
        return None
    keys = zip(drawable["partition"].cast(pl.String).fill_null("None"), drawable["id"].cast(pl.String))
    rows = [vectors.get(key) for key in keys]
    if not rows or any(v is None for v in rows):
        log.warning("the map's page searches by words only: some points have no stored vector")
        return None
    texts = drawable["text"].fill_null("").to_list() if "text" in drawable.columns else [""] * drawable.height
    return semantic_payload(np.asarray(rows, dtype=np.float32), texts, table)
