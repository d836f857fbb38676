"""One update of a map's topics: clusters, the topic tree over them and keyword labels for every level.

:func:`update_topics` is what the ``topics`` step does, as a plain function over numpy and polars:

- without a recluster, points keep their topics, new points join their neighbours' finest topic, and
  the tree and the labels stay as they were (a new point's broad topic is its fine topic's parent);
- with one (asked for, after a new layout, when the tree's depth changed or on the first run), HDBSCAN
  runs again, the tree is rebuilt, and every level's new topics are matched to the previous ids by
  shared points, so a topic that still exists keeps its id and its name at every level.

The topic table it returns has one row per topic and level: ``level`` (0 broadest), ``topic_id``,
``parent_id`` (null at level 0), ``size``, ``x``/``y`` (median of its points), ``label`` and ``keywords``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from .cluster import ClusterSettings, ClusterSpace, assign_topics
from .tree import TopicTree, build_tree, renumber_level, tree_from_parents
from .labels import LabelSettings, hierarchy_keywords
from ..store.payload import level_field
from .match import TopicMatch, match_topics

__all__ = ["TopicsUpdate", "update_topics", "TOPIC_TABLE_SCHEMA", "tree_depth"]

TOPIC_TABLE_SCHEMA = {
    "level": pl.Int64,
    "topic_id": pl.Int64,
    "parent_id": pl.Int64,
    "size": pl.Int64,
    "x": pl.Float64,
    "y": pl.Float64,
    "label": pl.String,
    "keywords": pl.List(pl.String),
}


@dataclass
class TopicsUpdate:
    tree: TopicTree
    labels: list[dict[int, str]]
    """Per level: topic id -> label."""
    keywords: list[dict[int, list[str]]]
    """Per level: topic id -> keywords, best first."""
    changed: np.ndarray
    """Points whose topics (at any level) or labels are new: only these need writing back."""
    reclustered: bool
    clustered: np.ndarray | None = None
    """When reclustered: the points HDBSCAN put in a dense core itself."""
    noise_share: float | None = None
    """When reclustered: the share of the clustered points HDBSCAN left as noise (each then got a topic)."""
    clustered_points: int | None = None
    """When reclustered: how many points were clustered (the layout's sample; all points without one)."""
    matches: list[TopicMatch | None] = field(default_factory=list)
    """When reclustered over earlier topics: per level, how new topics map to the old ids."""
    table: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TOPIC_TABLE_SCHEMA))

    @property
    def match(self) -> TopicMatch | None:
        """The finest level's match (births, deaths, merges and splits of the clusters)."""
        return self.matches[-1] if self.matches else None

    def payload(self, i: int) -> dict[str, Any]:
        """Point ``i``'s topic fields: ``topic_id``/``topic_label`` (finest) and every level's id and label."""
        out: dict[str, Any] = {}
        for level, ids in enumerate(self.tree.levels):
            t = int(ids[i])
            out[level_field(level, "id")] = t
            out[level_field(level, "label")] = self.labels[level].get(t, _fallback(t))
        out["topic_id"] = out[level_field(self.tree.depth - 1, "id")]
        out["topic_label"] = out[level_field(self.tree.depth - 1, "label")]
        return out


def _fallback(t: int) -> str:
    return "no topic" if t < 0 else f"topic {t}"


def tree_depth(table: pl.DataFrame | None) -> int | None:
    """The depth of the tree a stored topic table describes (None: no table, or one without levels)."""
    if table is None or "level" not in table.columns or table.height == 0:
        return None
    return int(table["level"].max()) + 1


def _stored(table: pl.DataFrame, depth: int):
    labels = [{} for _ in range(depth)]
    keywords = [{} for _ in range(depth)]
    parents = [{} for _ in range(depth - 1)]
    for row in table.iter_rows(named=True):
        level, t = int(row["level"]), int(row["topic_id"])
        labels[level][t] = row["label"]
        keywords[level][t] = list(row["keywords"] or [])
        if level > 0 and row["parent_id"] is not None:
            parents[level - 1][t] = int(row["parent_id"])
    return labels, keywords, parents


def update_topics(
    xy: np.ndarray,
    previous: Sequence[np.ndarray],
    previous_table: pl.DataFrame | None,
    texts: Callable[[], Sequence[str]],
    *,
    recluster: bool = False,
    clustering: ClusterSettings = ClusterSettings(),
    labels: LabelSettings = LabelSettings(),
    space: ClusterSpace | Callable[[], ClusterSpace | None] | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> TopicsUpdate:
    """The map's topics after this update.

    ``previous`` holds each point's earlier topic id per level, broadest first (the last is the finest;
    -1: none yet), for as many levels as the points carry. ``previous_table`` is the last topic table
    (None at the first run). ``texts`` gives each point's text; it is called only to name new topics.
    ``space`` is where a recluster looks (the layout's sampled points in its cluster space, with their
    vectors; the 2-D map without), or a function giving it, called only when the topics are reclustered. ``embed`` turns candidate keywords into unit vectors so labels are
    chosen by closeness to their topic's mean vector (c-TF-IDF alone without it or without vectors).
    """
    xy = np.asarray(xy, dtype=np.float64)
    depth = clustering.levels
    if depth < 1:
        raise ValueError(f"ClusterSettings.levels must be at least 1, got {depth}")
    n = len(xy)
    previous = [np.asarray(p, dtype=np.int64) for p in previous] or [np.full(n, -1, dtype=np.int64)]
    prev_fine = previous[-1]
    same_shape = tree_depth(previous_table) == depth and len(previous) == depth
    space_of = space
    reclusters = recluster or not same_shape or not (prev_fine >= 0).any()
    if callable(space):
        space = space() if reclusters else None
    result = assign_topics(xy, prev_fine, recluster or not same_shape, clustering, space)

    if not result.reclustered:
        stored_labels, stored_keywords, parents = _stored(previous_table, depth)
        try:
            tree = tree_from_parents(result.topic_ids, parents)
        except KeyError:  # a topic without a parent: only a recluster can place it
            return update_topics(xy, previous, previous_table, texts, recluster=True, clustering=clustering,
                                 labels=labels, space=space_of, embed=embed)
        changed = np.zeros(n, dtype=bool)
        for level in range(depth):
            changed |= tree.levels[level] != previous[level]
        update = TopicsUpdate(tree, stored_labels, stored_keywords, changed, False)
        update.table = _table(xy, update)
        return update

    tree = build_tree(xy, result.topic_ids, depth, space)
    matches: list[TopicMatch | None] = [None] * depth
    matches[-1] = result.match
    for level in range(depth - 1):
        before = previous[level] if same_shape else np.full(n, -1, dtype=np.int64)
        if (before >= 0).any():
            m = match_topics(before, tree.levels[level])
            tree = renumber_level(tree, level, m.mapping)
            matches[level] = m
    named = hierarchy_keywords(texts(), tree.levels, tree.parents, labels, semantic=_semantic(space, embed))
    label_of = [{t: kw.label for t, kw in level.items()} for level in named]
    keywords_of = [{t: list(kw.keywords) for t, kw in level.items()} for level in named]
    if previous_table is not None and same_shape:
        old_labels, old_keywords, _ = _stored(previous_table, depth)
        for level, m in enumerate(matches):
            if m is None:
                continue
            for t in m.kept:  # a topic that still exists keeps its name
                if t in old_labels[level]:
                    label_of[level][t] = old_labels[level][t]
                    keywords_of[level][t] = old_keywords[level].get(t, [])
    update = TopicsUpdate(tree, label_of, keywords_of, np.ones(n, dtype=bool), True, result.clustered,
                          result.noise_share, len(space.rows) if space is not None and len(space.rows) >= 3 else n,
                          matches)
    update.table = _table(xy, update)
    return update


def _semantic(space: ClusterSpace | None, embed: Callable[[list[str]], np.ndarray] | None):
    """What the labeller needs to rank keywords by meaning: the sampled rows, their vectors and ``embed``."""
    if embed is None or space is None or space.vectors is None:
        return None
    from .labels import Semantic

    return Semantic(rows=space.rows, vectors=space.vectors, embed=embed)


def _table(xy: np.ndarray, update: TopicsUpdate) -> pl.DataFrame:
    frames = []
    tree = update.tree
    for level, ids in enumerate(tree.levels):
        parent_of = tree.parents[level - 1] if level > 0 else {}
        frame = (
            pl.DataFrame({"topic_id": ids, "x": xy[:, 0] if len(xy) else [], "y": xy[:, 1] if len(xy) else []},
                         schema={"topic_id": pl.Int64, "x": pl.Float64, "y": pl.Float64})
            .group_by("topic_id")
            .agg(pl.len().cast(pl.Int64).alias("size"), pl.col("x").median(), pl.col("y").median())
        )
        topic_ids = frame["topic_id"].to_list()
        frame = frame.with_columns(
            pl.lit(level, dtype=pl.Int64).alias("level"),
            pl.Series("parent_id", [parent_of.get(t) if t >= 0 and level > 0 else None for t in topic_ids],
                      dtype=pl.Int64),
            pl.Series("label", [update.labels[level].get(t, _fallback(t)) for t in topic_ids], dtype=pl.String),
            pl.Series("keywords", [update.keywords[level].get(t, []) for t in topic_ids], dtype=pl.List(pl.String)),
        )
        frames.append(frame.select(list(TOPIC_TABLE_SCHEMA)).sort(["size", "topic_id"], descending=[True, False]))
    return pl.concat(frames) if frames else pl.DataFrame(schema=TOPIC_TABLE_SCHEMA)
