"""The topic tree (core.hierarchy) and one topics update over it (core.topic_model), with no Dagster."""

import numpy as np
import polars as pl
import pytest

from dagster_embedmap.core.topics.cluster import ClusterSettings
from dagster_embedmap.core.topics.tree import build_tree, level_sizes, renumber_level, tree_from_parents
from dagster_embedmap.core.topics.labels import LabelSettings, hierarchy_keywords, stop_words
from dagster_embedmap.core.topics.model import tree_depth, update_topics

# Four regions of the map, each made of fine topics: sub-topics of a region sit close together.
REGIONS = {  # region centre -> fine topic offsets
    (0.0, 0.0): [(-1.0, 0.0), (1.0, 0.0), (0.0, 1.2)],
    (20.0, 0.0): [(-1.0, 0.0), (1.0, 0.0)],
    (0.0, 20.0): [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.2)],
    (20.0, 20.0): [(0.0, -1.0), (0.0, 1.0)],
}
WORDS = {  # per region: shared vocabulary, then one word per sub-topic
    0: ("football match team", ["goal striker", "referee whistle", "stadium crowd"]),
    1: ("garlic onions recipe", ["sauce tomato", "bread oven"]),
    2: ("telescope galaxy stars", ["planet orbit", "comet tail", "nebula dust"]),
    3: ("violin orchestra concert", ["symphony conductor", "opera singer"]),
}


def planted(n_per: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy, fine, region, texts = [], [], [], []
    t = 0
    for r, (centre, offsets) in enumerate(REGIONS.items()):
        shared, subs = WORDS[r]
        for s, off in enumerate(offsets):
            pts = np.asarray(centre) + np.asarray(off) + rng.normal(0, 0.2, (n_per, 2))
            xy.append(pts)
            fine += [t] * n_per
            region += [r] * n_per
            texts += [f"the {shared} with {subs[s]} and {subs[s]} again" for _ in range(n_per)]
            t += 1
    return np.vstack(xy), np.asarray(fine), np.asarray(region), texts


def test_level_sizes_shrink_towards_the_root():
    assert level_sizes(16, 2) == [4, 16]
    assert level_sizes(27, 3) == [4, 9, 27]  # the broadest level: 4 to 15 topics where the level below allows
    assert level_sizes(9, 2) == [4, 9]
    assert level_sizes(450, 2) == [15, 450]
    assert level_sizes(3, 2) == [2, 3]
    assert level_sizes(2, 2) == [2, 2]
    assert level_sizes(1, 2) == [1, 1]
    assert level_sizes(0, 2) == [0, 0]
    assert level_sizes(10, 1) == [10]
    with pytest.raises(ValueError):
        level_sizes(5, 0)


def test_broad_topics_are_the_planted_regions_and_each_sub_topic_has_one_parent():
    xy, fine, region, _ = planted()
    tree = build_tree(xy, fine, depth=2)
    assert tree.depth == 2 and np.array_equal(tree.fine, fine)
    broad = tree.levels[0]
    assert len(np.unique(broad)) == 4  # sqrt(10) rounds to 3; the cut where regions are most apart is 4
    # every planted region is one broad topic and no broad topic spans two regions
    for r in range(4):
        assert len(np.unique(broad[region == r])) == 1
    assert len({int(broad[region == r][0]) for r in range(4)}) == 4
    parent_of = tree.parents[0]
    assert sorted(parent_of) == sorted(np.unique(fine).tolist())
    for t, p in parent_of.items():
        assert set(np.unique(broad[fine == t])) == {p}
    # broad ids are numbered by size: regions with 3 sub-topics (90 points) come first
    sizes = [int((broad == b).sum()) for b in range(4)]
    assert sizes == sorted(sizes, reverse=True)


def test_three_levels_nest_and_noise_stays_noise():
    xy, fine, _, _ = planted()
    fine = fine.copy()
    fine[:5] = -1
    tree = build_tree(xy, fine, depth=3)
    assert tree.depth == 3
    assert all((lv[:5] == -1).all() and (lv[5:] >= 0).all() for lv in tree.levels)
    n = [len(np.unique(lv[lv >= 0])) for lv in tree.levels]
    assert n[0] < n[1] < n[2] == 10
    for level in (0, 1):  # a child's points all share its parent
        for child, parent in tree.parents[level].items():
            assert set(tree.levels[level][tree.levels[level + 1] == child]) == {parent}


def test_tree_from_parents_places_new_points_and_names_an_orphan():
    xy, fine, _, _ = planted()
    tree = build_tree(xy, fine, depth=2)
    again = tree_from_parents(fine, tree.parents)
    assert np.array_equal(again.levels[0], tree.levels[0])
    with pytest.raises(KeyError, match=r"\[99\]"):
        tree_from_parents(np.array([0, 99]), tree.parents)


def test_renumber_level_keeps_parents_consistent():
    xy, fine, _, _ = planted()
    tree = build_tree(xy, fine, depth=2)
    swapped = renumber_level(tree, 0, {0: 1, 1: 0})
    assert np.array_equal(swapped.levels[0] == 0, tree.levels[0] == 1)
    for child, parent in swapped.parents[0].items():
        assert set(swapped.levels[0][fine == child]) == {parent}


def test_keywords_of_every_level_read_as_topics_and_siblings_share_none():
    xy, fine, region, texts = planted()
    tree = build_tree(xy, fine, depth=2)
    named = hierarchy_keywords(texts, tree.levels, tree.parents, LabelSettings(top_n=6, min_df=2))
    stop = stop_words()
    broad_of_region = {r: int(tree.levels[0][region == r][0]) for r in range(4)}
    assert "football" in named[0][broad_of_region[0]].label
    assert "telescope" in " ".join(named[0][broad_of_region[2]].keywords)
    for level in named:
        for kw in level.values():
            assert all(w not in stop for term in kw.keywords for w in term.split(" "))
    # siblings: all broad topics; the sub-topics of one broad topic
    groups = [list(named[0])] + [kids for kids in tree.children(0).values()]
    for level, group in zip([0] + [1] * (len(groups) - 1), groups):
        seen: set[str] = set()
        for t in group:
            words = set(named[level][t].keywords)
            assert not words & seen
            seen |= words
    # a sub-topic is named for what sets it apart from its siblings, not for its parent's words
    sub = int(fine[region == 0][0])
    assert named[1][sub].label.split(", ")[0] in {"goal", "striker", "goal striker"}


def test_update_topics_first_run_then_new_points_keep_the_tree():
    xy, fine, region, texts = planted()
    calls = []

    def texts_fn():
        calls.append(1)
        return texts

    settings = ClusterSettings(min_cluster_size=15, levels=2)
    first = update_topics(xy, [np.full(len(xy), -1)], None, texts_fn, clustering=settings)
    assert first.reclustered and calls == [1]
    assert tree_depth(first.table) == 2 and first.changed.all()
    table = first.table
    assert set(table.columns) >= {"level", "topic_id", "parent_id", "size", "label", "keywords"}
    assert table.filter(pl.col("level") == 1)["parent_id"].null_count() == 0
    payload = first.payload(0)
    assert payload["topic_id"] == payload["topic_1_id"] and payload["topic_label"] == payload["topic_1_label"]

    # a few new points near region 2: no recluster, they take a fine topic and its parent
    new_xy = np.vstack([xy, [[0.0, 20.0], [0.5, 19.5]]])
    previous = [np.append(first.tree.levels[0], [-1, -1]), np.append(first.tree.fine, [-1, -1])]
    second = update_topics(new_xy, previous, table, texts_fn, clustering=settings)
    assert not second.reclustered and calls == [1]  # texts are not read without a recluster
    assert second.changed.sum() == 2 and second.changed[-2:].all()
    b = second.tree.levels[0][-1]
    assert b == second.tree.levels[0][np.flatnonzero(region == 2)[0]]
    assert second.payload(len(xy))["topic_0_label"] == first.labels[0][int(b)]


def test_update_topics_recluster_keeps_ids_and_names_at_every_level():
    xy, fine, _, texts = planted()
    settings = ClusterSettings(min_cluster_size=15, levels=2)
    first = update_topics(xy, [np.full(len(xy), -1)], None, lambda: texts, clustering=settings)
    # the same map, shifted a little: a recluster finds the same topics and keeps their ids and labels
    again = update_topics(xy + 0.01, [first.tree.levels[0], first.tree.fine], first.table, lambda: texts,
                          recluster=True, clustering=settings)
    assert again.reclustered
    for level in range(2):
        assert np.array_equal(again.tree.levels[level], first.tree.levels[level])
        assert again.labels[level] == first.labels[level]
    assert again.match is not None and again.match.births == []


def test_a_change_of_depth_reclusters():
    xy, _, _, texts = planted()
    flat = update_topics(xy, [np.full(len(xy), -1)], None, lambda: texts,
                         clustering=ClusterSettings(min_cluster_size=15, levels=1))
    assert tree_depth(flat.table) == 1 and set(flat.payload(0)) == {"topic_0_id", "topic_0_label", "topic_id", "topic_label"}
    deeper = update_topics(xy, [flat.tree.fine], flat.table, lambda: texts,
                           clustering=ClusterSettings(min_cluster_size=15, levels=2))
    assert deeper.reclustered and tree_depth(deeper.table) == 2


def test_the_size_cap_gives_way_to_two_halves_of_one_blob_not_to_a_join_across_a_gap():
    from dagster_embedmap.core.topics.merge import CAP_GAP, ward_merges

    # blob A in two halves (30 + 10 points, close), blob B far away (20 points): A is 2/3 of the points
    centroids = np.array([[0.0, 0.0], [0.3, 0.0], [10.0, 0.0]])
    weights = np.array([30.0, 10.0, 20.0])
    hard = ward_merges(centroids, weights, max_share=0.5, stop_at=2)
    soft = ward_merges(centroids, weights, max_share=0.5, stop_at=2, cap_gap=CAP_GAP)
    assert {hard[0][0], hard[0][1]} == {1, 2}  # the hard cap joins the small half to the far blob
    assert {soft[0][0], soft[0][1]} == {0, 1}  # the soft one keeps blob A whole
    # where the halves are not much closer than the other join, the cap holds
    near = np.array([[0.0, 0.0], [3.0, 0.0], [5.0, 0.0]])
    held = ward_merges(near, weights, max_share=0.5, stop_at=2, cap_gap=CAP_GAP)
    assert {held[0][0], held[0][1]} == {1, 2}
