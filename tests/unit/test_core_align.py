"""Tests for dagster_embedmap.core.layout.align: Procrustes alignment, stratified sampling, neighbour preservation."""

from __future__ import annotations

import json
import pickle
from collections import Counter

import numpy as np
import pytest

from dagster_embedmap.core.layout.align import Alignment, neighbour_preservation, procrustes_align, stratified_sample


def rotation(deg: float, reflect: bool = False) -> np.ndarray:
    t = np.deg2rad(deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return r @ np.diag([1.0, -1.0]) if reflect else r


@pytest.fixture
def points() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 2)) * 3.0


# -- Alignment / procrustes_align -----------------------------------------------------------------


@pytest.mark.parametrize("reflect", [False, True])
def test_recovers_known_similarity_transform(points, reflect):
    r, s, t = rotation(37.0, reflect), 2.5, np.array([10.0, -4.0])
    target = s * points @ r + t
    fit = procrustes_align(points, target)
    np.testing.assert_allclose(fit.rotation, r, atol=1e-9)
    assert fit.scale == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(fit.translation, t, atol=1e-9)
    assert fit.disparity == pytest.approx(0.0, abs=1e-12)
    assert fit.is_reflection is reflect
    np.testing.assert_allclose(fit.rotation @ fit.rotation.T, np.eye(2), atol=1e-12)
    out = fit.apply(points)
    assert out.dtype == np.float32 and out.shape == (200, 2)
    np.testing.assert_allclose(out, target, atol=1e-4)


def test_noise_gives_small_positive_disparity(points):
    rng = np.random.default_rng(1)
    target = 0.5 * points @ rotation(-120.0) + np.array([3.0, 3.0])
    noisy = target + rng.normal(scale=0.05, size=target.shape)
    fit = procrustes_align(points, noisy)
    assert 0.0 < fit.disparity < 0.01
    assert fit.scale == pytest.approx(0.5, rel=0.01)
    # The fit is least squares: nudging any parameter makes the residual worse.
    best = ((fit.apply(points) - noisy) ** 2).sum()
    worse = Alignment(fit.rotation @ rotation(1.0), fit.scale, fit.translation)
    assert ((worse.apply(points) - noisy) ** 2).sum() > best
    assert ((Alignment(fit.rotation, fit.scale * 1.01, fit.translation).apply(points) - noisy) ** 2).sum() > best
    # Unrelated targets: a disparity near 1 (no better than the target's centroid).
    assert procrustes_align(points, rng.normal(size=points.shape)).disparity > 0.9


def test_self_alignment_is_identity(points):
    fit = procrustes_align(points, points)
    np.testing.assert_allclose(fit.rotation, np.eye(2), atol=1e-9)
    assert fit.scale == pytest.approx(1.0)
    np.testing.assert_allclose(fit.translation, [0.0, 0.0], atol=1e-9)
    assert fit.disparity == pytest.approx(0.0, abs=1e-12)
    identity = Alignment.identity()
    np.testing.assert_array_equal(identity.apply(points), points.astype(np.float32))
    assert identity.scale == 1.0 and identity.disparity == 0.0


def test_disparity_is_in_target_scale(points):
    rng = np.random.default_rng(2)
    noise = rng.normal(scale=0.1, size=points.shape)
    small = procrustes_align(points, points + noise).disparity
    # Same points, target 10x larger with 10x the noise: the relative residual is unchanged.
    assert procrustes_align(points, 10 * (points + noise)).disparity == pytest.approx(small, rel=1e-9)
    # Scaling the source does not change it either.
    assert procrustes_align(points * 7, points + noise).disparity == pytest.approx(small, rel=1e-9)


@pytest.mark.parametrize(
    "source, target",
    [
        (np.zeros((2, 2)) + [[0, 0], [1, 1]], np.array([[0.0, 0.0], [1.0, 2.0]])),  # fewer than 3 points
        (np.arange(10.0).reshape(5, 2), np.arange(8.0).reshape(4, 2)),  # shape mismatch
        (np.ones((5, 2)), np.arange(10.0).reshape(5, 2)),  # degenerate source
        (np.arange(15.0).reshape(5, 3), np.arange(15.0).reshape(5, 3)),  # not 2-D points
        (np.array([[0.0, 0.0], [1.0, np.nan], [2.0, 2.0]]), np.eye(3)[:, :2]),  # NaN
    ],
)
def test_bad_inputs_raise(source, target):
    with pytest.raises(ValueError):
        procrustes_align(source, target)


def test_apply_rejects_wrong_shape():
    with pytest.raises(ValueError):
        Alignment.identity().apply(np.zeros((4, 3)))
    assert Alignment.identity().apply(np.zeros((0, 2))).shape == (0, 2)


def test_round_trips_through_dict_json_and_pickle(points):
    fit = procrustes_align(points, 3 * points @ rotation(200.0, reflect=True) + 1.5)
    data = json.loads(json.dumps(fit.to_dict()))
    assert isinstance(data["rotation"], list) and isinstance(data["scale"], float)
    back = Alignment.from_dict(data)
    assert back == fit and hash(back) == hash(fit)
    np.testing.assert_array_equal(back.apply(points), fit.apply(points))
    assert pickle.loads(pickle.dumps(fit)) == fit
    assert Alignment.from_dict(Alignment.identity().to_dict()) == Alignment.identity()
    assert fit != Alignment.identity()


def test_alignment_is_immutable(points):
    fit = procrustes_align(points, points * 2)
    with pytest.raises(Exception):
        fit.scale = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        fit.rotation[0, 0] = 5.0


# -- stratified_sample ----------------------------------------------------------------------------


def test_stratified_sample_keeps_proportions():
    rng = np.random.default_rng(3)
    sizes = {"a": 500, "b": 300, "c": 137, "d": 50, "e": 13}
    groups = np.array([g for g, c in sizes.items() for _ in range(c)])
    rng.shuffle(groups)
    n, size = len(groups), 200
    index = stratified_sample(groups, size, seed=5)
    assert len(index) == size
    assert np.array_equal(index, np.unique(index))  # sorted and unique
    got = Counter(groups[index].tolist())
    for g, c in sizes.items():
        assert abs(got[g] - size * c / n) < 1.0, (g, got[g], size * c / n)


def test_stratified_sample_represents_every_group():
    groups = ["big"] * 1000 + ["tiny1"] * 2 + ["tiny2"] + ["mid"] * 100
    index = stratified_sample(groups, 50, seed=0)
    assert len(index) == 50
    picked = Counter(groups[i] for i in index)
    assert set(picked) == {"big", "tiny1", "tiny2", "mid"}
    assert picked["tiny1"] == 1 and picked["tiny2"] == 1
    assert picked["mid"] in (4, 5) and picked["big"] == 50 - 2 - picked["mid"]
    # Fewer slots than groups: one item from each of the largest groups.
    few = Counter(groups[i] for i in stratified_sample(groups, 2, seed=0))
    assert few == Counter({"big": 1, "mid": 1})


def test_stratified_sample_is_deterministic_per_seed():
    groups = [f"g{i % 7}" for i in range(1000)]
    a = stratified_sample(groups, 100, seed=11)
    assert np.array_equal(a, stratified_sample(groups, 100, seed=11))
    assert np.array_equal(a, stratified_sample(np.array(groups), 100, seed=11))
    assert not np.array_equal(a, stratified_sample(groups, 100, seed=12))


def test_stratified_sample_returns_all_when_size_covers_n():
    groups = ["x", "y", "x", "z"]
    np.testing.assert_array_equal(stratified_sample(groups, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(stratified_sample(groups, 100), [0, 1, 2, 3])
    assert stratified_sample(groups, 0).size == 0
    assert stratified_sample([], 10).size == 0
    with pytest.raises(ValueError):
        stratified_sample(groups, -1)


# -- neighbour_preservation -----------------------------------------------------------------------


def test_identical_and_similar_layouts_keep_neighbours(points):
    assert neighbour_preservation(points, points.copy(), k=10) == pytest.approx(1.0)
    moved = 4.0 * points @ rotation(75.0, reflect=True) + [100.0, -3.0]
    assert neighbour_preservation(points, moved, k=10) == pytest.approx(1.0)
    assert neighbour_preservation(points, procrustes_align(points, moved).apply(points), k=5) == pytest.approx(1.0)


def test_shuffled_layout_loses_neighbours(points):
    shuffled = points[np.random.default_rng(4).permutation(len(points))]
    score = neighbour_preservation(points, shuffled, k=10)
    assert 0.0 <= score < 0.2
    # Small jitter keeps most neighbours: somewhere in between.
    jitter = points + np.random.default_rng(5).normal(scale=0.1, size=points.shape)
    assert 0.5 < neighbour_preservation(points, jitter, k=10) < 1.0


def test_neighbour_preservation_small_and_bad_inputs():
    three = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    assert neighbour_preservation(three, three.copy(), k=10) == pytest.approx(1.0)  # k -> n - 1
    assert neighbour_preservation(three[:1], three[:1]) == 1.0
    # Nearest neighbours 0->1, 1->0, 2->1 become 0->2, 1->0, 2->0: only point 1 keeps its neighbour.
    after = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]])
    assert neighbour_preservation(three, after, k=1) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        neighbour_preservation(three, three[:2])
    with pytest.raises(ValueError):
        neighbour_preservation(three, three, k=0)
