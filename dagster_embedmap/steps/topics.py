"""The map's topics: clusters of the 2-D map, the tree over them and their names, stable between runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import polars as pl

from ..core.topics.cluster import ClusterSettings
from ..core.topics.labels import LabelSettings
from ..core.paths import Log, MapLayout, atomic_path, read_json_state, read_or_set_aside, write_json
from ..core.store.payload import full_texts, level_field, points_frame, topic_levels
from ..core.store import point_id
from ..core.topics.model import TopicsUpdate, update_topics
from .common import StoreOpener, pending_partitions
from .layout import load_layout_model

__all__ = ["TopicsResult", "refresh_topics"]


@dataclass
class TopicsResult:
    update: TopicsUpdate
    table: pl.DataFrame
    points: int
    reassigned: int
    """Points given a topic again because their place was computed anew (their vector changed)."""
    seconds: float
    state: dict
    pruned: dict[str, int] = field(default_factory=dict)
    """Partitions no longer in the map whose points were deleted, with how many."""
    pending: set[str] = field(default_factory=set)

    @property
    def share_assigned(self) -> float:
        fine = self.update.tree.fine
        return float((fine >= 0).mean()) if len(fine) else 0.0


def _stale_topics(points: pl.DataFrame) -> np.ndarray:
    """Points whose topics were assigned for another place than the one they have (``topic_hash`` !=
    ``xy_hash``): their vector changed, they were placed again, so their topic is decided again."""
    def column(name: str) -> pl.Expr:
        return pl.col(name) if name in points.columns else pl.lit(None, dtype=pl.String)

    return points.select(~column("topic_hash").eq_missing(column("xy_hash"))).to_series().to_numpy().astype(bool) \
        if points.height else np.zeros(0, dtype=bool)


def refresh_topics(open_store: StoreOpener, layout: MapLayout, map_name: str, partitions: set[str], *,
                   clustering: ClusterSettings, labels: LabelSettings, recluster: bool, log: Log,
                   collection_step: str = "collection",
                   embed: Callable[[list[str]], np.ndarray] | None = None) -> TopicsResult:
    """Bring every point's topics up to date and write ``topics.parquet`` and each point's topic fields.

    Points of partitions no longer in ``partitions`` are deleted first (with their files). Without a
    recluster, points keep their topics and points without one (new, or placed again because their
    vector changed) join their neighbours' topic; after a new layout version, when asked, or when the
    stored topic state cannot be read, HDBSCAN runs again (on the layout's cluster space) and topics are
    matched to the previous ids. ``embed`` (the map's own model) lets labels be chosen by meaning.
    """
    with open_store() as store:
        points = points_frame(store)  # one pass over the collection serves the pruning and the topics
        pruned = {p: store.delete_partition(p) for p in set(points["partition"].to_list()) - set(partitions)}
    points = points.filter(~pl.col("partition").is_in(list(pruned)))
    pending = pending_partitions(layout, map_name, collection_step, log)
    points = points.filter(~pl.col("partition").is_in(list(pending)))
    for partition in pruned:
        layout.remove_partition_files(partition)
    if pruned:
        log.info(f"removed the points of partitions no longer present: {pruned}")
    points = points.filter(pl.col("x").is_not_null())
    model = load_layout_model(layout, log, then="the topics are updated as if the layout were unchanged")
    before = read_json_state(layout.topics_state, log=log, then="the topics are clustered again",
                             holds="which layout version the topics were clustered on")
    relayout = model is not None and before.get("layout_version") != model.version
    old_table = read_or_set_aside(layout.topics, pl.read_parquet, log=log,
                                  holds="the topic table (ids, parents, sizes, labels and keywords of every level)",
                                  then="the topics are clustered and named again")
    stale = _stale_topics(points)
    depth = topic_levels(points.columns)
    previous = [np.where(stale, -1, points[level_field(level, "id")].fill_null(-1).to_numpy()) for level in range(depth)]
    if not previous:
        previous = [np.where(stale, -1, points["topic_id"].fill_null(-1).to_numpy())]
    started = time.perf_counter()
    def space():  # only a recluster needs it (a point id per point: seconds at a million points)
        if model is None:
            return None
        hashes = points["vector_hash"].to_list() if "vector_hash" in points.columns else [None] * points.height
        return model.cluster_space([point_id(map_name, rid) for rid in points["id"].to_list()], hashes)

    lent: list[np.ndarray] = []  # which records' texts were borrowed from their neighbours (image records)

    def texts() -> list[str]:
        full, borrowed = label_texts(points, layout, open_store, map_name)
        lent.append(borrowed)
        return full

    update = update_topics(
        points.select("x", "y").to_numpy(), previous, old_table, texts,
        recluster=recluster or relayout,  # without a readable table, update_topics reclusters by itself
        clustering=clustering, labels=labels, space=space, embed=embed,
    )
    seconds = time.perf_counter() - started
    changed = update.changed | stale
    xy_hashes = points["xy_hash"].to_list() if "xy_hash" in points.columns else [None] * points.height
    # a recluster renames topics too, so every point is written; otherwise only the newly assigned ones
    with open_store() as store:
        store.set_payloads({
            point_id(map_name, rid): {**update.payload(i), "topic_hash": xy_hashes[i]}
            for i, rid in enumerate(points["id"].to_list()) if changed[i]
        })
    table = mark_borrowed(update.table, update.tree.levels, lent[0] if lent else None, old_table)
    with atomic_path(layout.topics) as tmp:
        table.write_parquet(tmp)
    fine = update.tree.fine
    state = {
        "layout_version": model.version if model else None,
        "reclustered": update.reclustered,
        # what HDBSCAN itself clustered at the last recluster (new points since then are assigned)
        "clustered_share": (1.0 - float(update.noise_share or 0.0) if len(fine) else 0.0) if update.reclustered
        else before.get("clustered_share"),
        # how many points the recluster looked at (the layout's sample, in its cluster space)
        "clustered_points": update.clustered_points if update.reclustered
        else before.get("clustered_points"),
    }
    write_json(layout.topics_state, state)
    return TopicsResult(update=update, table=table, points=points.height, reassigned=int(stale.sum()),
                        seconds=seconds, state=state, pruned=pruned, pending=pending)


LABELLED_FROM = "labelled_from"
"""The topic table's column on maps with image records: ``"texts"``, or ``"nearest texts"`` for a topic
most of whose records are images without a caption, named from the texts of their nearest neighbours."""


def label_texts(points: pl.DataFrame, layout: MapLayout, open_store: StoreOpener, map_name: str,
                neighbours: int = 16, borrow: int = 3) -> tuple[list[str], np.ndarray]:
    """Each point's text for naming topics, and which were borrowed: a record without text (an image
    without a caption) lends the texts of its ``borrow`` nearest neighbours that have one (of the
    ``neighbours`` nearest, by Qdrant), so a topic of images is named by the articles around it."""
    texts = full_texts(points, layout.documents)
    borrowed = np.zeros(len(texts), dtype=bool)
    empty = [i for i, t in enumerate(texts) if not (t or "").strip()]
    if not empty or len(empty) == len(texts):
        return texts, borrowed
    pids = [point_id(map_name, rid) for rid in points["id"].to_list()]
    row_of = {pid: i for i, pid in enumerate(pids)}
    with open_store() as store:
        found = store.vectors_of([pids[i] for i in empty])
        asked = [i for i in empty if pids[i] in found]
        near = store.neighbours(np.stack([found[pids[i]] for i in asked]), neighbours) if asked else []
    for i, hits in zip(asked, near):
        lent = [texts[row_of[pid]] for pid, _ in hits if pid in row_of and (texts[row_of[pid]] or "").strip()]
        if lent:
            texts[i] = "\n".join(t[:500] for t in lent[:borrow])
            borrowed[i] = True
    return texts, borrowed


def mark_borrowed(table: pl.DataFrame, levels, borrowed: np.ndarray | None, old_table: pl.DataFrame | None,
                  ) -> pl.DataFrame:
    """``table`` with :data:`LABELLED_FROM` where a map has records without text: per topic, "nearest
    texts" when most of its records' texts were borrowed (:func:`label_texts`), else "texts". Without
    new names (``borrowed`` None) the old table's marks are kept."""
    if borrowed is None:
        if old_table is None or LABELLED_FROM not in old_table.columns:
            return table
        return table.join(old_table.select("level", "topic_id", LABELLED_FROM), on=["level", "topic_id"], how="left")
    if not borrowed.any():
        return table
    marks = []
    for level, ids in enumerate(levels):
        share = pl.DataFrame({"topic_id": np.asarray(ids, dtype=np.int64), "b": borrowed}).group_by("topic_id").agg(
            pl.col("b").mean())
        marks.append(share.with_columns(pl.lit(level, dtype=pl.Int64).alias("level"), pl.when(pl.col("b") > 0.5)
                                        .then(pl.lit("nearest texts")).otherwise(pl.lit("texts")).alias(LABELLED_FROM)))
    return table.join(pl.concat(marks).select("level", "topic_id", LABELLED_FROM), on=["level", "topic_id"], how="left")
