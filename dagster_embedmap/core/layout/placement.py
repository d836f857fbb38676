"""Placing new points on a fitted layout, without umap-learn.

A layout fitted on exact neighbours (``neighbours.py``; every fit of the default metrics up to
``EXACT_UP_TO`` points) keeps what placing a point needs as plain arrays: the fitted points' vectors
and places and the optimiser's constants. :class:`Placer` places new points the way umap-learn's
``transform`` does, with the layout's own kernels (``kernels.py``, compiled ahead of time once per
machine by ``ahead.py``, so a fresh process does not start numba; numba's JIT where that fails): each
new point's fuzzy membership to its nearest fitted points, a start at their weighted mean place, then
a third of the fit's epochs of the optimiser with the fitted points held still.

Each new point moves along its own edges with its own generator (seeded by the model's
``transform_seed`` and its starting place), so a point lands in the same place in every process and
whatever batch it arrives in. A saved layout model therefore loads and places points without
importing umap-learn, scikit-learn or pynndescent (about 1.6 s of every fresh process).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbours import exact_neighbours

__all__ = ["Placer"]

_SERIAL_UP_TO = 4096
"""Batches up to this many points select their neighbours with the kernels of ``ahead.py``."""
_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min + 1, np.iinfo(np.int32).max - 1
_DISCONNECTED = {"cosine": 2.0, "correlation": 2.0}
"""Distances at or beyond which a neighbour does not count (umap-learn's bounded metrics)."""


@dataclass
class Placer:
    """What placing points on a fitted 2-D layout needs, as numpy: fitted ``vectors`` and their
    ``embedding`` (raw, before alignment), the neighbour count and metric, and the optimiser's constants."""

    vectors: np.ndarray
    embedding: np.ndarray
    n_neighbors: int
    metric: str
    a: float
    b: float
    n_epochs: int | None
    seed: int
    gamma: float = 1.0
    initial_alpha: float = 1.0
    negative_rate: int = 5
    local_connectivity: float = 1.0
    disconnection: float = np.inf

    @classmethod
    def from_umap(cls, model) -> "Placer":
        """The placing state of a fitted umap-learn ``UMAP`` (its ``_raw_data`` and ``embedding_``)."""
        return cls(
            vectors=np.ascontiguousarray(model._raw_data, dtype=np.float32),
            embedding=np.ascontiguousarray(model.embedding_, dtype=np.float32),
            n_neighbors=int(model._n_neighbors), metric=str(model.metric),
            a=float(model._a), b=float(model._b), n_epochs=None if model.n_epochs is None else int(model.n_epochs),
            seed=int(model.transform_seed), gamma=float(model.repulsion_strength),
            initial_alpha=float(model._initial_alpha), negative_rate=int(model.negative_sample_rate),
            local_connectivity=float(model.local_connectivity),
            disconnection=float(getattr(model, "_disconnection_distance", _DISCONNECTED.get(model.metric, np.inf))),
        )

    def epochs_for(self, n: int) -> int:
        """Optimiser epochs for placing ``n`` points: a third of the fit's, or umap-learn's 100 (30 for
        more than 10,000 points at once)."""
        if self.n_epochs is None:
            return 100 if n <= 10_000 else 30
        return max(1, int(self.n_epochs // 3))

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """``(len(vectors), 2)`` float32 places of ``vectors`` in the layout's raw frame."""
        from .ahead import placement_kernels

        memberships, place_epochs, top_k = placement_kernels()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = self.embedding.shape[1]
        if not len(vectors):
            return np.empty((0, dim), dtype=np.float32)
        k = min(self.n_neighbors, len(self.vectors))
        # the ahead-of-time selection runs on one core: a large batch takes numba's parallel one (the same
        # neighbours), whose start-up is then a small part of the work
        indices, dists = exact_neighbours(self.vectors, k, self.metric, queries=vectors,
                                          top_k=top_k if len(vectors) <= _SERIAL_UP_TO else None)
        valid = dists < self.disconnection
        weights = memberships(dists.astype(np.float64), valid, max(0.0, self.local_connectivity - 1.0))
        start = self._start(indices, weights)
        epochs = self.epochs_for(len(vectors))
        # each point's strongest edge is sampled every epoch, a weaker one in proportion to its weight
        # (umap-learn scales by the strongest edge of the whole batch: a point's place would then depend on
        # what else is placed with it); edges under 1/epochs of the point's strongest are never sampled
        strongest = np.broadcast_to(weights.max(axis=1, keepdims=True), weights.shape)
        keep = (weights > 0) & (weights >= strongest / epochs)
        rows = np.nonzero(keep)[0].astype(np.int64)
        cols = indices[keep].astype(np.int64)
        per_sample = strongest[keep].astype(np.float64) / weights[keep].astype(np.float64)
        base = np.random.RandomState(self.seed).randint(_INT32_MIN, _INT32_MAX, 3).astype(np.int64)
        rng = base[None, :] + start[:, :1].astype(np.float64).view(np.int64)
        head = start.copy()
        place_epochs(head, self.embedding, rows, cols, per_sample, self.a, self.b, self.gamma,
                     self.initial_alpha / 4.0, float(self.negative_rate), epochs, rng)
        return head

    def _start(self, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Each point's starting place: the membership-weighted mean place of its fitted neighbours (the
        place of one it coincides with, weight 1); its nearest neighbour's place when none counts."""
        places = self.embedding[indices]  # (m, k, dim)
        total = weights.sum(axis=1, keepdims=True)
        start = (weights[:, :, None] * places).sum(axis=1) / np.where(total > 0, total, 1.0)
        exact = weights >= 1.0
        first = np.argmax(exact, axis=1)
        same = exact.any(axis=1)
        start[same] = places[np.nonzero(same)[0], first[same]]
        start[total[:, 0] <= 0] = places[total[:, 0] <= 0, 0]
        return np.ascontiguousarray(start, dtype=np.float32)
