"""Tests for dagster_embedmap.core.topics.match: stable topic ids across re-clustering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dagster_embedmap.core.topics.match import TopicMatch, match_topics, relabel


def labels(*runs: tuple[int, int]) -> np.ndarray:
    """``labels((7, 3), (-1, 2))`` -> ``[7, 7, 7, -1, -1]``."""
    return np.concatenate([np.full(n, v, dtype=np.int64) for v, n in runs])


def test_permuted_ids_recover_previous_ids():
    rng = np.random.default_rng(0)
    previous = rng.choice([3, 5, 8, 11], size=400)
    new_of = {3: 2, 5: 0, 8: 3, 11: 1}  # the refit numbered the same topics differently
    current = np.array([new_of[p] for p in previous])
    match = match_topics(previous, current)
    assert match.mapping == {2: 3, 0: 5, 3: 8, 1: 11}
    assert match.births == [] and match.deaths == []
    assert match.merges == {} and match.splits == {}
    np.testing.assert_array_equal(relabel(current, match), previous)
    assert match.kept == [3, 5, 8, 11]


def test_new_cluster_of_new_points_is_a_birth():
    previous = labels((0, 50), (4, 50), (-1, 30))
    current = labels((1, 50), (0, 50), (2, 30))  # cluster 2 holds only new points
    match = match_topics(previous, current)
    assert match.mapping == {1: 0, 0: 4, 2: 5}  # fresh ids start after the largest previous id
    assert match.births == [5] and match.deaths == []
    meta = match.to_metadata()
    assert meta["n_births"] == 1 and meta["births"] == [5] and meta["n_kept"] == 2


def test_first_run_births_start_at_zero():
    current = labels((0, 10), (1, 5), (-1, 3))
    match = match_topics(np.full(len(current), -1), current)
    assert match.mapping == {0: 0, 1: 1} and match.births == [0, 1] and match.deaths == []


def test_split_keeps_id_on_the_larger_side():
    previous = labels((0, 100), (1, 60))
    current = labels((0, 65), (2, 35), (1, 60))  # old topic 0 falls apart into clusters 0 and 2
    match = match_topics(previous, current)
    assert match.mapping[0] == 0 and match.mapping[1] == 1
    assert match.mapping[2] == 2 and match.births == [2]
    assert match.splits == {0: [0, 2]}
    assert match.deaths == [] and match.merges == {}
    # A sliver below split_share is not a split.
    sliver = labels((0, 90), (2, 10), (1, 60))
    assert match_topics(previous, sliver).splits == {}
    assert match_topics(previous, sliver, split_share=0.1).splits == {0: [0, 2]}


def test_merge_keeps_one_id_and_the_other_dies():
    previous = labels((0, 80), (1, 40), (2, 50))
    current = labels((0, 120), (1, 50))  # topics 0 and 1 are now one cluster
    match = match_topics(previous, current)
    assert match.mapping == {0: 0, 1: 2}  # the bigger contributor (higher Jaccard) keeps its id
    assert match.deaths == [1] and match.births == []
    assert match.merges == {0: [0, 1]}
    assert match.splits == {}
    meta = match.to_metadata()
    assert meta["merges"] == {"0": [0, 1]} and meta["n_deaths"] == 1


def test_noise_is_ignored():
    previous = labels((0, 40), (1, 40), (-1, 20), (0, 10))
    current = labels((1, 40), (0, 40), (0, 20), (-1, 10))  # new points join cluster 0; 10 old ones are noise
    match = match_topics(previous, current)
    assert match.mapping == {1: 0, 0: 1}
    assert match.births == [] and match.deaths == []
    out = relabel(current, match)
    np.testing.assert_array_equal(out, labels((0, 40), (1, 60), (-1, 10)))
    # A previous topic whose points all became noise has no successor.
    gone = match_topics(labels((0, 10), (1, 10)), labels((0, 10), (-1, 10)))
    assert gone.mapping == {0: 0} and gone.deaths == [1] and gone.splits == {} and gone.merges == {}


def test_low_overlap_is_not_a_match():
    # Cluster 0 shares 5 of its 100 points with old topic 3 (Jaccard 5/145 < 0.1): a birth, and 3 dies.
    previous = labels((3, 5), (-1, 95), (3, 45))
    current = labels((0, 100), (-1, 45))
    match = match_topics(previous, current)
    assert match.mapping == {0: 4} and match.births == [4] and match.deaths == [3]
    assert match_topics(previous, current, min_overlap=0.03).mapping == {0: 3}


def test_match_is_deterministic_and_json_friendly():
    rng = np.random.default_rng(1)
    previous = rng.integers(-1, 6, size=500)
    current = np.where(rng.random(500) < 0.8, (previous + 2) % 7, rng.integers(-1, 8, size=500))
    a = match_topics(previous, current)
    b = match_topics(previous.copy(), current.copy())
    assert a == b
    assert set(a.mapping) == set(np.unique(current[current >= 0]).tolist())
    assert len(set(a.mapping.values())) == len(a.mapping)  # one-to-one
    meta = json.loads(json.dumps(a.to_metadata()))
    assert meta["n_topics"] == len(a.mapping) and meta["n_births"] == len(a.births)
    assert meta["n_kept"] + meta["n_births"] == meta["n_topics"]


def test_relabel_keeps_noise_and_rejects_unknown_ids():
    match = TopicMatch(mapping={0: 7, 1: 3})
    np.testing.assert_array_equal(relabel(np.array([1, -1, 0, 0, -1]), match), [3, -1, 7, 7, -1])
    assert relabel(np.array([], dtype=np.int64), match).shape == (0,)
    with pytest.raises(ValueError):
        relabel(np.array([0, 2]), match)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        match_topics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        match_topics(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        match_topics(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError):
        match_topics(np.zeros(3), np.zeros(3), min_overlap=1.5)
