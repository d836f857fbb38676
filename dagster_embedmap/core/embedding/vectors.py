"""Vectors as arrays: stacking those a user brought, reusing cached ones, and checking their health."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import polars as pl



def stack_vectors(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Vectors a user brought (one list per record, already validated) as a float32 ``(n, d)`` array."""
    if len(rows) == 0:
        return np.empty((0, 0), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def split_cached(
    documents: pl.DataFrame, previous: pl.DataFrame | None, fingerprint: str,
    earlier: tuple[str, Callable[[str], bool]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Which records can keep their vector and which need embedding.

    ``documents`` has ``id``, ``text`` and ``content_hash``; ``previous`` is the partition's last
    embeddings (``id``, ``content_hash``, ``model``, ``vector``) or None. A record keeps its vector when
    its id, its text's hash and the model fingerprint are all unchanged; ``earlier`` is an earlier
    fingerprint of the same model and a test of which texts it embedded alike (their vectors are kept
    too). Returns ``(cached: id, vector, truncated; todo: id, text, and image for image records)``; ``truncated`` (the text was
    longer than the model's window) is null for vectors written before it was recorded.
    """
    keep = ["id", "text"] + (["image"] if "image" in documents.columns else [])  # what the model is given
    if previous is None or "model" not in previous.columns or previous.is_empty():
        empty = pl.DataFrame(schema={"id": pl.String, "vector": pl.List(pl.Float32), "truncated": pl.Boolean})
        return empty, documents.select(keep)
    truncated = pl.col("truncated") if "truncated" in previous.columns else pl.lit(None, dtype=pl.Boolean)
    fingerprints = [fingerprint] + ([earlier[0]] if earlier is not None else [])
    usable = previous.filter(pl.col("model").is_in(fingerprints)).select(
        "id", "content_hash", "model", pl.col("vector").cast(pl.List(pl.Float32)), truncated.alias("truncated")
    )
    matched = documents.select(*keep, "content_hash").join(usable, on=["id", "content_hash"], how="left")
    if earlier is not None:  # an earlier fingerprint's vector is kept only for the texts it embedded alike
        alike = earlier[1]
        redo = (pl.col("model") == earlier[0]) & ~pl.col("text").map_elements(alike, return_dtype=pl.Boolean)
        matched = matched.with_columns(pl.when(redo).then(None).otherwise(pl.col("vector")).alias("vector"))
    cached = matched.filter(pl.col("vector").is_not_null()).select("id", "vector", "truncated")
    todo = matched.filter(pl.col("vector").is_null()).select(keep)
    return cached, todo


def vector_health(vectors: np.ndarray, expected_dimension: int) -> dict[str, object]:
    """Sanity of a batch of vectors: the dimension, rows with NaN/inf, all-zero rows, and a verdict."""
    dimension = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    if vectors.size:
        non_finite = int((~np.isfinite(vectors)).any(axis=1).sum())
        zero = int((np.abs(vectors).sum(axis=1) == 0).sum())
    else:
        non_finite = zero = 0
    passed = non_finite == 0 and zero == 0 and (len(vectors) == 0 or dimension == int(expected_dimension))
    return {
        "dimension": dimension,
        "expected_dimension": int(expected_dimension),
        "non_finite_rows": non_finite,
        "zero_rows": zero,
        "passed": bool(passed),
    }




def _unit_rows(vecs: np.ndarray) -> np.ndarray:
    vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    return vecs
