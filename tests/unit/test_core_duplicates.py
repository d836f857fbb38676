"""dagster_embedmap.core.store.duplicates: outliers by distance from their topic's centre."""

import numpy as np

from dagster_embedmap.core.store.duplicates import topic_outliers


def test_the_point_far_from_its_topic_ranks_first():
    rng = np.random.default_rng(0)
    xy = np.vstack([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 20, [[0.0, 9.0]]])
    topics = np.array([0] * 50 + [1] * 50 + [0])
    order, score = topic_outliers(xy, topics, top=5)
    assert order[0] == 100 and score[0] > 5
    assert len(order) == 5 and np.all(np.diff(score) <= 0)
    assert topic_outliers(xy, topics, top=0)[0].size == 0
