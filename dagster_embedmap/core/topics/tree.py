"""A topic tree over the map: broad neighbourhoods made of the fine topics the clustering found.

The finest level is the clustering's topics. Each coarser level joins topics of the level below by
the rule of :mod:`dagster_embedmap.core.topics.merge`: size-weighted Ward linkage on their centroids in the
cluster space (the 10-d reduction made from the embeddings' own neighbour graph, so what the
vectors say the topics are about; the 2-D centroids only when there is no cluster space), only
between topics that touch on the map (so a broad topic is a region a person sees), and none larger
than :data:`MAX_BROAD_SHARE` of the points while another join is possible. Joining on the mean
384-d vector instead gave broad topics less like the corpora's coarse groups (NMI 0.208 vs 0.218 on
Debian's, 0.392 vs 0.423 on the docstrings') and a largest broad topic of 32-36% instead of 18-23%.

How many broad topics: near ``k ** (1 / depth)`` per step (about sqrt(k) for two levels), kept
within :data:`BROAD_RANGE` (4 to 15) where the level below allows, at the cut where the groups are
most clearly apart (see :func:`_natural_cut`). Every topic has exactly one parent; ids at each level
are numbered by size (0 the largest) and -1 stays "no topic" at every level.

Only topic centroids are joined, so building the tree costs about O(k^2) per join in the number of
fine topics ``k`` (hundreds at most), nothing per point beyond one mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .cluster import ClusterSpace

__all__ = ["TopicTree", "build_tree", "tree_from_parents", "renumber_level", "level_sizes", "BROAD_RANGE",
           "MAX_BROAD_SHARE"]

BROAD_RANGE = (4, 15)
"""How many broad topics (the top level) a tree gets where the level below has more than that many."""
MAX_BROAD_SHARE = 0.4
"""No topic above the finest level holds more than this share of the points while another join is possible."""


@dataclass
class TopicTree:
    """Every point's topic at each level, broadest first, and who is whose parent."""

    levels: list[np.ndarray]
    """``levels[L][i]``: point ``i``'s topic id at level ``L`` (0 broadest; the last is the finest)."""
    parents: list[dict[int, int]] = field(default_factory=list)
    """``parents[L]``: topic id at level ``L + 1`` -> its parent's id at level ``L``."""

    @property
    def depth(self) -> int:
        return len(self.levels)

    @property
    def fine(self) -> np.ndarray:
        return self.levels[-1]

    def children(self, level: int) -> dict[int, list[int]]:
        """Parent id at ``level`` -> its sub-topic ids at ``level + 1``, ascending."""
        out: dict[int, list[int]] = {}
        for child, parent in sorted(self.parents[level].items()):
            out.setdefault(parent, []).append(child)
        return out


def level_sizes(n_topics: int, depth: int) -> list[int]:
    """How many topics each level gets, broadest first: about ``k ** ((L + 1) / depth)`` for ``k``
    fine topics (so ~sqrt(k) broad topics over two levels), the broadest kept within
    :data:`BROAD_RANGE`, every level fewer than the level below, but at least 2 where the level below
    has 2 or more (a map is never one broad topic)."""
    if depth < 1:
        raise ValueError(f"a topic tree needs at least 1 level, got {depth}")
    sizes = [n_topics]
    lo, hi = BROAD_RANGE
    for level in range(depth - 2, -1, -1):
        below = sizes[0]
        want = int(round(n_topics ** ((level + 1) / depth))) if n_topics else 0
        if level == 0:
            want = min(max(want, lo), hi)
        sizes.insert(0, max(min(want, below - 1), min(2, below), 0 if below == 0 else 1))
    return sizes


def _natural_cut(merges: list[tuple[int, int, float]], k: int, target: int, below: int, broadest: bool) -> int:
    """How many groups to keep: the cut within ``target / 1.5 .. target * 2`` (and under ``below``;
    for the broadest level within :data:`BROAD_RANGE` too) where the next join costs the most
    relative to the one before it, i.e. where the groups are most clearly apart. Falls back to ``target``."""
    lo = max(min(2, below), int(np.ceil(target / 1.5)))
    hi = min(max(lo, below - 1), int(np.ceil(target * 2)))
    if broadest and below > BROAD_RANGE[0]:
        lo, hi = max(lo, BROAD_RANGE[0]), min(hi, BROAD_RANGE[1])
        lo = min(lo, hi)
    costs = [m[2] for m in merges]
    best, best_ratio = target, -1.0
    for m in range(max(lo, 1), hi + 1):
        nxt = k - m  # index of the join that would take m groups to m - 1
        if nxt >= len(costs) or nxt < 1:
            continue
        ratio = costs[nxt] / max(costs[nxt - 1], 1e-12)
        if ratio > best_ratio:
            best, best_ratio = m, ratio
    return best


def _by_size(point_ids: np.ndarray) -> dict[int, int]:
    """Old id -> new id with 0 the largest (ties by old id)."""
    ids, counts = np.unique(point_ids[point_ids >= 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    return {int(old): new for new, old in enumerate(order)}


def build_tree(xy: np.ndarray, fine: np.ndarray, depth: int = 2, space: "ClusterSpace | None" = None) -> TopicTree:
    """The topic tree of ``depth`` levels over points at ``xy`` whose finest topics are ``fine``.

    With ``space`` (a :class:`~dagster_embedmap.core.topics.cluster.ClusterSpace`) topics are joined on the
    centroid of their sampled points in the cluster space and touch where their sampled points are
    neighbours on the map; without, on their 2-D centroids and all points. ``fine`` keeps its ids (the stable ids
    of the clustering); coarser ids are numbered by size. With ``depth == 1`` the tree is the flat topics.
    """
    from .merge import adjacency, group_means, groups_after, ward_merges

    xy = np.asarray(xy, dtype=np.float64)
    fine = np.asarray(fine, dtype=np.int64)
    if xy.shape != (len(fine), 2):
        raise ValueError(f"xy must have shape ({len(fine)}, 2), got {xy.shape}")
    if space is not None and len(space.rows):
        rows, features = space.rows, np.asarray(space.coords, dtype=np.float64)
    else:
        rows, features = np.arange(len(fine)), xy
    ids = np.unique(fine[fine >= 0])
    sizes = level_sizes(len(ids), depth)
    levels = [fine]
    parents: list[dict[int, int]] = []
    current = fine
    for step, target in enumerate(reversed(sizes[:-1])):
        broadest = step == len(sizes) - 2
        topic_ids = np.unique(current[current >= 0])
        if len(topic_ids):
            at = current[rows]
            seen = at >= 0
            member = np.searchsorted(topic_ids, at[seen])
            weight = np.bincount(np.searchsorted(topic_ids, current[current >= 0]), minlength=len(topic_ids))
            centroids = group_means(member, features[seen], len(topic_ids))
            touching = adjacency(xy[rows][seen], member, len(topic_ids))
            merges = ward_merges(centroids, weight.astype(np.float64), touching, MAX_BROAD_SHARE)
            n_groups = _natural_cut(merges, len(topic_ids), target, len(topic_ids), broadest)
            group = groups_after(len(topic_ids), merges, n_groups)
        else:
            group = np.empty(0, dtype=np.int64)
        parent_raw = {int(t): int(g) for t, g in zip(topic_ids, group)}
        coarse = np.array([parent_raw.get(int(t), -1) for t in current], dtype=np.int64)
        renumber = _by_size(coarse)
        coarse = np.array([renumber.get(int(t), -1) for t in coarse], dtype=np.int64)
        parents.insert(0, {t: renumber[g] for t, g in parent_raw.items()})
        levels.insert(0, coarse)
        current = coarse
    return TopicTree(levels=levels, parents=parents)


def tree_from_parents(fine: np.ndarray, parents: list[dict[int, int]]) -> TopicTree:
    """The tree of points whose finest topics are ``fine``, under an existing set of parent maps.

    Raises ``KeyError`` naming a topic that has no parent (the tree must then be rebuilt).
    """
    fine = np.asarray(fine, dtype=np.int64)
    levels = [fine]
    current = fine
    for level in range(len(parents) - 1, -1, -1):
        parent_of = parents[level]
        missing = sorted({int(t) for t in np.unique(current[current >= 0])} - set(parent_of))
        if missing:
            raise KeyError(f"topics {missing} at level {level + 1} have no parent")
        current = np.array([parent_of[int(t)] if t >= 0 else -1 for t in current], dtype=np.int64)
        levels.insert(0, current)
    return TopicTree(levels=levels, parents=[dict(p) for p in parents])


def renumber_level(tree: TopicTree, level: int, mapping: dict[int, int]) -> TopicTree:
    """``tree`` with the ids of ``level`` replaced through ``mapping`` (ids it lacks keep theirs)."""
    levels = list(tree.levels)
    ids = levels[level]
    levels[level] = np.array([mapping.get(int(t), int(t)) if t >= 0 else -1 for t in ids], dtype=np.int64)
    parents = [dict(p) for p in tree.parents]
    if level > 0:  # this level's topics are the children in parents[level - 1]
        parents[level - 1] = {mapping.get(c, c): p for c, p in parents[level - 1].items()}
    if level < len(parents):  # and the parents in parents[level]
        parents[level] = {c: mapping.get(p, p) for c, p in parents[level].items()}
    return TopicTree(levels=levels, parents=parents)
