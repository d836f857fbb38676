"""The 2-D projection: UMAP fitted on a bounded sample chosen by content, then used to place every point.

:class:`UMAPProjector` is the bare fit / transform. :class:`ProjectionModel` is what a map keeps
between runs: the projector, where each fitted point landed, and the alignment that keeps a refit
looking like the previous layout (no rotation, flip or jump).
"""

from __future__ import annotations

import os
import pickle
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .align import Alignment, procrustes_align
from .compiled import load_umap
from ..paths import atomic_path
from ..settings import setting

if TYPE_CHECKING:
    from ..topics.cluster import ClusterSpace

__all__ = ["ProjectionSettings", "UMAPProjector", "ProjectionModel", "fit_projection", "LARGE_FIT", "content_order"]


def content_order(vectors: np.ndarray, size: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices of at most ``size`` rows of ``vectors`` (all without ``size``), in an order that depends on
    the rows' content only: by the hash of each vector keyed by ``seed``. The rows kept are those with
    the smallest keyed hashes, a uniform sample; the same vectors give the same rows in the same order
    whatever order they came in (identical vectors are interchangeable)."""
    import hashlib

    from ..store.payload import vector_hashes

    hashes = vector_hashes(vectors)
    prefix = f"{seed}:".encode()
    keys = [hashlib.blake2b(prefix + h.encode(), digest_size=8).digest() for h in hashes]
    order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
    return order if size is None else order[: max(0, int(size))]


@dataclass(frozen=True)
class ProjectionSettings:
    n_neighbors: int = setting(
        15,
        """Size of the neighbourhood UMAP preserves: small values favour local detail, large ones the big picture.""")
    min_dist: float = setting(
        0.0,
        """How tightly UMAP packs points; 0 gives the crisp clumps that the topic clustering works on.""")
    metric: str = setting(
        "cosine",
        """Distance between vectors that UMAP's neighbourhoods use (any umap-learn metric name).""")
    sample_size: int = setting(
        20_000,
        """At most this many points fit the projection; the rest are placed with the fitted model. Which
        points: those whose vector hash, keyed by the seed, is smallest (see :func:`content_order`), so the
        sample depends on the vectors alone, not on point ids, partitions or the store's order.""")
    cluster_dims: int = setting(
        10,
        """Dimensions of the second reduction of the fitted sample that the topics are clustered on (denser
        and less distorted than the 2-D map); 0 clusters the 2-D map itself.""")
    cluster_neighbors: int = setting(
        100,
        """Neighbourhood of that reduction: wider than the map's, so topics follow the broader structure
        of the embeddings (on the demo corpora 15 neighbours gave NMI 0.03-0.08 lower than 100).""")
    random_state: int | None = setting(
        42,
        """Seed for the layout; ``None`` draws a new one per fit (the layout then changes from run to run).""")
    parallel: bool = setting(
        False,
        """Fit on every core. umap-learn turns a seed into a single-threaded fit; with ``parallel`` the seed
        instead fixes NumPy's global generator for the duration of the fit (its state is restored after), so
        the spectral start, the neighbour graph and the edge sampling are the same every run and only the
        order in which threads move points varies: the layout is not bit-identical from run to run
        (Procrustes disparity about 0.06 between two fits of the 10,033 demo vectors). Off by default:
        on the 2-core development box it was no faster under load (12.1 s vs 9.6 s for 20,000 points while
        other work ran), and with 100 epochs 2 of 9 parallel fits of the demo vectors collapsed into 2-3
        topics (none of the single-thread fits did). Worth it on an idle many-core machine.""")
    n_epochs: int | None = setting(
        None,
        """Optimisation epochs. ``None`` (default): umap-learn's default (500) up to ``LARGE_FIT`` fitted
        points, 100 above (umap-learn uses 200 there; 100 halves the largest part of the fit, with the same
        topic quality on the demo corpus within the spread over seeds).""")

    cluster_epochs: int | None = setting(
        None,
        """Optimisation epochs of the cluster-space reduction. ``None`` (default): as the map's up to
        ``LARGE_FIT`` fitted points, half of them (50) above: its 100-neighbour graph makes it the costliest
        part of a fit (20,000 points: 7.7 s instead of 10.7 s), and on the 10,033 Wikipedia summaries the
        fine topics' NMI was 0.475 with 50 epochs against 0.479 with 100 (KMeans 0.429).""")

    def cluster_epochs_for(self, n: int) -> int | None:
        """Epochs for the cluster-space reduction of ``n`` fitted points (``None``: umap-learn's choice)."""
        if self.cluster_epochs is not None:
            return self.cluster_epochs
        epochs = self.epochs_for(n)
        return epochs // 2 if epochs is not None and self.n_epochs is None else epochs

    def epochs_for(self, n: int) -> int | None:
        """Epochs for a fit on ``n`` points (``None``: umap-learn's own choice)."""
        if self.n_epochs is not None:
            return self.n_epochs
        return 100 if n > LARGE_FIT else None


_SMALL = 4096
"""umap-learn's own threshold: below it, it computes all distances of the sample itself (exact too)."""


def _given(knn: tuple[np.ndarray, np.ndarray] | None, k: int) -> dict:
    """umap-learn's ``precomputed_knn`` argument: the first ``k`` columns, copied (umap-learn edits them)."""
    if knn is None:
        return {}
    return {"precomputed_knn": (knn[0][:, :k].copy(), knn[1][:, :k].copy())}


LARGE_FIT = 10_000
"""Above this many fitted points the default fit uses 100 epochs (see ``ProjectionSettings.n_epochs``)."""


class UMAPProjector:
    """fit / transform over plain numpy: ``(n, d)`` vectors in, ``(n, 2)`` float32 coordinates out."""

    def __init__(self, settings: ProjectionSettings = ProjectionSettings()):
        self.settings = settings
        self.model_ = None
        self.fit_embedding_: np.ndarray | None = None
        self.fit_index_: np.ndarray | None = None
        self.cluster_embedding_: np.ndarray | None = None
        self.placer_ = None
        """What placing new points needs, as numpy (``placement.py``): set after a fit of a metric
        :func:`exact_neighbours` computes, so a saved layout places points without umap-learn."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state.get("placer_") is not None:
            state["model_"] = None  # the placer holds what placing needs; umap-learn's object stays out
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"placer_": None, **state})

    def _make(self, n: int, knn: tuple[np.ndarray, np.ndarray] | None = None):
        umap = load_umap()

        s = self.settings
        k = max(2, min(s.n_neighbors, n - 1))
        return umap.UMAP(
            n_components=2,
            n_neighbors=k,
            min_dist=s.min_dist,
            metric=s.metric,
            random_state=None if s.parallel else s.random_state,
            n_epochs=s.epochs_for(n),
            init="spectral" if n > 3 else "random",
            **_given(knn, k),
        )

    def _neighbours(self, fitted: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The fitted sample's exact neighbours, enough for both reductions (see ``neighbours.py``), or
        None where umap-learn finds them itself: another metric, a sample above ``EXACT_UP_TO``, or one below
        :data:`_SMALL`, for which umap-learn computes every distance anyway (and places new points so)."""
        from .neighbours import EXACT_METRICS, EXACT_UP_TO, exact_neighbours

        s = self.settings
        if s.metric not in EXACT_METRICS or not _SMALL <= len(fitted) <= EXACT_UP_TO:
            return None
        k = max(s.n_neighbors, s.cluster_neighbors if s.cluster_dims > 0 else 0)
        return exact_neighbours(fitted, min(k, len(fitted) - 1), s.metric)

    @contextmanager
    def _seeded(self, n: int):
        """Seed NumPy's global generator for a parallel fit, and give numba back its thread count
        (umap-learn sets it to 1 for the whole process when it is given a seed)."""
        import numba

        threads = numba.get_num_threads()
        seed = self.settings.random_state if self.settings.parallel else None
        state = np.random.get_state() if seed is not None else None
        if seed is not None:
            np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            if state is not None:
                np.random.set_state(state)
            numba.set_num_threads(threads)

    def fit(self, vectors: np.ndarray) -> "UMAPProjector":
        """Fit on at most ``sample_size`` points, chosen and ordered by content (:func:`content_order`),
        so a fit depends on the vectors alone. Fitted: ``fit_index_`` (the rows fitted, in fit order),
        ``fit_embedding_`` (their 2-D places) and ``cluster_embedding_`` (their ``cluster_dims``-d
        reduction, or None)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        n = len(vectors)
        if n < 3:
            raise ValueError(f"a projection needs at least 3 points, got {n}")
        index = content_order(vectors, self.settings.sample_size, seed=self.settings.random_state or 0)
        knn = self._neighbours(vectors[index])
        model = self._make(len(index), knn)
        with warnings.catch_warnings(), self._seeded(len(index)):  # "n_jobs overridden by random_state": parallel=False
            warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
            warnings.filterwarnings("ignore", message=".*is not an NNDescent object.*")  # placement.py places instead
            fitted = vectors[index]
            if self._side_by_side():  # the cluster space on the second core while the 2-D map is fitted
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(1, thread_name_prefix="embedmap-cluster-space") as pool:
                    cluster = pool.submit(self._cluster_space, model, fitted.copy(), knn)
                    self.fit_embedding_ = model.fit_transform(fitted).astype(np.float32)
                    self.cluster_embedding_ = cluster.result()
            else:
                self.fit_embedding_ = model.fit_transform(fitted).astype(np.float32)
                self.cluster_embedding_ = self._cluster_space(model, fitted, knn)
        self.fit_index_ = index
        self.model_ = model
        self.placer_ = self._placer(model)
        return self

    @staticmethod
    def _placer(model):
        """The :class:`~.placement.Placer` of a fitted umap-learn ``model`` whose neighbours are exact (a
        metric of :data:`EXACT_METRICS`, a sample up to ``EXACT_UP_TO``; umap-learn computes all distances
        itself below 4,096 points), else None (umap-learn's own ``transform`` places)."""
        from .neighbours import EXACT_METRICS, EXACT_UP_TO
        from .placement import Placer

        exact = getattr(model, "_knn_search_index", True) is None or getattr(model, "_small_data", False)
        if model.metric not in EXACT_METRICS or len(model._raw_data) > EXACT_UP_TO or not exact:
            return None
        return Placer.from_umap(model)

    @property
    def fitted_vectors(self) -> np.ndarray | None:
        """The fitted sample's vectors, in fit order."""
        if self.placer_ is not None:
            return self.placer_.vectors
        data = getattr(self.model_, "_raw_data", None)
        return None if data is None else np.asarray(data)

    def _side_by_side(self) -> bool:
        """Whether the two reductions may run at once, each on its own thread: the same two computations
        as one after the other (each single-threaded and seeded), so the same results. Only when
        umap-learn's layout epoch releases the GIL (``compiled.py``), a cluster space is fitted, the fit
        is seeded (a ``parallel`` fit draws from NumPy's global generator, which two fits would share),
        and numba's threading layer takes parallel work from two threads (its ``workqueue`` fallback
        does not)."""
        from . import compiled

        s = self.settings
        if not compiled.releases_gil or s.cluster_dims <= 0 or s.parallel or (os.cpu_count() or 1) < 2:
            return False
        try:
            import numba
            from numba.np.ufunc import parallel

            parallel._launch_threads()
            return numba.threading_layer() in ("omp", "tbb")
        except Exception:  # an unknown numba: one after the other, as before
            return False

    def _cluster_space(self, model, fitted: np.ndarray, knn) -> np.ndarray | None:
        """The fitted points reduced to ``cluster_dims`` dimensions over ``cluster_neighbors`` neighbours."""
        umap = load_umap()

        s = self.settings
        dims = int(s.cluster_dims)
        if dims <= 0 or len(fitted) <= dims + 1:
            return None
        k = max(2, min(s.cluster_neighbors, len(fitted) - 1))
        reducer = umap.UMAP(
            n_components=dims, n_neighbors=k, min_dist=0.0,
            metric=s.metric, random_state=None if s.parallel else s.random_state,
            n_epochs=s.cluster_epochs_for(len(fitted)), init="spectral", **_given(knn, k),
        )
        return np.asarray(reducer.fit_transform(fitted), dtype=np.float32)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        if self.placer_ is None and self.model_ is not None:  # a model saved before placers
            self.placer_ = self._placer(self.model_)
        if self.placer_ is None and self.model_ is None:
            raise RuntimeError("fit the projector before transform")
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.placer_ is not None:
            return self.placer_.place(vectors)
        return np.asarray(self.model_.transform(vectors), dtype=np.float32)

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
                pickle.dump({"settings": self.settings, "model": None if self.placer_ is not None else self.model_,
                             "placer": self.placer_}, fh)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "UMAPProjector":
        with open(path, "rb") as fh:
            state = _load_pickle(fh)
        projector = cls(state["settings"])
        projector.model_ = state["model"]
        projector.placer_ = state.get("placer")
        return projector


class _Unpickler(pickle.Unpickler):
    """Imports umap-learn through :func:`load_umap` (its kernels then load from the compiled cache), and
    only when the file holds one of its objects (a layout a placer cannot place on)."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] in ("umap", "pynndescent"):
            load_umap()
        return super().find_class(module, name)


def _load_pickle(fh):
    return _Unpickler(fh).load()


@dataclass
class ProjectionModel:
    """A fitted, versioned layout that places any point, old or new, in the same 2-D frame."""

    version: int
    projector: UMAPProjector
    fitted: dict[str, tuple[float, float]]
    """Aligned position of every point the model was fitted on, by point id."""
    alignment: Alignment
    """Maps the projector's raw output onto the previous version's frame (identity for version 1)."""
    points_at_fit: int

    fitted_hashes: dict[str, str] | None = None
    """The hash (:func:`~dagster_embedmap.core.store.payload.vector_hashes`) of the vector each fitted point had
    at the fit; None in models saved before it was recorded."""
    sample_ids: list[str] | None = None
    """The fitted points' ids in fit order (None in models saved before it was recorded)."""
    cluster_coords: np.ndarray | None = None
    """``(len(sample_ids), cluster_dims)``: the fitted points in the cluster space the topics use."""

    @property
    def sample_vectors(self) -> np.ndarray | None:
        """The fitted points' vectors in fit order (umap-learn keeps them to place new points)."""
        data = self.projector.fitted_vectors
        return None if data is None or self.sample_ids is None or len(data) != len(self.sample_ids) else data

    def cluster_space(self, ids: Sequence[str], hashes: Sequence[str | None]) -> "ClusterSpace | None":
        """The cluster space over the map's points ``ids`` (with their current vector ``hashes``): the
        fitted points still present with the vector they were fitted on, or None when the model has no
        cluster space or fewer than 3 such points remain."""
        from ..topics.cluster import ClusterSpace

        if self.cluster_coords is None or self.sample_ids is None:
            return None
        where = {pid: i for i, pid in enumerate(ids)}
        fitted = self.fitted_hashes or {}
        pairs = [(where[pid], j) for j, pid in enumerate(self.sample_ids)
                 if pid in where and fitted.get(pid) == hashes[where[pid]]]
        if len(pairs) < 3:
            return None
        rows, cols = (np.asarray(v, dtype=np.int64) for v in zip(*pairs))
        vectors = self.sample_vectors
        return ClusterSpace(rows, self.cluster_coords[cols], None if vectors is None else vectors[cols])

    def place(self, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """2-D positions of ``ids``: where they were fitted while their vector is the one fitted, else
        transformed and aligned. A point whose vector changed since the fit (its text was edited) is
        placed from its new vector, among its new neighbours."""
        from ..store.payload import vector_hashes

        vectors = np.asarray(vectors, dtype=np.float32)
        out = np.empty((len(ids), 2), dtype=np.float32)
        known = self.fitted_hashes or {}
        hashes = vector_hashes(vectors) if known else []
        rest = []
        for i, pid in enumerate(ids):
            spot = self.fitted.get(pid)
            if spot is None or known.get(pid) != hashes[i]:
                rest.append(i)
            else:
                out[i] = spot
        if rest:
            raw = self.projector.transform(vectors[rest])
            out[rest] = self.alignment.apply(raw)
        return out

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                pickle.dump(self, fh)
        return Path(path)

    @staticmethod
    def load(path: str | Path) -> "ProjectionModel":
        with open(path, "rb") as fh:
            return _load_pickle(fh)


def fit_projection(
    ids: Sequence[str],
    vectors: np.ndarray,
    settings: ProjectionSettings = ProjectionSettings(),
    previous: ProjectionModel | None = None,
    previous_xy: Mapping[str, tuple[float, float]] | None = None,
    after_version: int = 0,
) -> ProjectionModel:
    """Fit a new layout on a sample chosen by content; when the points had places before (``previous_xy``),
    rotate / flip / scale / shift the new layout onto the old one (orthogonal Procrustes on the shared
    points), so a refit keeps the map a user already knows.

    The new version follows ``previous`` and ``after_version`` (the highest version any point was
    placed by, so a model refitted after its file was lost never reuses a version number)."""
    from ..store.payload import vector_hashes

    projector = UMAPProjector(settings).fit(vectors)
    sample_ids = [ids[i] for i in projector.fit_index_]
    raw = projector.fit_embedding_
    alignment = Alignment.identity()
    if previous_xy:
        shared = [j for j, pid in enumerate(sample_ids) if pid in previous_xy]
        if len(shared) >= 3:
            target = np.asarray([previous_xy[sample_ids[j]] for j in shared], dtype=np.float64)
            alignment = procrustes_align(raw[shared].astype(np.float64), target)
    placed = alignment.apply(raw)
    fitted_vectors = np.asarray(vectors, dtype=np.float32)[projector.fit_index_]
    return ProjectionModel(
        version=max(previous.version if previous is not None else 0, int(after_version)) + 1,
        projector=projector,
        fitted={pid: (float(x), float(y)) for pid, (x, y) in zip(sample_ids, placed)},
        alignment=alignment,
        points_at_fit=len(ids),
        fitted_hashes=dict(zip(sample_ids, vector_hashes(fitted_vectors))),
        sample_ids=sample_ids,
        cluster_coords=projector.cluster_embedding_,
    )
