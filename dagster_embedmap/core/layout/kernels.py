"""The layout's own numba kernels, compiled once per machine into the cache of ``compiled.py``.

Import through :func:`~dagster_embedmap.core.layout.compiled.top_k_kernel`, which points numba at that
cache first (numba fixes a function's cache folder when it is decorated).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["top_k"]


@numba.njit(cache=True, inline="always")
def _worse(vals, idx, a, b):
    """Entry ``a`` ranks below entry ``b``: a smaller value, or the same value at a higher column."""
    return vals[a] < vals[b] or (vals[a] == vals[b] and idx[a] > idx[b])


@numba.njit(cache=True)
def _sift_down(vals, idx, i, size):
    """Restore the heap below ``i`` (the root holds the worst entry kept)."""
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        if child + 1 < size and _worse(vals, idx, child + 1, child):
            child += 1
        if not _worse(vals, idx, child, i):
            return
        vals[i], vals[child] = vals[child], vals[i]
        idx[i], idx[child] = idx[child], idx[i]
        i = child


@numba.njit(cache=True, parallel=True)
def top_k(closeness, k):
    """``(m, k)`` int32: per row of the ``(m, n)`` float32 ``closeness``, the columns of its ``k``
    largest values, largest first, ties to the lower column (``k <= n``)."""
    m, n = closeness.shape
    out = np.empty((m, k), dtype=np.int32)
    for r in numba.prange(m):
        row = closeness[r]
        vals = np.empty(k, dtype=np.float32)
        idx = np.empty(k, dtype=np.int32)
        for j in range(k):
            vals[j] = row[j]
            idx[j] = j
        for start in range(k // 2 - 1, -1, -1):
            _sift_down(vals, idx, start, k)
        worst = vals[0]
        for j in range(k, n):
            # every kept column is lower than j, so a tie with the worst kept entry loses
            if row[j] > worst:
                vals[0] = row[j]
                idx[0] = j
                _sift_down(vals, idx, 0, k)
                worst = vals[0]
        for end in range(k - 1, 0, -1):  # heap sort: the worst to the back, one at a time
            vals[0], vals[end] = vals[end], vals[0]
            idx[0], idx[end] = idx[end], idx[0]
            _sift_down(vals, idx, 0, end)
        out[r] = idx
    return out
