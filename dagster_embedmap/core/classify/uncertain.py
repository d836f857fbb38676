"""The records a classifier is least sure about, spread over the map: the next ones worth labelling.

Sureness is the margin between a record's best and second-best class scores (for one-vs-rest scores,
how close its most doubtful class is to 0.5). Taking the k smallest margins alone would often list k
near-copies from one fuzzy border; instead the map is cut into a grid of about ``4k`` cells and the
least sure record of each cell competes, so one border gives at most one record per cell.
"""

from __future__ import annotations

import numpy as np

__all__ = ["margins", "least_certain"]


def margins(proba: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """How sure each record's prediction is, 0 (a coin toss) to 1."""
    p = np.asarray(proba, dtype=np.float64)
    if len(p) == 0:
        return np.zeros(0)
    if multi_label:
        return (np.abs(p - 0.5) * 2).min(axis=1)
    if p.shape[1] < 2:
        return np.ones(len(p))
    top2 = np.sort(p, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def least_certain(proba: np.ndarray, xy: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
                  multi_label: bool = False) -> np.ndarray:
    """Row indices of up to ``k`` records to label next: the least sure, at most one per grid cell of
    the 2-D map ``xy`` while there are cells left, least sure first. ``exclude`` (a boolean mask)
    leaves out records already labelled."""
    m = margins(proba, multi_label)
    n = len(m)
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape != (n, 2):
        raise ValueError(f"xy must be one (x, y) per record: shape {xy.shape}, {n} records")
    candidates = np.arange(n) if exclude is None else np.flatnonzero(~np.asarray(exclude, dtype=bool))
    k = int(min(k, len(candidates)))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    sides = max(1, int(np.ceil(np.sqrt(4 * k))))
    lo, hi = xy[candidates].min(axis=0), xy[candidates].max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cell_xy = np.minimum(((xy[candidates] - lo) / span * sides).astype(np.int64), sides - 1)
    cell = cell_xy[:, 0] * sides + cell_xy[:, 1]
    order = candidates[np.lexsort((candidates, m[candidates]))]  # least sure first, ties by row
    cell_of = dict(zip(candidates.tolist(), cell.tolist()))
    picked, used, rest = [], set(), []
    for i in order.tolist():
        c = cell_of[i]
        if c in used:
            rest.append(i)
            continue
        used.add(c)
        picked.append(i)
        if len(picked) == k:
            break
    if len(picked) < k:  # fewer occupied cells than k: the least sure of the rest fill up
        picked += rest[: k - len(picked)]
    return np.asarray(picked, dtype=np.int64)
