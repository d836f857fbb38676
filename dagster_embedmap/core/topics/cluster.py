"""Fine topics: dense cores found by HDBSCAN, joined by what the embeddings say, extended to every point.

A recluster works in three steps (:class:`HDBSCANTopics`):

1. **Dense cores.** HDBSCAN runs on the *cluster space*: a 10-d UMAP reduction of the layout's fitted
   sample over 100 neighbours (the layout model makes it beside the 2-D map), or the 2-D map itself
   when there is none. Its ``min_cluster_size`` is small, so it finds many small, dense
   groups instead of a few large ones; this is what keeps it off its cliff (one group swallowing most
   of the map when two big clusters touch). Points it leaves as noise join their nearest cores.
2. **Topics.** The cores are joined, cheapest first, by size-weighted Ward linkage on their centroids
   in the cluster space (made from the embeddings' own neighbour graph, not from the 2-D map), only
   between cores that touch on the 2-D map, until :func:`auto_fine_topics` topics are left (20 for
   2,000 points, 45 for 10,000, 450 for a million), fewer only when there are fewer cores. Joining on
   the 384-d vectors' mean instead gave NMI 0.02-0.06 lower on the demo corpora.
3. **Everyone else.** Points outside the sample (and new points later) take the distance-weighted
   majority topic of their nearest sampled neighbours on the 2-D map.

Every input is put in a canonical order (the layout sorts its sample by vector hash) and every step
is seeded or exact, so the same vectors give the same topics whatever the map name, the partitioning
or the store's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .merge import CAP_GAP, adjacency, group_means, groups_after, ward_merges
from ..settings import setting

if TYPE_CHECKING:
    from .match import TopicMatch

__all__ = ["ClusterSettings", "ClusterSpace", "HDBSCANTopics", "TopicAssignment", "assign_topics", "nearest_topics",
           "auto_min_cluster_size", "auto_fine_topics", "MAX_FINE_SHARE"]

_ONE_PROCESS = {"core_dist_n_jobs": 1}
"""HDBSCAN's core distances in this process: its default pool of worker processes costs about 3 s to
start in every fresh process (each Dagster step), more than the 20,000-point clustering itself."""

MAX_FINE_SHARE = 0.25
"""No fine topic grows past this share of the clustered points while another join is possible, and a
dense core larger than it is clustered again on its own (kept whole only when HDBSCAN finds no
groups inside it: the data there truly is one group): no catch-all blob."""


def auto_fine_topics(n: int) -> int:
    """How many fine topics a map of ``n`` points gets: ``0.45 * sqrt(n)`` rounded, at least 1
    (20 for 2,000 points, 45 for 10,000, 142 for 100,000, 450 for a million)."""
    return max(1, int(round(0.45 * np.sqrt(max(n, 0)))))


def auto_min_cluster_size(sample: int, n: int | None = None) -> int:
    """Smallest dense core HDBSCAN keeps, for ``sample`` clustered points of a map of ``n``: small
    enough that HDBSCAN finds about 2.5 times :func:`auto_fine_topics` cores (it finds about one per
    4.7 ``min_cluster_size`` points), at least 5 (9 for 2,000 points, 19 for 10,000, 5 for 20,000
    sampled out of a million)."""
    fine = auto_fine_topics(sample if n is None else n)
    return max(5, int(round(sample / (11.75 * fine)))) if sample else 5


@dataclass(frozen=True)
class ClusterSettings:
    fine_topics: int | None = setting(
        None,
        """How many fine topics a recluster aims at; ``None`` scales with the map (:func:`auto_fine_topics`).
        Fewer come out when HDBSCAN finds fewer dense cores (well-separated data keeps its own groups).""")
    min_cluster_size: int | None = setting(
        None,
        """Smallest dense core HDBSCAN keeps; ``None``: :func:`auto_min_cluster_size`.""")
    min_samples: int | None = setting(
        None,
        """How conservative HDBSCAN is (more noise when larger); ``None`` = min_cluster_size, capped at 25.""")
    assign_noise: bool = setting(
        True,
        """Give points HDBSCAN left unclustered the topic of their nearest clustered neighbours.""")
    noise_neighbors: int = setting(
        10,
        """How many labelled neighbours vote on the topic of an unclustered, unsampled or new point.""")
    levels: int = setting(
        2,
        """Levels of the topic tree: broad neighbourhoods over the fine topics (1 = flat topics, 3 = a middle
        level as well); see :mod:`dagster_embedmap.core.topics.tree`.""")


@dataclass
class ClusterSpace:
    """Where a recluster looks: the layout's sampled points, in a space richer than the 2-D map."""

    rows: np.ndarray
    """Indices, into the map's points, of the sampled points (their vectors are the fitted ones)."""
    coords: np.ndarray
    """``(len(rows), d)``: their coordinates in the cluster space (the 5-d UMAP reduction)."""
    vectors: np.ndarray | None = None
    """``(len(rows), D)``: their embedding vectors; cores are joined on these (on ``coords`` without)."""

    def __post_init__(self):
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.coords = np.asarray(self.coords, dtype=np.float64)
        if len(self.coords) != len(self.rows) or (self.vectors is not None and len(self.vectors) != len(self.rows)):
            raise ValueError("a cluster space needs one coordinate row and one vector per sampled point")


class HDBSCANTopics:
    """fit over a map's ``(n, 2)`` coordinates (and optionally a :class:`ClusterSpace`).

    Topic ids are 0..k-1, largest topic first. Fitted: ``labels_`` (every point's topic),
    ``clustered_`` (points HDBSCAN put in a core itself), ``cores_`` (how many cores it found).
    """

    def __init__(self, settings: ClusterSettings = ClusterSettings()):
        self.settings = settings
        self.labels_: np.ndarray | None = None
        self.clustered_: np.ndarray | None = None
        self.cores_: int = 0

    @property
    def n_topics_(self) -> int:
        return 0 if self.labels_ is None else int(self.labels_.max() + 1) if len(self.labels_) else 0

    @property
    def noise_share_(self) -> float:
        """Share of the clustered points HDBSCAN left as noise (they were then given a topic)."""
        sample = getattr(self, "_sample_clustered", None)
        return float(1.0 - sample.mean()) if sample is not None and len(sample) else 0.0

    def fit(self, points: np.ndarray, space: ClusterSpace | None = None) -> "HDBSCANTopics":
        points = np.asarray(points, dtype=np.float64)
        n = len(points)
        if space is None or len(space.rows) < 3:
            space = ClusterSpace(np.arange(n), points)
        rows, coords = space.rows, space.coords
        m = len(rows)
        s = self.settings
        mcs = s.min_cluster_size or auto_min_cluster_size(m, n)
        if m < max(mcs, 2):
            core = np.zeros(m, dtype=np.int64)
        else:
            import hdbscan

            min_samples = s.min_samples or min(mcs, 25)
            core = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=min_samples, **_ONE_PROCESS).fit_predict(coords)
            core = np.asarray(core, dtype=np.int64)
            core = _split_large(core, coords, mcs, min_samples)
        clustered = core >= 0
        if not clustered.any():  # nothing dense enough: one topic rather than none
            core[:] = 0
        if s.assign_noise and (core < 0).any():
            core[core < 0] = nearest_topics(coords[core >= 0], core[core >= 0], coords[core < 0], s.noise_neighbors)
        self.cores_ = int(len(np.unique(core[core >= 0])))
        sample_topics = self._join(core, points[rows], coords, n)
        labels = np.full(n, -1, dtype=np.int64)
        labels[rows] = sample_topics
        others = np.setdiff1d(np.arange(n), rows)
        known = rows[sample_topics >= 0]
        if len(others) and len(known):
            labels[others] = nearest_topics(points[known], labels[known], points[others], s.noise_neighbors)
        labels = self._by_size(labels)
        self.labels_ = labels
        self.clustered_ = np.zeros(n, dtype=bool) if m < n else clustered.copy()
        if m < n:
            self.clustered_[rows] = clustered
        self._sample_clustered = clustered
        return self

    def _join(self, core: np.ndarray, xy: np.ndarray, coords: np.ndarray, n: int) -> np.ndarray:
        """Cores joined into topics by Ward linkage on their centroid in the cluster space, neighbours
        on the map only."""
        ids = np.unique(core[core >= 0])
        target = min(self.settings.fine_topics or auto_fine_topics(n), len(ids))
        if len(ids) <= 1:
            return core
        rows = np.searchsorted(ids, core[core >= 0])
        weight = np.bincount(rows, minlength=len(ids)).astype(np.float64)
        pts = np.asarray(coords, dtype=np.float64)[core >= 0]
        centroids = group_means(rows, pts, len(ids))
        touching = adjacency(xy[core >= 0], rows, len(ids))
        merges = ward_merges(centroids, weight, touching, MAX_FINE_SHARE, stop_at=max(1, target // 2 - 1),
                             cap_gap=CAP_GAP)  # one join past the fewest topics: _clear_cut weighs it
        spread = float(((pts - centroids[rows]) ** 2).sum()) / len(ids)
        group = groups_after(len(ids), merges, _clear_cut(merges, len(ids), target, spread))
        out = core.copy()
        out[core >= 0] = group[rows]
        return out


    def fit_predict(self, points: np.ndarray, space: ClusterSpace | None = None) -> np.ndarray:
        return self.fit(points, space).labels_

    @staticmethod
    def _by_size(raw: np.ndarray) -> np.ndarray:
        """Renumber topics so topic 0 is the largest (ties by first appearance); keep -1 as is."""
        raw = np.asarray(raw, dtype=np.int64)
        ids, counts = np.unique(raw[raw >= 0], return_counts=True)
        order = ids[np.lexsort((ids, -counts))]
        lookup = np.full(int(raw.max()) + 2 if len(raw) else 1, -1, dtype=np.int64)
        lookup[order] = np.arange(len(order))
        return np.where(raw >= 0, lookup[np.maximum(raw, 0)], -1)


CLEAR_GAP = 5.0
"""A join costing this many times the one before it marks groups that are clearly apart (planted
blobs); real corpora showed at most 1.6 near the target count."""


def _clear_cut(merges: list[tuple[int, int, float]], k: int, target: int, spread: float = 0.0) -> int:
    """How many topics: ``target``, or fewer (down to half of it) where joining one more pair would
    cost :data:`CLEAR_GAP` times every join before it, i.e. where the data clearly has fewer groups (the
    costs of constrained joins are not monotone: a cheap join after a dear one is no sign of a gap).
    Fewer only where that cut is clearer than the one at ``target``; before the first join the cores'
    mean ``spread`` (sum of squares about their centroid) stands for the join before, so three blobs,
    two of them near each other, stay three when the join of the near two still dwarfs their spread."""
    costs = [m[2] for m in merges]

    def gap(m: int) -> float:  # how much dearer the join taking m groups to m - 1 is than every one before
        nxt = k - m
        if not 0 <= nxt < len(costs):
            return 0.0
        before = max(costs[:nxt]) if nxt else spread
        return costs[nxt] / before if before > 0 else 0.0

    best = min(target, k)
    best_ratio = max(CLEAR_GAP, gap(best))
    for m in range(max(1, target // 2), best):
        if gap(m) >= best_ratio:
            best, best_ratio = m, gap(m)
    return best


def _split_large(core: np.ndarray, coords: np.ndarray, mcs: int, min_samples: int) -> np.ndarray:
    """Each core holding more than :data:`MAX_FINE_SHARE` of the points clustered again on its own
    points; its sub-groups replace it when HDBSCAN finds two or more (their noise stays in the first)."""
    import hdbscan

    core = core.copy()
    limit = MAX_FINE_SHARE * len(core)
    for c in [int(c) for c in np.unique(core[core >= 0])]:
        inside = np.flatnonzero(core == c)
        if len(inside) <= limit or len(inside) < 2 * mcs:
            continue
        sub = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=min_samples, **_ONE_PROCESS).fit_predict(coords[inside])
        found = [int(g) for g in np.unique(sub[sub >= 0])]
        if len(found) < 2:
            continue
        fresh = int(core.max()) + 1
        for j, g in enumerate(found[1:]):
            core[inside[sub == g]] = fresh + j
    return core


def nearest_topics(known: np.ndarray, known_labels: np.ndarray, query: np.ndarray, neighbors: int = 10) -> np.ndarray:
    """The distance-weighted majority topic of each query point's nearest labelled points: each of its
    ``neighbors`` nearest votes with weight 1 / distance (only those at distance 0 vote when there are
    any), ties to the lower topic id; scikit-learn's ``KNeighborsClassifier(weights="distance")``, on
    SciPy's k-d tree (importing scikit-learn costs a fresh process about 0.9 s). Neighbours as far as
    the ``neighbors``-th go to the lower index, whatever the order of ``known``."""
    query = np.asarray(query, dtype=np.float64)
    if len(query) == 0:
        return np.empty(0, dtype=np.int64)
    known = np.ascontiguousarray(known, dtype=np.float64)
    k = max(1, min(neighbors, len(known)))
    dist, idx = _nearest(known, np.ascontiguousarray(query), k)
    topics, coded = np.unique(np.asarray(known_labels), return_inverse=True)
    votes_of = coded.reshape(-1)[idx]
    out = np.empty(len(query), dtype=np.int64)
    block = max(1, 4_000_000 // max(1, len(topics)))
    for lo in range(0, len(query), block):
        d, v = dist[lo:lo + block], votes_of[lo:lo + block]
        at_zero = d == 0
        with np.errstate(divide="ignore"):
            weight = np.where(at_zero.any(axis=1, keepdims=True), at_zero, 1.0 / d)
        rows = np.repeat(np.arange(len(d)), k) * len(topics)
        votes = np.bincount(rows + v.reshape(-1), weights=weight.reshape(-1), minlength=len(d) * len(topics))
        out[lo:lo + block] = topics[np.argmax(votes.reshape(len(d), len(topics)), axis=1)]
    return out


_COMPILED_UP_TO = 200_000_000
"""Query-by-labelled-point pairs up to which :func:`_nearest` compares every pair in compiled code
(about 0.4 s); beyond, SciPy's k-d tree (whose import costs a fresh process 0.2-0.3 s)."""
_SPARE = 8


def _nearest(known: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` nearest rows of ``known`` (2-D, Euclidean), nearest first, ties to the lower
    index: ``(distances, indices)``. A large batch asks the k-d tree for ``_SPARE`` more and ranks them
    so; a row whose farthest spare is as near as its ``k``-th is compared with every point instead."""
    from ..layout.ahead import nearest_2d_kernel

    if known.shape[1] == 2 and len(query) * len(known) <= _COMPILED_UP_TO:
        return nearest_2d_kernel()(known, query, k)
    from scipy.spatial import cKDTree

    take = min(len(known), k + _SPARE)
    dist, idx = cKDTree(known).query(query, k=take)
    dist, idx = dist.reshape(len(query), take), idx.reshape(len(query), take).astype(np.int64)
    order = np.lexsort((idx, dist), axis=-1)
    dist, idx = np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)
    if take < len(known):
        for row in np.nonzero(dist[:, -1] <= dist[:, k - 1])[0]:  # ties beyond the spares: every point
            if known.shape[1] == 2:
                d, i = nearest_2d_kernel()(known, query[row:row + 1], k)
                dist[row, :k], idx[row, :k] = d[0], i[0]
            else:
                full = np.sqrt(((known - query[row]) ** 2).sum(axis=1))
                best = np.lexsort((np.arange(len(known)), full))[:k]
                dist[row, :k], idx[row, :k] = full[best], best
    return dist[:, :k], idx[:, :k]


@dataclass
class TopicAssignment:
    topic_ids: np.ndarray
    """The stable topic id of every point."""
    changed: np.ndarray
    """Points whose topic is new or different from before (only these need writing back)."""
    reclustered: bool
    clustered: np.ndarray | None = None
    """When reclustered: the points HDBSCAN put in a dense core itself (sampled points only)."""
    match: "TopicMatch | None" = None
    """When reclustered over earlier topics: how new clusters map to the old ids (births, merges, splits)."""
    noise_share: float | None = None
    """When reclustered: the share of the clustered sample HDBSCAN left as noise (then given a topic)."""


def assign_topics(
    points: np.ndarray, previous: np.ndarray, recluster: bool, settings: ClusterSettings = ClusterSettings(),
    space: ClusterSpace | None = None,
) -> TopicAssignment:
    """Topics for every point of the map, changing as little as possible.

    ``previous`` holds each point's earlier topic id (-1: none yet). Without ``recluster``, points keep
    their topic and new points take their labelled neighbours' topic (no reclustering). With it (or
    when nothing has a topic yet), the topics are found again (:class:`HDBSCANTopics`, over ``space``
    when given) and matched to the earlier ids, so a topic keeps its id where it still exists.
    """
    from .match import match_topics, relabel

    points = np.asarray(points, dtype=np.float64)
    previous = np.asarray(previous, dtype=np.int64)
    known = previous >= 0
    if recluster or not known.any():
        clusterer = HDBSCANTopics(settings).fit(points, space)
        match = None
        topic_ids = clusterer.labels_
        if known.any():
            match = match_topics(previous, topic_ids)
            topic_ids = relabel(topic_ids, match)
        return TopicAssignment(topic_ids, topic_ids != previous, True, clusterer.clustered_, match,
                               clusterer.noise_share_)
    topic_ids = previous.copy()
    if (~known).any():
        topic_ids[~known] = nearest_topics(points[known], previous[known], points[~known], settings.noise_neighbors)
    return TopicAssignment(topic_ids, ~known, False)
