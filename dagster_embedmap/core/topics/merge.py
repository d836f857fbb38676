"""Joining groups of points into fewer, larger ones: size-weighted Ward linkage under two constraints.

Both the fine topics (joined from HDBSCAN's dense cores) and every coarser level of the topic tree
(joined from the level below) are made here, so the whole tree follows one rule:

- **cost**: joining groups ``A`` and ``B`` costs ``|A||B| / (|A| + |B|) * |c_A - c_B|^2``, the growth of
  the within-group sum of squares, ``c`` their mean (unit) embedding; two small neighbours join before
  a big group swallows one, so sizes stay even;
- **touching**: only groups whose points are neighbours on the 2-D map may join, so every group is a
  region a person sees; when no touching pair is left, the cheapest pair of all joins;
- **a size cap** (optional): a join that would make a group larger than ``max_share`` of all points
  is taken only when no other join is possible, or (with ``cap_gap``, as the fine topics use it) when
  every join under the cap costs :data:`CAP_GAP` times as much: the data truly is one group there, so
  two halves of one blob join rather than two blobs.

Costs are kept in a ``k x k`` matrix updated by the Lance-Williams formula, so joining ``k`` groups
costs ``O(k^2)`` memory and about ``O(k^2)`` per join: well under a second for the ~900 cores of a
million-point map.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adjacency", "group_means", "ward_merges", "groups_after", "CAP_GAP"]

CAP_GAP = 5.0
"""A join over the size cap is taken instead of the cheapest one under it when it costs less than
1 / CAP_GAP of that one: the two are parts of one group, and the other join would cross a clear gap."""



def group_means(group: np.ndarray, features: np.ndarray, k: int) -> np.ndarray:
    """``(k, d)``: the mean of ``features`` over the rows of each group (``group[i]`` in ``0..k-1``);
    a group without rows gets zeros."""
    features = np.asarray(features, dtype=np.float64)
    counts = np.bincount(group, minlength=k).astype(np.float64)
    sums = np.stack([np.bincount(group, weights=features[:, d], minlength=k) for d in range(features.shape[1])],
                    axis=1)
    return sums / np.maximum(counts, 1)[:, None]

def adjacency(xy: np.ndarray, group: np.ndarray, k: int, neighbors: int = 10) -> np.ndarray:
    """``(k, k)`` bool: groups ``a`` and ``b`` touch when some point of one has a point of the other among
    its ``neighbors`` nearest on the map (``group[i]`` in ``0..k-1`` for point ``xy[i]``)."""
    from sklearn.neighbors import NearestNeighbors

    xy = np.asarray(xy, dtype=np.float64)
    out = np.zeros((k, k), dtype=bool)
    if len(xy) < 2:
        return out
    nn = NearestNeighbors(n_neighbors=min(neighbors + 1, len(xy))).fit(xy)
    _, idx = nn.kneighbors(xy)
    a = np.repeat(group, idx.shape[1])
    b = group[idx.reshape(-1)]
    out[a, b] = True
    out |= out.T
    np.fill_diagonal(out, False)
    return out


def ward_merges(centroids: np.ndarray, weights: np.ndarray, touching: np.ndarray | None = None,
                max_share: float | None = None, stop_at: int = 1, method: str = "ward",
                cap_gap: float | None = None) -> list[tuple[int, int, float]]:
    """The joins of constrained, size-weighted Ward linkage, in order: ``(kept, absorbed, cost)``,
    until ``stop_at`` groups are left. See the module docstring for the rule. ``method="average"``:
    size-weighted average linkage of squared distances instead. ``cap_gap`` (e.g. :data:`CAP_GAP`): the
    size cap gives way to a touching join that costs under ``1 / cap_gap`` of the cheapest join under it;
    None keeps the cap hard."""
    c = np.asarray(centroids, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).copy()
    k = len(c)
    if k <= stop_at:
        return []
    sq = (c * c).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * c @ c.T, 0.0)
    cost = (w[:, None] * w[None, :]) / (w[:, None] + w[None, :]) * d2 if method == "ward" else d2.copy()
    np.fill_diagonal(cost, np.inf)
    touch = np.ones((k, k), dtype=bool) if touching is None else np.asarray(touching, dtype=bool).copy()
    np.fill_diagonal(touch, False)
    alive = np.ones(k, dtype=bool)
    total = float(w.sum())
    cap = np.inf if max_share is None else max_share * total
    merges: list[tuple[int, int, float]] = []
    for _ in range(k - stop_at):
        live = alive[:, None] & alive[None, :]
        small = (w[:, None] + w[None, :]) <= cap
        pick = None
        for mask in (live & touch & small, live & small, live & touch, live):
            masked = np.where(mask, cost, np.inf)
            flat = int(np.argmin(masked))
            if np.isfinite(masked.flat[flat]):
                pick = divmod(flat, k)
                break
        if pick is not None and np.isfinite(cap) and cap_gap:
            # the cap gives way where the data is one group: a join over it that costs a fraction of the
            # cheapest one under it (two halves of one blob, not two neighbours)
            over = np.where(live & touch & ~small, cost, np.inf)
            flat = int(np.argmin(over))
            if np.isfinite(over.flat[flat]) and over.flat[flat] * cap_gap < cost[pick]:
                pick = divmod(flat, k)
        if pick is None:
            break
        a, b = pick
        if w[b] > w[a] or (w[b] == w[a] and b < a):
            a, b = b, a  # the larger group keeps its index (ties: the lower one)
        merges.append((int(a), int(b), float(cost[a, b])))
        wa, wb = w[a], w[b]
        # Lance-Williams for Ward: cost(x, a+b) from cost(x, a), cost(x, b) and cost(a, b)
        if method == "ward":
            new = ((wa + w) * cost[a] + (wb + w) * cost[b] - w * cost[a, b]) / (wa + wb + w)
        else:
            new = (wa * cost[a] + wb * cost[b]) / (wa + wb)
        cost[a, :] = new
        cost[:, a] = new
        cost[a, a] = np.inf
        cost[b, :] = np.inf
        cost[:, b] = np.inf
        w[a] = wa + wb
        touch[a] |= touch[b]
        touch[:, a] = touch[a]
        touch[a, a] = False
        alive[b] = False
    return merges


def groups_after(k: int, merges: list[tuple[int, int, float]], n_groups: int) -> np.ndarray:
    """Group index (0..n_groups-1, by the lowest item in it) of each of ``k`` items after the first
    ``k - n_groups`` joins of ``merges``."""
    parent = np.arange(k)
    for a, b, _ in merges[: max(0, k - n_groups)]:
        parent[parent == b] = a
    _, dense = np.unique(parent, return_inverse=True)
    return dense.reshape(-1).astype(np.int64)
