"""What the HTML map needs to search by meaning in the browser, offline: a static token table and
every record's vector, in one small shared space.

- The space: the records' first ``dims`` principal axes (PCA of the centred record vectors, fitted on
  at most 20,000 of them, seeded). Ranking by a dot product in it keeps most of a full search's order
  (on the demo map the top 10 of 20 short queries overlap ``embedmap search``'s by about 0.7).
- A query's vector is the sum of its tokens' rows (:class:`..embedding.static.StaticTable`), each row
  weighted ``a / (a + p(token))`` with ``p`` the token's share of the map's own texts (smooth inverse
  frequency): words every record has count little, so a sentence query is led by its rare words.
- Both are stored as int8 with one scale per axis; ``scale`` is the product of the two, so the page
  ranks with integer rows and one float multiply per axis. Points cost ``dims`` bytes each before
  base64 (96 dims: about 1.3 MB of page per 10,000 points); the table and vocabulary about 4 MB of
  page in all (``benchmarks/semantic_search.py`` measures both).

Above :data:`MAX_POINTS` points the page keeps words-only search (the vectors alone would be
hundreds of megabytes).
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np

__all__ = ["MAX_POINTS", "semantic_payload"]

#: records above which the page searches by words only
MAX_POINTS = 250_000
_FIT_SAMPLE = 20_000
_CHUNK = 50_000


def _int8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (rows x dims) as int8 and the per-dim scale that maps them back."""
    peak = np.abs(values).max(axis=0) if len(values) else np.zeros(values.shape[1])
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    return np.clip(np.rint(values / scale), -127, 127).astype(np.int8), scale


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def semantic_payload(vectors: np.ndarray, texts: Sequence[str], table, *, dims: int = 96, a: float = 1e-3,
                     seed: int = 0) -> dict[str, Any] | None:
    """The page's semantic-search data for records with ``vectors`` (rows in the page's point order)
    and ``texts`` (for the token frequencies), with ``table`` (a ``StaticTable`` of the model that made
    the vectors); None when there are more than :data:`MAX_POINTS` records or none.

    Returns ``{dims, spec, vocab, table, points, scale}``: the tokenizer spec, the vocabulary joined
    by newlines, the int8 token rows and point vectors (base64) and the per-axis scale.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0 or n > MAX_POINTS:
        return None
    if vectors.ndim != 2 or vectors.shape[1] != table.vectors.shape[1]:
        raise ValueError(f"semantic_payload: the vectors have shape {vectors.shape}, the static table "
                         f"{table.vectors.shape[1]} dimensions; they must come from the same model")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, _FIT_SAMPLE, replace=False)) if n > _FIT_SAMPLE else np.arange(n)
    fit = vectors[sample].astype(np.float64)
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    dims = int(min(dims, vt.shape[0]))
    basis = vt[:dims].T
    # an axis's sign is arbitrary; fix it so the same records give the same bytes
    basis *= np.where(basis[np.abs(basis).argmax(axis=0), np.arange(dims)] < 0, -1.0, 1.0)
    projected = np.empty((n, dims), dtype=np.float64)
    for lo in range(0, n, _CHUNK):
        projected[lo : lo + _CHUNK] = (vectors[lo : lo + _CHUNK] - mean) @ basis
    points, point_scale = _int8(projected)

    counted = [texts[i] or "" for i in sample] if len(texts) == n else list(texts)
    counts = table.token_counts(counted).astype(np.float64)
    share = counts / max(counts.sum(), 1.0)
    rows = (table.vectors.astype(np.float64) @ basis) * (a / (a + share))[:, None]
    rows, row_scale = _int8(rows)
    return {
        "dims": dims,
        "spec": table.spec,
        "vocab": "\n".join(table.tokens),
        "table": _b64(rows),
        "points": _b64(points),
        "scale": [float(f"{v:.6g}") for v in row_scale * point_scale],
    }
