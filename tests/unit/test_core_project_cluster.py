"""Tests for dagster_embedmap.core.layout.project (UMAP) and core.cluster (HDBSCAN) with the real libraries.

UMAP is fitted twice for the whole module (module-scoped fixtures): numba compiles on first use.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from dagster_embedmap.core.topics.cluster import ClusterSettings, HDBSCANTopics, assign_topics, auto_min_cluster_size
from dagster_embedmap.core.layout.project import ProjectionSettings, UMAPProjector

PER_BLOB = 80
DIM = 50


def make_blobs(per_blob: int = PER_BLOB, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, DIM)) * 10.0
    x = np.concatenate([c + rng.normal(size=(per_blob, DIM)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), per_blob)
    return x, truth, centres


@pytest.fixture(scope="module")
def blobs():
    return make_blobs()


@pytest.fixture(scope="module")
def full(blobs):
    x, _, _ = blobs
    projector = UMAPProjector(ProjectionSettings(n_neighbors=15, random_state=42))
    coords = projector.fit_transform(x)
    return projector, coords


@pytest.fixture(scope="module")
def sampled(blobs):
    x, _, _ = blobs
    projector = UMAPProjector(ProjectionSettings(n_neighbors=15, sample_size=150, random_state=7))
    coords = projector.fit_transform(x)
    return projector, coords


@pytest.fixture(scope="module")
def topics(full):
    _, coords = full
    return HDBSCANTopics(ClusterSettings(min_cluster_size=20)).fit(coords)


def topic_of_blob(labels: np.ndarray, truth: np.ndarray) -> dict[int, int]:
    return {b: int(np.bincount(labels[truth == b]).argmax()) for b in range(3)}


# -- projection -----------------------------------------------------------------------------------


def test_fit_transform_gives_finite_2d_float32(full, blobs):
    projector, coords = full
    x, _, _ = blobs
    assert coords.shape == (len(x), 2)
    assert coords.dtype == np.float32
    assert np.isfinite(coords).all()
    assert sorted(projector.fit_index_.tolist()) == list(range(len(x)))  # every point, in content order
    np.testing.assert_array_equal(coords[projector.fit_index_], projector.fit_embedding_)
    assert projector.cluster_embedding_.shape == (len(x), 10) and np.isfinite(projector.cluster_embedding_).all()


def test_a_fit_depends_on_the_vectors_not_their_order(full, blobs):
    """The same vectors in another order (another map name, partitioning or store order) give every
    point the same place and the same topic."""
    projector, coords = full
    x, _, _ = blobs
    perm = np.random.default_rng(5).permutation(len(x))
    again = UMAPProjector(projector.settings).fit_transform(x[perm])
    np.testing.assert_array_equal(again, coords[perm])
    np.testing.assert_array_equal(x[perm][UMAPProjector(projector.settings).fit(x[perm]).fit_index_],
                                  x[projector.fit_index_])


def test_projection_keeps_blobs_apart(full, blobs):
    _, coords = full
    _, truth, _ = blobs
    means = np.array([coords[truth == b].mean(axis=0) for b in range(3)])
    spread = max(np.linalg.norm(coords[truth == b] - means[b], axis=1).mean() for b in range(3))
    gaps = [np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread


def test_sample_smaller_than_n_still_places_every_point(sampled, blobs):
    projector, coords = sampled
    x, truth, _ = blobs
    assert len(projector.fit_index_) == 150
    assert len(np.unique(projector.fit_index_)) == 150
    # the sample is chosen by content: the same 150 vectors whatever the order they come in
    perm = np.random.default_rng(2).permutation(len(x))
    other = UMAPProjector(projector.settings).fit(x[perm])
    assert sorted(perm[other.fit_index_].tolist()) == sorted(projector.fit_index_.tolist())
    assert coords.shape == (len(x), 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(coords[projector.fit_index_], projector.fit_embedding_)
    # the transformed (not sampled) points land with their own blob
    labels = HDBSCANTopics(ClusterSettings(min_cluster_size=20)).fit_predict(coords)
    assert adjusted_rand_score(truth, labels) > 0.9


def test_save_load_round_trip_transforms_the_same(sampled, blobs, tmp_path):
    projector, _ = sampled
    _, _, centres = blobs
    rng = np.random.default_rng(11)
    new = (centres[[0, 1, 2, 0]] + rng.normal(size=(4, DIM))).astype(np.float32)
    path = projector.save(tmp_path / "model" / "projection.pkl")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["projection.pkl"]  # no temp file left
    loaded = UMAPProjector.load(path)
    assert loaded.settings == projector.settings
    a = projector.transform(new)
    b = loaded.transform(new)
    assert b.dtype == np.float32 and b.shape == (4, 2)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_transform_before_fit_raises():
    with pytest.raises(RuntimeError, match="fit"):
        UMAPProjector().transform(np.zeros((3, 4), np.float32))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_points_raise(n):
    with pytest.raises(ValueError, match="at least 3"):
        UMAPProjector().fit(np.ones((n, 5), np.float32))


# -- topics on the projection ---------------------------------------------------------------------


def test_hdbscan_recovers_the_blobs(topics, blobs):
    _, truth, _ = blobs
    labels = topics.labels_
    assert adjusted_rand_score(truth, labels) > 0.9
    assert topics.n_topics_ == 3
    assert sorted(set(labels.tolist())) == [0, 1, 2]
    assert len(set(topic_of_blob(labels, truth).values())) == 3


@pytest.mark.parametrize("far", [20.0, 30.0, 60.0])
def test_three_blobs_stay_three_when_two_lie_near_and_one_far(far):
    """Ward joins of three clean blobs on a line cost ``near`` then far more; that second gap must
    not read as "the data has two groups" while the near join still dwarfs the blobs' own spread."""
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(size=(80, 2)) * 0.5 + p for p in [(0, 0), (10, 0), (far, 0)]])
    labels = HDBSCANTopics(ClusterSettings(min_cluster_size=20)).fit_predict(xy)
    assert adjusted_rand_score(np.repeat(np.arange(3), 80), labels) == 1.0


@pytest.mark.parametrize("split", [2.0, 2.5])
def test_three_blobs_each_in_two_dense_parts_are_three_topics(split):
    """Each blob is two overlapping dense parts, so HDBSCAN finds 5-6 cores for a target of 6; the
    joins that would go below three groups cost hundreds of times those within a blob."""
    rng = np.random.default_rng(1)
    centres = [(0, 0), (0, split), (40, 0), (40, split), (20, 30), (20, 30 + split)]
    xy = np.concatenate([rng.normal(size=(120, 2)) * 0.6 + p for p in centres])
    labels = HDBSCANTopics(ClusterSettings(min_cluster_size=15, fine_topics=6)).fit_predict(xy)
    assert adjusted_rand_score(np.repeat([0, 0, 1, 1, 2, 2], 120), labels) == 1.0


def test_topics_are_numbered_largest_first_and_noise_is_assigned(topics):
    labels = topics.labels_
    assert labels.dtype == np.int64
    assert (labels >= 0).all()
    counts = np.bincount(labels)
    assert list(counts) == sorted(counts, reverse=True)
    assert topics.clustered_.dtype == np.bool_
    assert topics.clustered_.shape == labels.shape
    assert topics.clustered_.sum() > 0.8 * len(labels)


def test_new_points_take_the_topic_of_their_blob(full, topics, blobs):
    projector, coords = full
    _, truth, centres = blobs
    rng = np.random.default_rng(5)
    which = np.array([0, 1, 2, 2, 1, 0])
    new = (centres[which] + rng.normal(size=(len(which), DIM))).astype(np.float32)
    xy = np.vstack([coords, projector.transform(new)])
    before = np.concatenate([topics.labels_, np.full(len(new), -1)])
    assigned = assign_topics(xy, before, recluster=False)  # what the topics step does for new points
    predicted = assigned.topic_ids[-len(new):]
    assert assigned.changed.tolist() == [False] * len(truth) + [True] * len(new)
    mapping = topic_of_blob(topics.labels_, truth)
    assert predicted.tolist() == [mapping[b] for b in which]


# -- HDBSCANTopics on plain 2-D points (no UMAP) --------------------------------------------------


def planar(sizes=(100, 60, 30), seed: int = 1, noise: int = 0):
    rng = np.random.default_rng(seed)
    centres = [(0.0, 0.0), (20.0, 0.0), (0.0, 20.0)]
    pts = [rng.normal(c, 1.0, size=(s, 2)) for c, s in zip(centres, sizes)]
    truth = [np.full(s, i) for i, s in enumerate(sizes)]
    if noise:
        pts.append(rng.uniform(-40, 60, size=(noise, 2)))
        truth.append(np.full(noise, -1))
    return np.concatenate(pts), np.concatenate(truth)


def test_largest_cluster_is_topic_zero_regardless_of_input_order():
    pts, truth = planar(sizes=(30, 100, 60))
    labels = HDBSCANTopics(ClusterSettings(min_cluster_size=10)).fit_predict(pts)
    assert adjusted_rand_score(truth, labels) > 0.95
    assert (labels[truth == 1] == 0).all()  # 100 points
    assert (labels[truth == 2] == 1).all()  # 60 points
    assert (labels[truth == 0] == 2).all()  # 30 points


def test_noise_kept_as_minus_one_without_assign_noise_and_filled_with_it():
    pts, truth = planar(noise=25)
    kept = HDBSCANTopics(ClusterSettings(min_cluster_size=10, assign_noise=False)).fit(pts)
    assert (kept.labels_ == -1).any()
    np.testing.assert_array_equal(kept.clustered_, kept.labels_ >= 0)
    filled = HDBSCANTopics(ClusterSettings(min_cluster_size=10, assign_noise=True)).fit(pts)
    assert (filled.labels_ >= 0).all()
    # clustered points keep their topic; only noise was filled in
    np.testing.assert_array_equal(filled.clustered_, kept.clustered_)
    np.testing.assert_array_equal(filled.labels_[kept.clustered_], kept.labels_[kept.clustered_])
    # a noise point right next to a cluster gets that cluster's topic
    near = HDBSCANTopics(ClusterSettings(min_cluster_size=10)).fit(np.vstack([pts, [[20.0, 3.5]]]))
    assert near.labels_[-1] == near.labels_[np.flatnonzero(truth == 1)[0]]


def test_new_plain_points_take_their_neighbours_topic():
    pts, truth = planar()
    model = HDBSCANTopics(ClusterSettings(min_cluster_size=10)).fit(pts)
    new = np.array([[0.5, -0.5], [19.0, 1.0], [1.0, 21.0]])
    out = assign_topics(np.vstack([pts, new]), np.concatenate([model.labels_, [-1, -1, -1]]), recluster=False)
    assert out.topic_ids.dtype == np.int64 and not out.reclustered
    assert out.topic_ids[-3:].tolist() == [0, 1, 2]
    assert np.array_equal(out.topic_ids[:-3], model.labels_)


def test_too_few_points_make_one_topic():
    model = HDBSCANTopics(ClusterSettings(min_cluster_size=5)).fit(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))
    assert model.labels_.tolist() == [0, 0, 0]
    assert model.n_topics_ == 1
    empty = HDBSCANTopics().fit(np.empty((0, 2)))
    assert empty.labels_.shape == (0,)
    assert empty.n_topics_ == 0


def test_uniform_noise_still_gives_at_least_one_topic():
    rng = np.random.default_rng(3)
    model = HDBSCANTopics(ClusterSettings(min_cluster_size=40)).fit(rng.uniform(size=(60, 2)))
    assert (model.labels_ >= 0).all()
    assert model.n_topics_ >= 1


@pytest.mark.parametrize("sample, n, expected", [(0, 0, 5), (100, 100, 5), (400, 400, 5), (2000, 2000, 9),
                                                 (10_000, 10_000, 19), (20_000, 1_000_000, 5)])
def test_auto_min_cluster_size(sample, n, expected):
    assert auto_min_cluster_size(sample, n) == expected


@pytest.mark.parametrize("n, expected", [(0, 1), (100, 4), (2000, 20), (10_033, 45), (1_000_000, 450)])
def test_fine_topics_grow_with_the_map(n, expected):
    from dagster_embedmap.core.topics.cluster import auto_fine_topics

    assert auto_fine_topics(n) == expected


def test_fit_projection_aligns_a_refit_onto_the_previous_layout(blobs):
    from dagster_embedmap.core.layout.project import fit_projection

    x, truth, _ = blobs
    ids = [f"p{i}" for i in range(len(x))]
    settings = ProjectionSettings(n_neighbors=15, random_state=42)
    first = fit_projection(ids, x, settings)
    assert first.version == 1 and first.alignment.disparity == 0.0 and len(first.fitted) == len(x)
    # the map a user knows: the same layout seen flipped, turned a quarter, scaled and moved
    turn = np.array([[0.0, -1.0], [-1.0, 0.0]])
    known = {pid: tuple(np.asarray(first.fitted[pid]) @ turn * 2.0 + np.array([100.0, -50.0])) for pid in ids}
    second = fit_projection(ids, x, settings, previous=first, previous_xy=known)
    assert second.version == 2 and second.alignment.disparity < 1e-3
    placed = second.place(ids, x)
    target = np.asarray([known[pid] for pid in ids])
    assert np.abs(placed - target).max() < 0.05 * np.ptp(target[:, 0])
    # a point the model was not fitted on is transformed into the same aligned frame
    new = x[:3] + 0.01
    assert np.linalg.norm(second.place(["n0", "n1", "n2"], new) - target[:3], axis=1).max() < 0.2 * np.ptp(target[:, 0])


def test_assign_topics_keeps_ids_and_only_labels_new_points(topics, full):
    _, coords = full
    labels = topics.labels_
    previous = labels.copy()
    previous[:5] = -1  # five points arrive without a topic
    kept = assign_topics(coords, previous, recluster=False, settings=ClusterSettings(min_cluster_size=20))
    assert not kept.reclustered and kept.changed.sum() == 5
    assert (kept.topic_ids == labels).all()
    # a recluster finds the same groups and gives them back their old ids, whatever HDBSCAN numbers them
    shuffled = (labels + 1) % (labels.max() + 1)
    again = assign_topics(coords, shuffled, recluster=True, settings=ClusterSettings(min_cluster_size=20))
    assert again.reclustered and (again.topic_ids == shuffled).all()
    assert again.match.births == [] and again.match.deaths == []


# -- parallel fits and epochs for large maps ------------------------------------------------------


def test_large_fits_use_fewer_epochs_and_stay_seeded():
    from dagster_embedmap.core.layout.project import LARGE_FIT

    s = ProjectionSettings()
    assert s.parallel is False and s.n_epochs is None
    assert s.epochs_for(LARGE_FIT) is None and s.epochs_for(LARGE_FIT + 1) == 100
    small, large = UMAPProjector(s)._make(2000), UMAPProjector(s)._make(LARGE_FIT + 1)
    assert small.random_state == 42 and small.n_epochs is None  # umap-learn's own choice (500) for small maps
    assert large.random_state == 42 and large.n_epochs == 100
    assert ProjectionSettings(n_epochs=300).epochs_for(10**6) == 300
    parallel = UMAPProjector(ProjectionSettings(parallel=True))._make(LARGE_FIT + 1)
    assert parallel.random_state is None  # the seed goes to NumPy's generator instead


def test_parallel_fit_is_seeded_and_leaves_global_state_alone(blobs):
    import numba

    x, truth, _ = blobs
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    threads = numba.get_num_threads()
    projector = UMAPProjector(ProjectionSettings(n_neighbors=15, random_state=5, parallel=True))
    coords = projector.fit_transform(x)
    assert np.array_equal(np.random.get_state()[1], before)  # the caller's generator is restored
    assert numba.get_num_threads() == threads
    assert projector.model_.random_state is None
    # Threads move points in a varying order, so where the blobs land varies from run to run; what
    # must hold is that each blob stays together in 2-D: a point's nearest neighbours are from its
    # own blob. (Counting topics instead failed 2 of ~40 suite runs: when two blobs land near each
    # other and the third far off, the topic count rightly reads that as two groups.)
    assert _same_blob_neighbours(coords, truth) > 0.95


def _same_blob_neighbours(coords: np.ndarray, truth: np.ndarray, k: int = 5) -> float:
    """The share of each point's ``k`` nearest neighbours in ``coords`` that come from its own blob."""
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    return float((truth[idx[:, 1:]] == truth[:, None]).mean())


def test_seeded_fit_gives_numba_its_threads_back(blobs):
    """umap-learn sets numba to one thread for the whole process when seeded; the projector undoes that."""
    import numba

    x, _, _ = blobs
    threads = numba.get_num_threads()
    UMAPProjector(ProjectionSettings(n_neighbors=15, random_state=1, parallel=False, n_epochs=20)).fit(x)
    assert numba.get_num_threads() == threads


def test_nearest_topics_votes_as_scikit_learns_distance_weighted_classifier():
    from sklearn.neighbors import KNeighborsClassifier

    from dagster_embedmap.core.topics.cluster import nearest_topics

    rng = np.random.default_rng(0)
    for dims, n, m in [(2, 20_000, 1_000), (10, 5_000, 3_000), (2, 6, 4)]:
        known = rng.normal(size=(n, dims))
        labels = rng.integers(0, 30, n) * 3 - 1  # any ids, -1 among them
        query = np.concatenate([rng.normal(size=(m, dims)), known[:5]])  # 5 at a labelled point itself
        reference = KNeighborsClassifier(n_neighbors=min(10, n), weights="distance").fit(known, labels).predict(query)
        ours = nearest_topics(known, labels, query)
        assert ours.dtype == np.int64 and (ours == reference).all()
        assert (ours[-5:] == labels[:5]).all()
    assert nearest_topics(known, labels, np.empty((0, 2))).shape == (0,)


def test_nearest_topics_compiled_and_kd_tree_paths_agree_and_break_ties_by_index(monkeypatch):
    from dagster_embedmap.core.topics import cluster

    rng = np.random.default_rng(4)
    known = rng.normal(size=(5_000, 2)) * 10
    labels = rng.integers(0, 25, len(known))
    known[2_000:2_040] = known[3]  # 41 labelled points at one place, more than the 10 that vote
    query = np.concatenate([rng.normal(size=(400, 2)) * 10, known[[3, 3, 8]]])
    dist, idx = cluster._nearest(known, query, 10)
    # the 10 nearest of a duplicated place: itself and the next nine copies, by index
    assert idx[-2].tolist() == [3, *range(2_000, 2_009)] and (dist[-2] == 0).all()
    compiled = cluster.nearest_topics(known, labels, query)
    monkeypatch.setattr(cluster, "_COMPILED_UP_TO", 0)  # as for a batch too large to compare every pair
    tree_dist, tree_idx = cluster._nearest(known, query, 10)
    np.testing.assert_array_equal(tree_idx, idx)
    np.testing.assert_array_equal(tree_dist, dist)
    np.testing.assert_array_equal(cluster.nearest_topics(known, labels, query), compiled)


def test_nearest_topics_breaks_ties_by_index_in_any_dimension(monkeypatch):
    from dagster_embedmap.core.topics import cluster

    rng = np.random.default_rng(6)
    known = rng.normal(size=(3_000, 5))
    known[1_000:1_030] = known[11]  # 31 points at one place
    query = np.concatenate([rng.normal(size=(50, 5)), known[[11]]])
    dist, idx = cluster._nearest(known, query, 10)
    assert idx[-1].tolist() == [11, *range(1_000, 1_009)] and (dist[-1] == 0).all()
    brute = np.sqrt(((query[:, None, :] - known[None, :, :]) ** 2).sum(axis=2))
    expected = np.lexsort((np.broadcast_to(np.arange(len(known)), brute.shape), brute), axis=-1)[:, :10]
    np.testing.assert_array_equal(idx, expected)
