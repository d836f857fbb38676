"""Placing new points on a layout fitted on exact neighbours (``neighbours.py``).

umap-learn's own ``transform`` needs the approximate search index of its fit; a layout fitted on
exact neighbours has none. :func:`place_on` does what that ``transform`` does, step for step, with
the exact neighbours among the fitted points: each new point's fuzzy membership to its nearest fitted
points, a start at their weighted mean place, then a third of the fit's epochs of the layout optimiser
with the fitted points held still. Seeded by the model's ``transform_seed``, so the same points land
in the same places in every process.
"""

from __future__ import annotations

import numpy as np

from .neighbours import exact_neighbours

__all__ = ["place_on"]

_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min + 1, np.iinfo(np.int32).max - 1


def place_on(model, vectors: np.ndarray) -> np.ndarray:
    """``(len(vectors), 2)`` float32 places of ``vectors`` on the fitted umap-learn ``model``."""
    import scipy.sparse
    from sklearn.utils import check_random_state
    from umap.umap_ import (
        compute_membership_strengths,
        init_graph_transform,
        make_epochs_per_sample,
        optimize_layout_euclidean,
        smooth_knn_dist,
    )

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not len(vectors):
        return np.empty((0, model.embedding_.shape[1]), dtype=np.float32)
    fitted = np.asarray(model._raw_data, dtype=np.float32)
    k = int(model._n_neighbors)
    indices, dists = exact_neighbours(fitted, k, model.metric, queries=vectors)
    indices[dists >= model._disconnection_distance] = -1
    sigmas, rhos = smooth_knn_dist(dists, float(k), local_connectivity=float(max(0.0, model.local_connectivity - 1.0)))
    rows, cols, vals, _ = compute_membership_strengths(indices, dists, sigmas, rhos, bipartite=True)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(len(vectors), len(fitted)))
    csr = graph.tocsr()
    csr.eliminate_zeros()
    embedding = init_graph_transform(csr, model.embedding_)
    if model.n_epochs is None:
        epochs = 100 if len(vectors) <= 10_000 else 30
    else:
        epochs = int(model.n_epochs // 3.0)
    graph.data[graph.data < (graph.data.max() / float(epochs))] = 0.0
    graph.eliminate_zeros()
    rng_state = check_random_state(model.transform_seed).randint(_INT32_MIN, _INT32_MAX, 3).astype(np.int64)
    embedding = optimize_layout_euclidean(
        embedding, model.embedding_.astype(np.float32, copy=True), graph.row, graph.col, epochs, graph.shape[1],
        make_epochs_per_sample(graph.data, epochs), model._a, model._b, rng_state, model.repulsion_strength,
        model._initial_alpha / 4.0, model.negative_sample_rate, model.random_state is None, verbose=False,
    )
    return np.asarray(embedding, dtype=np.float32)
