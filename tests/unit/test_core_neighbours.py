"""Exact neighbours for the layout's fit and placement (core/layout/neighbours.py, placement.py, kernels.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from dagster_embedmap.core.layout import neighbours, project
from dagster_embedmap.core.layout.neighbours import exact_neighbours
from dagster_embedmap.core.layout.project import ProjectionSettings, UMAPProjector


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_neighbours_are_the_brute_force_ones(metric):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2500, 24)).astype(np.float32)  # 3 blocks of queries
    queries = rng.normal(size=(300, 24)).astype(np.float32)
    reference = NearestNeighbors(n_neighbors=12, metric=metric, algorithm="brute").fit(data)

    idx, dist = exact_neighbours(data, 12, metric)
    ref_dist, ref_idx = reference.kneighbors(data)
    assert idx.dtype == np.int32 and dist.dtype == np.float32 and idx.shape == (2500, 12)
    assert (idx[:, 0] == np.arange(2500)).all() and (dist[:, 0] == 0).all()  # each point its own first
    assert (idx == ref_idx).mean() > 0.999
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)
    assert (np.diff(dist, axis=1) >= 0).all()

    idx, dist = exact_neighbours(data, 12, metric, queries=queries)
    ref_dist, ref_idx = reference.kneighbors(queries)
    assert (idx == ref_idx).mean() > 0.999
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)


def test_more_neighbours_than_points_gives_every_point_and_other_metrics_are_refused():
    data = np.eye(4, dtype=np.float32) + 0.1
    idx, dist = exact_neighbours(data, 10, "euclidean")
    assert idx.shape == (4, 4) and sorted(idx[2].tolist()) == [0, 1, 2, 3] and idx[2, 0] == 2
    with pytest.raises(ValueError, match="correlation"):
        exact_neighbours(data, 2, "correlation")


def blobs(per_blob=150, dim=32, seed=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 6.0
    x = np.concatenate([c + rng.normal(size=(per_blob, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), per_blob), centres


def test_a_fit_uses_no_search_index_and_places_new_points_in_their_blob_the_same_every_time(monkeypatch):
    monkeypatch.setattr(project, "_SMALL", 100)  # as for a sample of 4,096 points or more, on 450
    x, truth, centres = blobs()
    projector = UMAPProjector(ProjectionSettings(random_state=42, cluster_dims=4, cluster_neighbors=30)).fit(x)
    assert projector.model_._knn_search_index is None  # pynndescent never ran
    assert projector.cluster_embedding_.shape == (len(x), 4)
    new = (centres[[0, 1, 2, 1]] + np.random.default_rng(9).normal(size=(4, x.shape[1]))).astype(np.float32)
    placed = projector.transform(new)
    assert placed.shape == (4, 2) and placed.dtype == np.float32
    np.testing.assert_array_equal(placed, projector.transform(new))
    fitted = projector.fit_embedding_
    blob_of_fitted = truth[projector.fit_index_]
    for point, blob in zip(placed, [0, 1, 2, 1]):
        nearest = np.argsort(np.linalg.norm(fitted - point, axis=1))[:10]
        assert (blob_of_fitted[nearest] == blob).mean() >= 0.9


def test_above_the_exact_size_and_for_other_metrics_umap_learn_searches_itself(monkeypatch):
    x, _, _ = blobs(per_blob=40)
    monkeypatch.setattr(project, "_SMALL", 10)
    monkeypatch.setattr(neighbours, "EXACT_UP_TO", 100)
    big = UMAPProjector(ProjectionSettings(random_state=1, cluster_dims=0)).fit(x)
    monkeypatch.undo()
    other = UMAPProjector(ProjectionSettings(random_state=1, cluster_dims=0, metric="correlation")).fit(x)
    for projector in (big, other):
        assert not hasattr(projector.model_, "_knn_search_index") or projector.model_._knn_search_index is not None
        assert np.isfinite(projector.transform(x[:3] + 0.01)).all()


def _group_share(fitted_xy, fitted_truth, placed, truth, k=10):
    """Mean share of each placed point's ``k`` nearest fitted places that lie in its own group."""
    d = ((placed[:, None, :] - fitted_xy[None, :, :]) ** 2).sum(-1)
    near = np.argsort(d, axis=1)[:, :k]
    return float(np.mean([(fitted_truth[row] == t).mean() for row, t in zip(near, truth)]))


def test_the_placer_places_like_umap_learns_transform_and_each_point_whatever_its_batch():
    # below 4,096 points umap-learn keeps its own exact transform: the reference
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(6, 48))
    truth = rng.integers(0, 6, size=1800)
    x = (centres[truth] + rng.normal(size=(1800, 48)) * 0.9).astype(np.float32)
    fit, new, fit_truth, new_truth = x[:1500], x[1500:], truth[:1500], truth[1500:]
    projector = UMAPProjector(ProjectionSettings(random_state=7, cluster_dims=0)).fit(fit)
    assert projector.placer_ is not None
    ours = projector.transform(new)
    theirs = np.asarray(projector.model_.transform(new), dtype=np.float32)
    xy, order_truth = projector.fit_embedding_, fit_truth[projector.fit_index_]
    extent = float(np.linalg.norm(xy.max(0) - xy.min(0)))
    moved = np.linalg.norm(ours - theirs, axis=1) / extent
    assert np.median(moved) < 0.03, np.median(moved)  # measured: 0.007
    share, reference = _group_share(xy, order_truth, ours, new_truth), _group_share(xy, order_truth, theirs, new_truth)
    assert share >= reference - 0.02 and share >= 0.9, (share, reference)  # measured: 1.000 vs 1.000
    # a point lands where it lands alone, in any batch, in any order
    np.testing.assert_array_equal(projector.transform(new[::-1])[::-1], ours)
    np.testing.assert_array_equal(projector.transform(new[7:8])[0], ours[7])
    alone = np.concatenate([projector.transform(new[i:i + 1]) for i in range(0, len(new), 15)])
    np.testing.assert_array_equal(alone, ours[::15])  # one at a time (a one-row product in BLAS)


def test_a_saved_layout_places_points_in_a_fresh_process_without_importing_umap_learn_or_numba(tmp_path):
    import subprocess
    import sys

    from dagster_embedmap.core.layout.project import fit_projection

    x, _, centres = blobs()
    model = fit_projection([str(i) for i in range(len(x))], x, ProjectionSettings(random_state=3, cluster_dims=0))
    path = model.save(tmp_path / "projection_model.pkl")
    new = (centres[[2, 0]] + 0.5).astype(np.float32)
    np.save(tmp_path / "new.npy", new)
    code = (
        "import sys, numpy as np\n"
        "from dagster_embedmap.core.layout.project import ProjectionModel\n"
        f"model = ProjectionModel.load({str(path)!r})\n"
        f"xy = model.place(['a', 'b'], np.load({str(tmp_path / 'new.npy')!r}))\n"
        "heavy = sorted(m for m in ('umap', 'sklearn', 'pynndescent', 'numba') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none'); print(xy.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    heavy, placed = out.stdout.strip().splitlines()
    assert heavy == "none"
    np.testing.assert_allclose(np.asarray(eval(placed)), model.place(["a", "b"], new), rtol=0, atol=1e-6)


def test_the_ahead_of_time_kernels_place_as_numbas_jit_kernels_do(monkeypatch):
    from dagster_embedmap.core.layout import ahead, compiled

    monkeypatch.setattr(project, "_SMALL", 100)  # the exact-neighbour path, whose placer_ places
    x, _, centres = blobs()
    projector = UMAPProjector(ProjectionSettings(random_state=3, cluster_dims=0)).fit(x)
    assert projector.placer_ is not None
    new = (centres[np.arange(40) % len(centres)] + np.random.default_rng(1).normal(size=(40, x.shape[1]))).astype(
        np.float32)
    built = ahead.placement_kernels()
    assert ahead._failed is None, ahead._failed  # the test machine has a C compiler: the module is built
    assert type(built[0]).__name__ != "CPUDispatcher"
    placed = projector.transform(new)
    jit = compiled.placement_kernels()
    monkeypatch.setattr(ahead, "placement_kernels", lambda: (*jit, compiled.top_k_kernel()))
    np.testing.assert_array_equal(projector.transform(new), placed)
    closeness = np.random.default_rng(2).integers(0, 4, size=(50, 300)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(built[2](closeness, 15), compiled.top_k_kernel()(closeness, 15))
    from dagster_embedmap.core.layout.kernels import nearest_2d

    known = np.round(np.random.default_rng(3).normal(size=(400, 2)), 1)  # many points at one place
    query = np.round(np.random.default_rng(4).normal(size=(30, 2)), 1)
    for ours, jit in zip(ahead.nearest_2d_kernel()(known, query, 10), nearest_2d(known, query, 10)):
        np.testing.assert_array_equal(ours, jit)
