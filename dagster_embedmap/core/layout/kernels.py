"""The layout's own numba kernels, compiled once per machine into the cache of ``compiled.py``.

Import through :func:`~dagster_embedmap.core.layout.compiled.top_k_kernel`, which points numba at that
cache first (numba fixes a function's cache folder when it is decorated).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["top_k", "memberships", "place_epochs", "nearest_2d"]


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


# --- placing new points on a fitted layout (``placement.py``) ------------------------------------------


@numba.njit(cache=True)
def _taus88(state):
    """The next draw of L'Ecuyer's three-component Tausworthe generator kept in ``state`` (3 int64)."""
    state[0] = (((state[0] & 4294967294) << 12) & 0xFFFFFFFF) ^ ((((state[0] << 13) & 0xFFFFFFFF) ^ state[0]) >> 19)
    state[1] = (((state[1] & 4294967288) << 4) & 0xFFFFFFFF) ^ ((((state[1] << 2) & 0xFFFFFFFF) ^ state[1]) >> 25)
    state[2] = (((state[2] & 4294967280) << 17) & 0xFFFFFFFF) ^ ((((state[2] << 3) & 0xFFFFFFFF) ^ state[2]) >> 11)
    return state[0] ^ state[1] ^ state[2]


@numba.njit(cache=True, nogil=True)
def memberships(dists, valid, local_connectivity):
    """``(m, k)`` float32 fuzzy memberships of each query to its ``k`` nearest fitted points (distances
    ``dists``, nearest first; ``valid`` False where a neighbour is too far to count): 1 within the
    distance ``rho`` of the ``local_connectivity``-th nearest, then ``exp(-(d - rho) / sigma)``, with
    ``sigma`` found by bisection so a row's memberships sum to ``log2(k)`` (UMAP's smooth k-NN)."""
    m, k = dists.shape
    out = np.zeros((m, k), dtype=np.float32)
    target = np.log2(k) if k > 1 else 1.0
    mean_all = 0.0
    count_all = 0
    for r in range(m):
        for j in range(k):
            if valid[r, j]:
                mean_all += dists[r, j]
                count_all += 1
    mean_all = mean_all / max(count_all, 1)
    index = int(np.floor(local_connectivity))
    interpolation = local_connectivity - index
    for r in range(m):
        row = dists[r]
        positive = np.empty(k, dtype=np.float64)
        n_pos = 0
        total = 0.0
        n_valid = 0
        for j in range(k):
            if valid[r, j]:
                total += row[j]
                n_valid += 1
                if row[j] > 0.0:
                    positive[n_pos] = row[j]
                    n_pos += 1
        if n_valid == 0:
            continue
        rho = 0.0
        if n_pos >= local_connectivity:
            if index > 0:
                rho = positive[index - 1]
                if interpolation > 1e-5:
                    rho += interpolation * (positive[index] - positive[index - 1])
            elif interpolation > 1e-5:
                rho = interpolation * positive[0]
        elif n_pos > 0:
            rho = positive[n_pos - 1]
        lo, hi, sigma = 0.0, np.inf, 1.0
        for _ in range(64):
            psum = 0.0
            for j in range(k):
                if valid[r, j]:
                    d = row[j] - rho
                    psum += np.exp(-(d / sigma)) if d > 0.0 else 1.0
            if abs(psum - target) < 1e-5:
                break
            if psum > target:
                hi = sigma
                sigma = (lo + hi) / 2.0
            else:
                lo = sigma
                sigma = sigma * 2.0 if hi == np.inf else (lo + hi) / 2.0
        floor = 1e-3 * (total / n_valid if rho > 0.0 else mean_all)
        sigma = max(sigma, floor)
        for j in range(k):
            if valid[r, j]:
                d = row[j] - rho
                out[r, j] = 1.0 if d <= 0.0 or sigma == 0.0 else np.exp(-(d / sigma))
    return out


@numba.njit(cache=True, inline="always")
def _clip(value):
    return 4.0 if value > 4.0 else (-4.0 if value < -4.0 else value)


@numba.njit(cache=True, fastmath=True, nogil=True)
def place_epochs(head, tail, rows, cols, epochs_per_sample, a, b, gamma, initial_alpha, negative_rate, epochs,
                 rng):
    """UMAP's layout optimiser for points placed on a fitted layout: ``head`` (the new points' places,
    moved in place) is pulled towards the fitted places ``tail`` along the edges ``rows -> cols`` and
    pushed from randomly drawn fitted points; ``tail`` never moves, so each new point follows only its
    own edges and its own generator state ``rng[row]``, whatever else is placed with it."""
    n_edges = rows.shape[0]
    n_tail = tail.shape[0]
    dim = head.shape[1]
    per_negative = epochs_per_sample / negative_rate
    next_negative = per_negative.copy()
    next_sample = epochs_per_sample.copy()
    for epoch in range(epochs):
        alpha = initial_alpha * (1.0 - epoch / epochs)
        for i in range(n_edges):
            if next_sample[i] > epoch:
                continue
            j = rows[i]
            k = cols[i]
            d2 = 0.0
            for d in range(dim):
                diff = head[j, d] - tail[k, d]
                d2 += diff * diff
            coeff = 0.0
            if d2 > 0.0:
                coeff = -2.0 * a * b * d2 ** (b - 1.0) / (a * d2 ** b + 1.0)
            for d in range(dim):
                head[j, d] += _clip(coeff * (head[j, d] - tail[k, d])) * alpha
            next_sample[i] += epochs_per_sample[i]
            n_negative = int((epoch - next_negative[i]) / per_negative[i])
            for _ in range(n_negative):
                other = _taus88(rng[j]) % n_tail
                d2 = 0.0
                for d in range(dim):
                    diff = head[j, d] - tail[other, d]
                    d2 += diff * diff
                if d2 <= 0.0:
                    continue
                coeff = 2.0 * gamma * b / ((0.001 + d2) * (a * d2 ** b + 1.0))
                for d in range(dim):
                    head[j, d] += _clip(coeff * (head[j, d] - tail[other, d])) * alpha
            next_negative[i] += n_negative * per_negative[i]


# --- the nearest labelled points of a point on the map (``topics/cluster.py``) ---------------------------


@numba.njit(cache=True, nogil=True)
def nearest_2d(known, query, k):
    """``(distances, indices)``, each ``(m, k)``: per row of the ``(m, 2)`` float64 ``query``, its ``k``
    nearest rows of the ``(n, 2)`` float64 ``known`` (``k <= n``) by Euclidean distance, nearest first,
    ties to the lower index; each pair compared once, nothing allocated per pair."""
    m = query.shape[0]
    n = known.shape[0]
    out_d = np.empty((m, k), dtype=np.float64)
    out_i = np.empty((m, k), dtype=np.int64)
    near = np.empty(k, dtype=np.float64)  # minus the distance: top_k's heap of the largest values
    idx = np.empty(k, dtype=np.int64)
    for r in range(m):
        qx = query[r, 0]
        qy = query[r, 1]
        for j in range(k):
            dx = qx - known[j, 0]
            dy = qy - known[j, 1]
            near[j] = -np.sqrt(dx * dx + dy * dy)
            idx[j] = j
        for start in range(k // 2 - 1, -1, -1):
            _sift_down(near, idx, start, k)
        for j in range(k, n):
            dx = qx - known[j, 0]
            dy = qy - known[j, 1]
            d = -np.sqrt(dx * dx + dy * dy)
            if d > near[0]:  # every kept index is lower than j, so a tie with the farthest kept loses
                near[0] = d
                idx[0] = j
                _sift_down(near, idx, 0, k)
        for end in range(k - 1, 0, -1):
            near[0], near[end] = near[end], near[0]
            idx[0], idx[end] = idx[end], idx[0]
            _sift_down(near, idx, 0, end)
        out_d[r] = -near
        out_i[r] = idx
    return out_d, out_i
