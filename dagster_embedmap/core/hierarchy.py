"""A topic tree over the map: broad neighbourhoods made of the fine topics the clustering found.

The finest level is the clustering's topics. Each coarser level joins neighbouring topics of the
level below by Ward's method on their 2-D centroids, weighted by size (two small topics side by side
join before a big one swallows its neighbour), so a broad topic is a region of the map a person
sees at a glance. How many broad topics: near ``k ** (1 / depth)`` per step (about sqrt(k) for two
levels), at the cut where the regions are most clearly apart (see :func:`_natural_cut`). Every topic has exactly one parent; ids at each level are numbered by size (0 the
largest) and -1 stays "no topic" at every level.

Only centroids are clustered, so building the tree costs O(k^3) in the number of fine topics
``k`` (a few hundred at most), nothing per point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TopicTree", "build_tree", "tree_from_parents", "renumber_level", "level_sizes"]


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
    fine topics (so ~sqrt(k) broad topics over two levels), fewer than the level below, but at
    least 2 where the level below has 2 or more (a map is never one broad topic)."""
    if depth < 1:
        raise ValueError(f"a topic tree needs at least 1 level, got {depth}")
    sizes = [n_topics]
    for level in range(depth - 2, -1, -1):
        below = sizes[0]
        want = int(round(n_topics ** ((level + 1) / depth))) if n_topics else 0
        sizes.insert(0, max(min(want, below - 1), min(2, below), 0 if below == 0 else 1))
    return sizes


def _ward_merges(centroids: np.ndarray, weights: np.ndarray) -> list[tuple[int, int, float]]:
    """Every merge of size-weighted Ward clustering over the centroids, cheapest first: ``(kept, absorbed, cost)``.

    The cost of joining groups ``A`` and ``B`` is ``|A||B| / (|A| + |B|) * |c_A - c_B|^2``, the growth of
    the within-group sum of squares (sizes are point counts, so a big topic is expensive to move).
    """
    k = len(centroids)
    c = centroids.astype(np.float64).copy()
    w = weights.astype(np.float64).copy()
    alive = np.ones(k, dtype=bool)
    merges: list[tuple[int, int, float]] = []
    for _ in range(k - 1):
        idx = np.flatnonzero(alive)
        d2 = ((c[idx, None, :] - c[None, idx, :]) ** 2).sum(-1)
        cost = (w[idx, None] * w[None, idx]) / (w[idx, None] + w[None, idx]) * d2
        np.fill_diagonal(cost, np.inf)
        a, b = np.unravel_index(int(np.argmin(cost)), cost.shape)
        merges.append((int(idx[a]), int(idx[b]), float(cost[a, b])))
        a, b = idx[a], idx[b]
        total = w[a] + w[b]
        c[a] = (c[a] * w[a] + c[b] * w[b]) / total
        w[a] = total
        alive[b] = False
    return merges


def _groups_after(k: int, merges: list[tuple[int, int, float]], n_groups: int) -> np.ndarray:
    """Group index (0..n_groups-1, arbitrary order) of each of ``k`` items after the first ``k - n_groups`` merges."""
    group = np.arange(k)
    for a, b, _ in merges[: max(0, k - n_groups)]:
        group[group == b] = a
    _, dense = np.unique(group, return_inverse=True)
    return dense.reshape(-1)


def _natural_cut(merges: list[tuple[int, int, float]], k: int, target: int, below: int) -> int:
    """How many groups to keep: the cut within ``target / 1.5 .. target * 2`` (and under ``below``)
    where the next merge costs the most relative to the one before it, i.e. where the map's
    neighbourhoods are most clearly apart. Falls back to ``target``."""
    lo = max(min(2, below), int(np.ceil(target / 1.5)))
    hi = min(max(lo, below - 1), int(np.ceil(target * 2)))
    costs = [m[2] for m in merges]
    best, best_ratio = target, -1.0
    for m in range(max(lo, 1), hi + 1):
        nxt = k - m  # index of the merge that would take m groups to m - 1
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


def build_tree(xy: np.ndarray, fine: np.ndarray, depth: int = 2) -> TopicTree:
    """The topic tree of ``depth`` levels over points at ``xy`` whose finest topics are ``fine``.

    ``fine`` keeps its ids (they are the stable ids of the clustering); coarser ids are numbered by
    size. With ``depth == 1`` the tree is the flat topics.
    """
    xy = np.asarray(xy, dtype=np.float64)
    fine = np.asarray(fine, dtype=np.int64)
    if xy.shape != (len(fine), 2):
        raise ValueError(f"xy must have shape ({len(fine)}, 2), got {xy.shape}")
    ids = np.unique(fine[fine >= 0])
    sizes = level_sizes(len(ids), depth)
    levels = [fine]
    parents: list[dict[int, int]] = []
    current = fine
    for target in reversed(sizes[:-1]):
        topic_ids = np.unique(current[current >= 0])
        if len(topic_ids):
            rows = np.searchsorted(topic_ids, current[current >= 0])
            weight = np.bincount(rows, minlength=len(topic_ids)).astype(np.float64)
            centroids = np.stack(
                [np.bincount(rows, weights=xy[current >= 0, d], minlength=len(topic_ids)) / weight for d in (0, 1)],
                axis=1,
            )
            merges = _ward_merges(centroids, weight)
            n_groups = _natural_cut(merges, len(topic_ids), target, len(topic_ids))
            group = _groups_after(len(topic_ids), merges, n_groups)
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
