"""Exact nearest neighbours by matrix products, for the layout's fitted sample and the points placed on it.

UMAP needs each fitted point's nearest neighbours, and each placed point's nearest fitted points.
umap-learn finds them with pynndescent's approximate search, whose numba code compiles again in
every fresh process (it cannot be cached). For the bounded sample the layout fits on, the exact
neighbours cost a few matrix products in BLAS instead: nothing to compile, no randomness, and the
same answer in every process. Cosine and Euclidean distances only (:data:`EXACT_METRICS`); other
metrics keep umap-learn's own search.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXACT_METRICS", "EXACT_UP_TO", "exact_neighbours"]

EXACT_METRICS = frozenset({"cosine", "euclidean", "l2"})
"""The metrics :func:`exact_neighbours` computes."""

EXACT_UP_TO = 50_000
"""Fitted samples up to this size get exact neighbours (20,000 x 20,000 x 384-d: a few seconds on two
cores); beyond, the products grow with the square of the sample and umap-learn's search is used."""

_ROWS = 1024  # queries per product: 1,024 x 50,000 float32 similarities are 200 MB


def exact_neighbours(data: np.ndarray, k: int, metric: str = "cosine",
                     queries: np.ndarray | None = None, top_k=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``data`` to each row of ``queries`` (default: to each row of ``data``
    itself, which is then its own first neighbour, as umap-learn's graph expects), nearest first:
    ``(indices int32, distances float32)``, each ``(len(queries), k)``. Ties go to the lower index.
    ``top_k`` replaces the compiled selection of ``kernels.top_k`` (the same answer from another build
    of it, ``ahead.py``)."""
    if metric not in EXACT_METRICS:
        raise ValueError(f"exact neighbours support {sorted(EXACT_METRICS)}, not {metric!r}")
    data = np.ascontiguousarray(data, dtype=np.float32)
    own = queries is None
    queries = data if own else np.ascontiguousarray(queries, dtype=np.float32)
    k = int(min(k, len(data)))
    cosine = metric == "cosine"
    if cosine:
        data = _unit(data)
        queries = data if own else _unit(queries)
    squares = None if cosine else np.einsum("ij,ij->i", data, data)
    indices = np.empty((len(queries), k), dtype=np.int32)
    distances = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), _ROWS):
        block = queries[start:start + _ROWS]
        products = block @ data.T
        # larger is nearer: the similarity, or minus the squared distance without the query's own square
        closeness = products if cosine else 2.0 * products - squares[None, :]
        if own:
            rows = np.arange(len(block))
            closeness[rows, start + rows] = np.inf
        top = _top_k(closeness, k) if top_k is None else top_k(np.ascontiguousarray(closeness), k)
        if own:
            near = np.take_along_axis(products, top, axis=1)
        else:
            # a query's distances to its chosen neighbours, each product on its own in float64: BLAS rounds a
            # one-row product (gemv) unlike the same row in a larger block (gemm), and a point's place must
            # not depend on what else is placed with it
            near = np.einsum("ij,ikj->ik", block.astype(np.float64), data[top].astype(np.float64))
        if cosine:
            dist = 1.0 - near
        else:
            square = squares[start:start + len(block)] if own else np.einsum("ij,ij->i", block, block)
            dist = np.sqrt(np.maximum(square[:, None] + squares[top] - 2.0 * near, 0.0))
        if own:
            dist[:, 0] = 0.0
        indices[start:start + len(block)] = top
        distances[start:start + len(block)] = np.maximum(dist, 0.0)
    return indices, distances


def _top_k(closeness: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the ``k`` largest values, largest first, ties to the lower column: a
    compiled pass over each row keeping its best ``k`` in a heap (numpy's ``argpartition`` copies and
    partitions the whole row, 3-4x slower on the 20,000-column rows of a fit)."""
    from .compiled import top_k_kernel

    return top_k_kernel()(np.ascontiguousarray(closeness, dtype=np.float32), int(k))


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
