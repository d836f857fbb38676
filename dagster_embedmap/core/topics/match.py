"""Stable topic ids across re-clustering: match new clusters to last run's topics by shared points.

A refit numbers its clusters 0..k-1 by size, so "topic 3" would mean something else every run.
:func:`match_topics` compares the new clusters with the topics the same points had before, lets each
new cluster inherit the id of the previous topic it overlaps best (one-to-one), gives the rest fresh
ids, and reports births, deaths, merges and splits. :func:`relabel` applies the result.

Pure numpy; scipy is imported inside :func:`match_topics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TopicMatch", "match_topics", "relabel"]


@dataclass
class TopicMatch:
    """How this run's clusters map onto stable topic ids, and what changed since the previous run."""

    mapping: dict[int, int]
    """New cluster id -> stable topic id, for every cluster id >= 0 of ``current``."""
    births: list[int] = field(default_factory=list)
    """Stable ids given out fresh this run (clusters that matched no previous topic), ascending."""
    deaths: list[int] = field(default_factory=list)
    """Previous topic ids that no new cluster inherited, ascending."""
    merges: dict[int, list[int]] = field(default_factory=dict)
    """Stable id -> the (>= 2) previous ids that sent more than half of their shared points into it."""
    splits: dict[int, list[int]] = field(default_factory=dict)
    """Previous id -> the (>= 2) stable ids that each received at least ``split_share`` of its shared points."""

    @property
    def kept(self) -> list[int]:
        """Stable ids carried over from the previous run, ascending."""
        born = set(self.births)
        return sorted(v for v in self.mapping.values() if v not in born)

    def to_metadata(self) -> dict[str, Any]:
        """Counts and lists with string keys and plain ints: ready for JSON or Dagster metadata."""
        return {
            "n_topics": len(self.mapping),
            "n_kept": len(self.kept),
            "n_births": len(self.births),
            "n_deaths": len(self.deaths),
            "n_merges": len(self.merges),
            "n_splits": len(self.splits),
            "births": [int(v) for v in self.births],
            "deaths": [int(v) for v in self.deaths],
            "merges": {str(k): [int(v) for v in vs] for k, vs in sorted(self.merges.items())},
            "splits": {str(k): [int(v) for v in vs] for k, vs in sorted(self.splits.items())},
            "mapping": {str(k): int(v) for k, v in sorted(self.mapping.items())},
        }


def _labels(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of topic ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        as_int = arr.astype(np.int64)
        if not np.array_equal(as_int, arr):
            raise ValueError(f"{name} must hold integer topic ids")
        arr = as_int
    return arr.astype(np.int64)


def match_topics(
    previous: np.ndarray,
    current: np.ndarray,
    *,
    min_overlap: float = 0.1,
    split_share: float = 0.2,
) -> TopicMatch:
    """Match this run's clusters (``current``) to last run's stable topic ids (``previous``).

    Both arrays hold a topic id per point, for the *same* points in the same order. In ``previous``,
    ``-1`` (any negative id) means the point had no topic (e.g. it is new); in ``current`` it is noise.

    - The overlap of previous topic ``P`` and new cluster ``C`` is their **Jaccard index**
      ``|P & C| / |P | C|``, where ``P`` is every point labelled ``P`` before and ``C`` every point labelled
      ``C`` now (so a cluster made mostly of new points overlaps its old neighbour only a little). Jaccard
      rather than the raw count, so a big cluster does not outbid the small one that really continues a topic.
    - Pairs are matched one-to-one by ``scipy.optimize.linear_sum_assignment`` maximising the total
      Jaccard; pairs below ``min_overlap`` count as zero and are never accepted. A matched cluster keeps
      the previous id; unmatched clusters get fresh ids ``max(previous ids, -1) + 1, ...`` in the order of
      their cluster id (births); previous ids that no cluster kept are deaths.
    - Merges: a stable id into which >= 2 previous topics each sent more than half of their shared
      points (points labelled in both runs). Splits: a previous topic of which >= 2 stable ids each
      received at least ``split_share`` of its shared points.

    The result is deterministic (no randomness; ties fall to scipy's deterministic solver).
    """
    from scipy.optimize import linear_sum_assignment

    prev = _labels("previous", previous)
    cur = _labels("current", current)
    if prev.shape != cur.shape:
        raise ValueError(f"previous and current must label the same points, got {prev.shape} and {cur.shape}")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap}")
    if not 0.0 < split_share <= 1.0:
        raise ValueError(f"split_share must be in (0, 1], got {split_share}")

    prev_ids, prev_sizes = np.unique(prev[prev >= 0], return_counts=True)
    cur_ids, cur_sizes = np.unique(cur[cur >= 0], return_counts=True)
    n_prev, n_cur = len(prev_ids), len(cur_ids)

    # Contingency of shared points: rows = new clusters, columns = previous topics.
    both = (prev >= 0) & (cur >= 0)
    table = np.zeros((n_cur, n_prev), dtype=np.int64)
    if both.any():
        np.add.at(table, (np.searchsorted(cur_ids, cur[both]), np.searchsorted(prev_ids, prev[both])), 1)
    union = cur_sizes[:, None] + prev_sizes[None, :] - table
    jaccard = np.divide(table, union, out=np.zeros(table.shape), where=union > 0)

    mapping: dict[int, int] = {}
    matched_prev: set[int] = set()
    if n_cur and n_prev:
        score = np.where((jaccard >= min_overlap) & (table > 0), jaccard, 0.0)
        rows, cols = linear_sum_assignment(score, maximize=True)
        for r, c in zip(rows, cols):
            if score[r, c] > 0:
                mapping[int(cur_ids[r])] = int(prev_ids[c])
                matched_prev.add(int(prev_ids[c]))

    next_id = int(max(prev_ids.max() if n_prev else -1, -1)) + 1
    births: list[int] = []
    for cid in cur_ids:
        if int(cid) not in mapping:
            mapping[int(cid)] = next_id
            births.append(next_id)
            next_id += 1
    mapping = dict(sorted(mapping.items()))
    deaths = sorted(int(p) for p in prev_ids if int(p) not in matched_prev)

    stable_of_row = np.array([mapping[int(c)] for c in cur_ids], dtype=np.int64)
    shared = table.sum(axis=0)  # per previous topic: points still clustered now
    merges_acc: dict[int, list[int]] = {}
    splits: dict[int, list[int]] = {}
    for j, pid in enumerate(prev_ids):
        if shared[j] == 0:
            continue
        column = table[:, j]
        top = int(np.argmax(column))
        if column[top] * 2 > shared[j]:
            merges_acc.setdefault(int(stable_of_row[top]), []).append(int(pid))
        receivers = sorted(int(s) for s in stable_of_row[column >= split_share * shared[j]])
        if len(receivers) >= 2:
            splits[int(pid)] = receivers
    merges = {s: sorted(ps) for s, ps in sorted(merges_acc.items()) if len(ps) >= 2}

    return TopicMatch(mapping=mapping, births=sorted(births), deaths=deaths, merges=merges, splits=splits)


def relabel(current: np.ndarray, match: TopicMatch) -> np.ndarray:
    """``current`` cluster ids replaced by their stable ids (int64); negative ids (noise) stay ``-1``.

    Raises ``ValueError`` if ``current`` holds a cluster id the match does not know.
    """
    cur = _labels("current", current)
    out = np.full(cur.shape, -1, dtype=np.int64)
    ids, inverse = np.unique(cur, return_inverse=True)
    missing = [int(i) for i in ids if i >= 0 and int(i) not in match.mapping]
    if missing:
        raise ValueError(f"cluster ids {missing} are not in the match's mapping")
    lookup = np.array([match.mapping.get(int(i), -1) if i >= 0 else -1 for i in ids], dtype=np.int64)
    if cur.size:
        out[:] = lookup[inverse.reshape(-1)]
    return out
