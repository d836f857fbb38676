"""Topics as clusters of the 2-D map: HDBSCAN finds them, then every point gets the topic of its neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .topics_match import TopicMatch

__all__ = ["ClusterSettings", "HDBSCANTopics", "TopicAssignment", "assign_topics", "nearest_topics",
           "auto_min_cluster_size"]


def auto_min_cluster_size(n: int) -> int:
    """About 1.25% of the points, at least 5 (25 for 2,000 points): topics a person can read on a map."""
    return max(5, int(round(n / 80)))


@dataclass(frozen=True)
class ClusterSettings:
    min_cluster_size: int | None = None
    """Smallest group of points that counts as a topic; ``None`` scales with the map (n / 80, at least 5)."""
    min_samples: int | None = None
    """How conservative HDBSCAN is (more points left as noise when larger); ``None`` = min_cluster_size,
    capped at 25 so the density estimate does not widen with the map (which merges topics at 10k+ points)."""
    assign_noise: bool = True
    """Give points HDBSCAN left unclustered the majority topic of their nearest clustered neighbours."""
    noise_neighbors: int = 10
    """How many labelled neighbours vote on the topic of an unclustered or new point."""
    levels: int = 2
    """Levels of the topic tree: broad neighbourhoods over the clusters (1 = flat topics, 3 = a middle
    level as well). The finest level is HDBSCAN's clusters; see :mod:`dagster_embedmap.core.hierarchy`."""


class HDBSCANTopics:
    """fit / predict over ``(n, 2)`` coordinates. Topic ids are 0..k-1, largest topic first; -1 is noise."""

    def __init__(self, settings: ClusterSettings = ClusterSettings()):
        self.settings = settings
        self.labels_: np.ndarray | None = None
        self.clustered_: np.ndarray | None = None
        self._points: np.ndarray | None = None

    @property
    def n_topics_(self) -> int:
        return 0 if self.labels_ is None else int(self.labels_.max() + 1) if len(self.labels_) else 0

    def fit(self, points: np.ndarray) -> "HDBSCANTopics":
        points = np.asarray(points, dtype=np.float64)
        n = len(points)
        mcs = self.settings.min_cluster_size or auto_min_cluster_size(n)
        if n < max(mcs, 2):
            raw = np.zeros(n, dtype=np.int64) if n else np.empty(0, dtype=np.int64)
        else:
            import hdbscan

            min_samples = self.settings.min_samples or min(mcs, 25)
            raw = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=min_samples).fit_predict(points)
        raw = np.asarray(raw, dtype=np.int64)
        self.clustered_ = raw >= 0
        if not self.clustered_.any() and n:  # nothing dense enough: one topic rather than none
            raw[:] = 0
        labels = raw.copy()
        if self.settings.assign_noise and (labels < 0).any():
            labels[labels < 0] = self._nearest_topics(points[labels >= 0], labels[labels >= 0], points[labels < 0])
        labels = self._by_size(labels)  # numbered by final size, after noise found its topics
        self.labels_ = labels
        self._points, self._point_labels = points[labels >= 0], labels[labels >= 0]
        return self

    def predict(self, points: np.ndarray) -> np.ndarray:
        """The topic of new points: majority of their nearest already-labelled neighbours."""
        if self._points is None:
            raise RuntimeError("fit before predict")
        return self._nearest_topics(self._points, self._point_labels, np.asarray(points, dtype=np.float64))

    def fit_predict(self, points: np.ndarray) -> np.ndarray:
        return self.fit(points).labels_

    def _nearest_topics(self, known: np.ndarray, known_labels: np.ndarray, query: np.ndarray) -> np.ndarray:
        return nearest_topics(known, known_labels, query, self.settings.noise_neighbors)

    @staticmethod
    def _by_size(raw: np.ndarray) -> np.ndarray:
        """Renumber clusters so topic 0 is the largest (ties by first appearance); keep -1 as is."""
        raw = np.asarray(raw, dtype=np.int64)
        ids, counts = np.unique(raw[raw >= 0], return_counts=True)
        order = ids[np.lexsort((ids, -counts))]
        mapping = {int(old): new for new, old in enumerate(order)}
        return np.array([mapping.get(int(v), -1) for v in raw], dtype=np.int64)


def nearest_topics(known: np.ndarray, known_labels: np.ndarray, query: np.ndarray, neighbors: int = 10) -> np.ndarray:
    """The distance-weighted majority topic of each query point's nearest labelled points."""
    from sklearn.neighbors import KNeighborsClassifier

    if len(query) == 0:
        return np.empty(0, dtype=np.int64)
    k = max(1, min(neighbors, len(known)))
    clf = KNeighborsClassifier(n_neighbors=k, weights="distance").fit(known, known_labels)
    return clf.predict(np.asarray(query, dtype=np.float64)).astype(np.int64)


@dataclass
class TopicAssignment:
    topic_ids: np.ndarray
    """The stable topic id of every point."""
    changed: np.ndarray
    """Points whose topic is new or different from before (only these need writing back)."""
    reclustered: bool
    clustered: np.ndarray | None = None
    """When reclustered: the points HDBSCAN put in a cluster itself."""
    match: "TopicMatch | None" = None
    """When reclustered over earlier topics: how new clusters map to the old ids (births, merges, splits)."""


def assign_topics(
    points: np.ndarray, previous: np.ndarray, recluster: bool, settings: ClusterSettings = ClusterSettings()
) -> TopicAssignment:
    """Topics for every point of the map, changing as little as possible.

    ``previous`` holds each point's earlier topic id (-1: none yet). Without ``recluster``, points keep
    their topic and new points take their labelled neighbours' topic (no reclustering). With it (or
    when nothing has a topic yet), HDBSCAN runs again and the new clusters are matched to the earlier
    ids, so a topic keeps its id where it still exists.
    """
    from .topics_match import match_topics, relabel

    points = np.asarray(points, dtype=np.float64)
    previous = np.asarray(previous, dtype=np.int64)
    known = previous >= 0
    if recluster or not known.any():
        clusterer = HDBSCANTopics(settings).fit(points)
        match = None
        topic_ids = clusterer.labels_
        if known.any():
            match = match_topics(previous, topic_ids)
            topic_ids = relabel(topic_ids, match)
        return TopicAssignment(topic_ids, topic_ids != previous, True, clusterer.clustered_, match)
    topic_ids = previous.copy()
    if (~known).any():
        topic_ids[~known] = nearest_topics(points[known], previous[known], points[~known], settings.noise_neighbors)
    return TopicAssignment(topic_ids, ~known, False)
