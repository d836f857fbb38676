"""The duplicates step: near-duplicate pairs through the store's nearest-neighbour search, and the points
farthest from their topic."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from ..core.store.duplicates import near_duplicate_pairs, topic_outliers
from ..core.paths import Log, MapLayout, atomic_path
from ..core.store import VectorStore
from .common import without_pending

__all__ = ["DuplicatesResult", "find_duplicates"]


@dataclass
class DuplicatesResult:
    pairs: pl.DataFrame
    """``id_a``, ``id_b`` (record ids), ``similarity``, most similar first."""
    outliers: pl.DataFrame
    """``id``, ``topic_label``, ``distance`` (to the topic's centre, over the topic's typical distance)."""


def find_duplicates(
    open_store: Callable[[], AbstractContextManager[VectorStore]],
    layout: MapLayout,
    name: str,
    *,
    threshold: float,
    log: Log,
    collection_step: str,
    top_outliers: int = 50,
) -> DuplicatesResult:
    """Write ``layout.duplicates`` (record pairs of cosine similarity >= ``threshold``) and
    ``layout.outliers`` (the ``top_outliers`` placed points farthest from their topic on the map);
    points of half-written partitions are left out."""
    with open_store() as store:
        ids, vectors, payloads = without_pending(layout, name, collection_step, log, *store.read_vectors())
        pairs = near_duplicate_pairs(store, ids, vectors, threshold=threshold)
    record = {pid: str(p.get("record_id")) for pid, p in zip(ids, payloads)}
    pairs = pairs.with_columns(
        pl.col("a").replace_strict(record, return_dtype=pl.String).alias("id_a"),
        pl.col("b").replace_strict(record, return_dtype=pl.String).alias("id_b"),
    ).select("id_a", "id_b", "similarity")
    placed = [i for i, p in enumerate(payloads) if p.get("x") is not None and p.get("topic_id") is not None]
    xy = np.asarray([[payloads[i]["x"], payloads[i]["y"]] for i in placed], dtype=np.float64).reshape(-1, 2)
    order, score = topic_outliers(xy, np.asarray([payloads[i]["topic_id"] for i in placed]), top=top_outliers)
    outliers = pl.DataFrame(
        {"id": [record[ids[placed[i]]] for i in order],
         "topic_label": [payloads[placed[i]].get("topic_label") for i in order],
         "distance": score},
        schema={"id": pl.String, "topic_label": pl.String, "distance": pl.Float64},
    )
    with atomic_path(layout.duplicates) as tmp:
        pairs.write_parquet(tmp)
    with atomic_path(layout.outliers) as tmp:
        outliers.write_parquet(tmp)
    return DuplicatesResult(pairs=pairs, outliers=outliers)
