"""Near-duplicate records and outliers of a map.

Duplicates are found through the vector store's nearest-neighbour search (each point asks for its
few nearest points above a similarity threshold), never through an all-pairs matrix. Outliers are
the points farthest, on the map, from the centre of their topic, measured in units of that topic's
typical spread.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import polars as pl

from . import VectorStore

__all__ = ["near_duplicate_pairs", "topic_outliers"]


def near_duplicate_pairs(
    store: VectorStore, ids: Sequence[str], vectors: np.ndarray, threshold: float = 0.95, neighbours: int = 5
) -> pl.DataFrame:
    """Pairs of points whose cosine similarity is at least ``threshold``: columns ``a``, ``b``
    (point ids, ``a < b``, each pair once) and ``similarity``, most similar first."""
    found: dict[tuple[str, str], float] = {}
    for own, hits in zip(ids, store.neighbours(vectors, k=neighbours + 1, min_score=threshold)):
        for other, score in hits:
            if other != own:
                pair = (own, other) if own < other else (other, own)
                found[pair] = max(found.get(pair, score), score)
    frame = pl.DataFrame(
        {"a": [p[0] for p in found], "b": [p[1] for p in found], "similarity": list(found.values())},
        schema={"a": pl.String, "b": pl.String, "similarity": pl.Float64},
    )
    return frame.sort(["similarity", "a", "b"], descending=[True, False, False])


def topic_outliers(xy: np.ndarray, topic_ids: np.ndarray, top: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``top`` points farthest from their topic's centre (median), with their distance
    divided by the topic's median distance (1 = typical, 5 = five times farther than typical)."""
    xy = np.asarray(xy, dtype=np.float64)
    topic_ids = np.asarray(topic_ids)
    score = np.zeros(len(xy))
    for topic in np.unique(topic_ids):
        members = np.flatnonzero(topic_ids == topic)
        distance = np.linalg.norm(xy[members] - np.median(xy[members], axis=0), axis=1)
        typical = float(np.median(distance)) or 1.0
        score[members] = distance / typical
    order = np.argsort(-score, kind="stable")[: max(0, top)]
    return order, score[order]
