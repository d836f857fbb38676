"""The 2-D projection: UMAP fitted on a bounded sample, then used to place every point."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import atomic_path

__all__ = ["ProjectionSettings", "UMAPProjector"]


@dataclass(frozen=True)
class ProjectionSettings:
    n_neighbors: int = 15
    """Size of the neighbourhood UMAP preserves: small values favour local detail, large ones the big picture."""
    min_dist: float = 0.0
    """How tightly UMAP packs points; 0 gives the crisp clumps that the topic clustering works on."""
    metric: str = "cosine"
    sample_size: int = 20_000
    """At most this many points fit the projection; the rest are placed with the fitted model."""
    random_state: int | None = 42
    """Seed for a reproducible layout; ``None`` lets UMAP use every core but changes the layout per run."""


class UMAPProjector:
    """fit / transform over plain numpy: ``(n, d)`` vectors in, ``(n, 2)`` float32 coordinates out."""

    def __init__(self, settings: ProjectionSettings = ProjectionSettings()):
        self.settings = settings
        self.model_ = None
        self.fit_embedding_: np.ndarray | None = None
        self.fit_index_: np.ndarray | None = None

    def _make(self, n: int):
        import umap

        s = self.settings
        return umap.UMAP(
            n_components=2,
            n_neighbors=max(2, min(s.n_neighbors, n - 1)),
            min_dist=s.min_dist,
            metric=s.metric,
            random_state=s.random_state,
            init="spectral" if n > 3 else "random",
        )

    def fit(self, vectors: np.ndarray) -> "UMAPProjector":
        vectors = np.asarray(vectors, dtype=np.float32)
        n = len(vectors)
        if n < 3:
            raise ValueError(f"a projection needs at least 3 points, got {n}")
        if n > self.settings.sample_size:
            rng = np.random.default_rng(self.settings.random_state or 0)
            index = np.sort(rng.choice(n, size=self.settings.sample_size, replace=False))
        else:
            index = np.arange(n)
        model = self._make(len(index))
        with warnings.catch_warnings():  # "n_jobs overridden by random_state": the seed's known price
            warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
            self.fit_embedding_ = model.fit_transform(vectors[index]).astype(np.float32)
        self.fit_index_ = index
        self.model_ = model
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("fit the projector before transform")
        return np.asarray(self.model_.transform(np.asarray(vectors, dtype=np.float32)), dtype=np.float32)

    def fit_transform(self, vectors: np.ndarray) -> np.ndarray:
        """Fit on (a sample of) ``vectors``; sampled points keep their fitted place, others are transformed."""
        self.fit(vectors)
        n = len(vectors)
        out = np.empty((n, 2), dtype=np.float32)
        out[self.fit_index_] = self.fit_embedding_
        rest = np.setdiff1d(np.arange(n), self.fit_index_)
        if len(rest):
            out[rest] = self.transform(np.asarray(vectors)[rest])
        return out

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                pickle.dump({"settings": self.settings, "model": self.model_}, fh)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "UMAPProjector":
        with open(path, "rb") as fh:
            state = pickle.load(fh)
        projector = cls(state["settings"])
        projector.model_ = state["model"]
        return projector
