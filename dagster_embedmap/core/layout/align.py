"""Keep a refitted 2-D layout looking like the previous one, and measure how much a layout changed.

- :class:`Alignment` is a similarity transform (rotation or reflection, uniform scale, shift) that a
  :class:`~dagster_embedmap.core.layout.project.ProjectionModel` stores and applies to raw projector output.
- :func:`procrustes_align` finds the least-squares :class:`Alignment` between two sets of the same points.
- :func:`stratified_sample` picks a sample with every group (partition) in proportion (the benchmarks use it;
  a layout's own sample is chosen by content, :func:`~dagster_embedmap.core.layout.project.content_order`).
- :func:`neighbour_preservation` scores how many of each point's nearest 2-D neighbours survived a change.

Pure numpy; scipy and scikit-learn are imported inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

__all__ = ["Alignment", "procrustes_align", "stratified_sample", "neighbour_preservation"]


def _points(name: str, points: Any) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return arr


@dataclass(frozen=True)
class Alignment:
    """``x -> scale * x @ rotation + translation`` for row vectors ``x`` of shape ``(2,)``.

    ``rotation`` is orthogonal (a reflection is allowed), ``scale`` is ``>= 0`` and ``disparity`` is
    the residual of the fit that produced it (0 = perfect; see :func:`procrustes_align`). The arrays
    are stored as read-only float64 copies.
    """

    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    disparity: float = 0.0

    def __post_init__(self) -> None:
        rotation = np.array(self.rotation, dtype=np.float64)
        translation = np.array(self.translation, dtype=np.float64).reshape(-1)
        if rotation.shape != (2, 2):
            raise ValueError(f"rotation must be 2x2, got {rotation.shape}")
        if translation.shape != (2,):
            raise ValueError(f"translation must have 2 values, got {translation.shape}")
        rotation.flags.writeable = False
        translation.flags.writeable = False
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "disparity", float(self.disparity))

    # ndarray fields: compare and hash by value (the generated versions would fail on arrays).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alignment):
            return NotImplemented
        return (
            np.array_equal(self.rotation, other.rotation)
            and self.scale == other.scale
            and np.array_equal(self.translation, other.translation)
            and self.disparity == other.disparity
        )

    def __hash__(self) -> int:
        return hash((self.rotation.tobytes(), self.scale, self.translation.tobytes(), self.disparity))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform ``(n, 2)`` points; returns a new float32 ``(n, 2)`` array."""
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"points must have shape (n, 2), got {arr.shape}")
        return (self.scale * (arr @ self.rotation) + self.translation).astype(np.float32)

    @classmethod
    def identity(cls) -> "Alignment":
        """The transform that leaves every point where it is."""
        return cls(rotation=np.eye(2), scale=1.0, translation=np.zeros(2), disparity=0.0)

    @property
    def is_reflection(self) -> bool:
        """True when the transform mirrors the layout (``det(rotation) < 0``)."""
        return bool(np.linalg.det(self.rotation) < 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats (JSON-serialisable); :meth:`from_dict` reads it back."""
        return {
            "rotation": [[float(v) for v in row] for row in self.rotation],
            "scale": float(self.scale),
            "translation": [float(v) for v in self.translation],
            "disparity": float(self.disparity),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Alignment":
        return cls(
            rotation=np.asarray(data["rotation"], dtype=np.float64),
            scale=float(data["scale"]),
            translation=np.asarray(data["translation"], dtype=np.float64),
            disparity=float(data.get("disparity", 0.0)),
        )


def procrustes_align(source: np.ndarray, target: np.ndarray) -> Alignment:
    """The similarity transform that maps ``source`` onto ``target`` (row ``i`` onto row ``i``) with
    least squared error.

    With ``A`` and ``B`` the centred points, the rotation ``R`` (reflection allowed) maximises
    ``trace(R^T A^T B)`` (``scipy.linalg.orthogonal_procrustes``), the scale is
    ``s = trace(R^T A^T B) / ||A||^2`` = (sum of the singular values of ``A^T B``) / ``||A||^2``, and the
    translation moves the source centroid onto the target centroid: ``t = mean(B') - s * mean(A') @ R``.

    ``disparity`` = sum of squared residuals / sum of squares of the centred target: 0 is a perfect
    fit, 1 is no better than putting every point at the target's centroid. (It is measured in the
    target's scale, unlike ``scipy.spatial.procrustes``, which standardises both sets.) A target whose
    points all coincide gives scale 0 and disparity 0.

    Raises ``ValueError`` for shapes other than matching ``(n, 2)``, fewer than 3 points, non-finite
    values, or a source whose points all coincide.
    """
    from scipy.linalg import orthogonal_procrustes

    src = _points("source", source)
    tgt = _points("target", target)
    if src.shape != tgt.shape:
        raise ValueError(f"source and target must have the same shape, got {src.shape} and {tgt.shape}")
    if len(src) < 3:
        raise ValueError(f"an alignment needs at least 3 shared points, got {len(src)}")
    src_mean, tgt_mean = src.mean(axis=0), tgt.mean(axis=0)
    a, b = src - src_mean, tgt - tgt_mean
    ss_source = float((a * a).sum())
    # Relative test: points that differ only by rounding noise around a large offset are degenerate too.
    if ss_source <= 1e-24 * max(1.0, float((src * src).sum())):
        raise ValueError("source points all coincide: no rotation or scale can be fitted")
    rotation, singular_sum = orthogonal_procrustes(a, b)
    scale = float(singular_sum) / ss_source
    translation = tgt_mean - scale * (src_mean @ rotation)
    residual = scale * (a @ rotation) - b
    ss_target = float((b * b).sum())
    ss_residual = float((residual * residual).sum())
    disparity = ss_residual / ss_target if ss_target > 0 else 0.0
    return Alignment(rotation=rotation, scale=scale, translation=translation, disparity=disparity)


def stratified_sample(groups: Sequence[Hashable] | np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted, unique indices of at most ``size`` items, each group represented in proportion.

    Every group gets ``size * count / n`` items rounded by largest remainder (ties: larger group first,
    then first appearance). While ``size`` allows (``size >= number of groups``) every group gets at least
    one item; groups lifted to that minimum are taken out and the rest of the sample is re-apportioned
    among the others, so only a forced minimum can leave a group more than one item off its share.
    When ``size`` is smaller than the number of groups, the ``size`` largest groups get one item each.
    All indices are returned when ``size >= n``. Which items of a group are drawn depends only on
    ``seed`` (numpy ``default_rng``), so the result is deterministic.
    """
    values = groups.tolist() if isinstance(groups, np.ndarray) else list(groups)
    n = len(values)
    size = int(size)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if size >= n:
        return np.arange(n, dtype=np.int64)
    if size == 0:
        return np.empty(0, dtype=np.int64)

    codes: dict[Hashable, int] = {}
    inverse = np.fromiter((codes.setdefault(v, len(codes)) for v in values), dtype=np.int64, count=n)
    counts = np.bincount(inverse, minlength=len(codes)).astype(np.int64)
    n_groups = len(counts)
    alloc = np.zeros(n_groups, dtype=np.int64)

    if size < n_groups:
        order = np.lexsort((np.arange(n_groups), -counts))  # largest first, then first appearance
        alloc[order[:size]] = 1
    else:
        active = np.ones(n_groups, dtype=bool)
        while True:
            remaining = size - int((~active).sum())
            quotas = np.zeros(n_groups)
            quotas[active] = remaining * counts[active] / counts[active].sum()
            lifted = active & (quotas < 1.0)
            if not lifted.any():
                break
            active &= ~lifted  # these get exactly one item
        alloc[~active] = 1
        base = np.floor(quotas).astype(np.int64)
        base[~active] = 0
        short = remaining - int(base[active].sum())
        if short > 0:
            frac = np.where(active, quotas - base, -1.0)
            order = np.lexsort((np.arange(n_groups), -counts, -frac))
            base[order[:short]] += 1
        alloc[active] = base[active]
    alloc = np.minimum(alloc, counts)

    rng = np.random.default_rng(seed)
    members = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    picked = []
    for g in range(n_groups):
        if alloc[g]:
            pool = members[starts[g] : starts[g + 1]]
            picked.append(rng.choice(pool, size=int(alloc[g]), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def neighbour_preservation(before: np.ndarray, after: np.ndarray, k: int = 10) -> float:
    """Mean share of each point's ``k`` nearest neighbours in ``before`` that are still among its ``k``
    nearest in ``after`` (row ``i`` is the same point in both; a point is not its own neighbour).

    1.0 means every point kept its neighbourhood; random layouts score about ``k / n``. With ``n <= k``
    points, ``k = n - 1`` is used; fewer than 2 points score 1.0. Works for any dimension, as long as
    both arrays have the same number of rows.
    """
    from sklearn.neighbors import NearestNeighbors

    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    if b.ndim != 2 or a.ndim != 2:
        raise ValueError(f"before and after must be 2-D arrays, got {b.shape} and {a.shape}")
    if len(b) != len(a):
        raise ValueError(f"before and after must hold the same points, got {len(b)} and {len(a)} rows")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(b)
    if n < 2:
        return 1.0
    k = min(int(k), n - 1)

    def knn(x: np.ndarray) -> np.ndarray:
        # kneighbors() without a query excludes each point from its own neighbours (even duplicates).
        return NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)

    both = np.sort(np.concatenate([knn(b), knn(a)], axis=1), axis=1)
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)  # each row of a kNN list is unique
    return float(shared.mean() / k)
