"""A small map of given vectors (no model) in a real embedded Qdrant, placed on the map, with a labels
file: what the classifier tests train on. Three kinds of support ticket, planted as vector blobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

NAME = "tickets"
DIM = 16
KINDS = ["billing", "login", "shipping"]
CENTRES = np.random.default_rng(0).normal(size=(3, DIM)) * 4


def partition_frame(part: int, n: int = 45) -> pl.DataFrame:
    rng = np.random.default_rng(part)
    vectors = CENTRES[np.arange(n) % 3] + rng.normal(size=(n, DIM))
    return pl.DataFrame({"id": [f"p{part}-{i}" for i in range(n)], "text": [f"{KINDS[i % 3]} ticket {i}" for i in range(n)],
                         "emb": vectors.astype(np.float32).tolist()})


def add_partition(store, layout, part: str, frame: pl.DataFrame | None = None) -> None:
    """Documents, embeddings (the frame's own vectors) and points of partition ``part`` ("p<k>")."""
    from dagster_embedmap.core.records.documents import RecordSchema
    from dagster_embedmap.core.topics.cluster import ClusterSettings
    from dagster_embedmap.steps import NullLog, embed_partition, write_documents, write_points

    def no_model():
        raise AssertionError("given vectors need no model")

    frame = partition_frame(int(part[1:])) if frame is None else frame
    write_documents(layout, part, frame, RecordSchema(vector_column="emb"), NullLog())
    embed_partition(layout, part, no_model, NullLog(), vector_column="emb")
    write_points(store, layout, NAME, part, levels=ClusterSettings().levels, log=NullLog())


def build(root: Path) -> dict:
    """Partitions p1 and p2 placed on a fitted layout, and ``labels.csv``: 4 labelled records per kind of p1."""
    from dagster_embedmap.core.layout.project import ProjectionSettings
    from dagster_embedmap.core.paths import MapLayout
    from dagster_embedmap.core.store import StoreLocation, open_store
    from dagster_embedmap.steps import NullLog, fit_layout, place_partition

    layout = MapLayout(str(root), NAME)
    location = StoreLocation(path=str(root / "qdrant"))
    store = lambda read_only=False: open_store(location, NAME, read_only=read_only)  # noqa: E731
    for part in ("p1", "p2"):
        add_partition(store, layout, part)
    fit_layout(store, layout, NAME, ProjectionSettings(), NullLog())
    for part in ("p1", "p2"):
        place_partition(store, layout, part)
    labels = root / "labels.csv"
    pl.DataFrame({"id": [f"p1-{i}" for i in range(12)], "label": [KINDS[i % 3] for i in range(12)]}).write_csv(labels)
    return {"layout": layout, "store": store, "location": location, "labels": labels, "tmp": root}


def render(mapped: dict, classifier: str = "kind") -> Path:
    """Train ``classifier`` on the labels, tag both partitions, find topics and draw the map; the HTML's path."""
    from dagster_embedmap.core.topics.cluster import ClusterSettings
    from dagster_embedmap.core.topics.labels import LabelSettings
    from dagster_embedmap.steps import NullLog, refresh_topics, render_map
    from dagster_embedmap.steps.classify import classify_partition, read_examples, train_classifier

    layout, store = mapped["layout"], mapped["store"]
    train_classifier(store, layout, NAME, classifier, examples=read_examples(mapped["labels"]), log=NullLog())
    for part in ("p1", "p2"):
        classify_partition(store, layout, classifier, part, train_step="t")
    refresh_topics(store, layout, NAME, {"p1", "p2"}, clustering=ClusterSettings(), labels=LabelSettings(),
                   recluster=False, log=NullLog())
    render_map(lambda: store(read_only=True), layout, NAME, ["p1", "p2"], log=NullLog(), collection_step="c",
               topics_step="t")
    return layout.html
