"""Every step alone, as plain functions without a Dagster run: documents, embeddings (given vectors, so no
model), points, layout fit, placement, topics, the rendered map and the duplicates, on a small map in a real
embedded Qdrant."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dagster_embedmap.core.topics.cluster import ClusterSettings
from dagster_embedmap.core.records.documents import RecordSchema
from dagster_embedmap.core.topics.labels import LabelSettings
from dagster_embedmap.core.paths import MapLayout
from dagster_embedmap.core.layout.project import ProjectionSettings
from dagster_embedmap.core.store import StoreLocation, open_store
from dagster_embedmap.steps import (
    NullLog, audit_points, embed_partition, find_duplicates, fit_layout, place_partition, refresh_topics,
    render_map, write_documents, write_points,
)

NAME = "steps"
WORDS = ["galaxy orbit telescope planet", "tomato garlic sauce oven", "striker goal penalty stadium"]


def _partition(part: int, n: int = 40, dim: int = 16) -> pl.DataFrame:
    rng = np.random.default_rng(part)
    centres = np.random.default_rng(0).normal(size=(3, dim)) * 5
    vectors = centres[np.arange(n) % 3] + rng.normal(size=(n, dim))
    vectors[-1] = vectors[-4] * 1.0001  # a near-duplicate pair (records 36 and 39, of one group)
    return pl.DataFrame({
        "id": [f"p{part}-{i}" for i in range(n)],
        "text": [f"{WORDS[i % 3]} record {i}" for i in range(n)],
        "source": ["a" if i % 2 else "b" for i in range(n)],
        "emb": vectors.astype(np.float32).tolist(),
    })


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    layout = MapLayout(str(home), NAME)
    location = StoreLocation(path=str(home / "qdrant"))
    store = lambda read_only=False: open_store(location, NAME, read_only=read_only)  # noqa: E731
    schema = RecordSchema(vector_column="emb")
    log = NullLog()
    out = {"layout": layout, "store": store, "location": location}
    for part in ("p1", "p2"):
        docs = write_documents(layout, part, _partition(int(part[1])), schema, log)
        assert docs.path.exists() and docs.prepared.frame.height == 40
        emb = embed_partition(layout, part, lambda: pytest.fail("given vectors need no model"), log,
                              vector_column="emb")
        assert emb.from_column and emb.dimension == 16 and emb.check().passed
        points = write_points(store, layout, NAME, part, levels=ClusterSettings().levels, log=log)
        assert points.points == 40 and points.check().passed
    out["fit"] = fit_layout(store, layout, NAME, ProjectionSettings(), log)
    out["placed"] = [place_partition(store, layout, part) for part in ("p1", "p2")]
    out["topics"] = refresh_topics(store, layout, NAME, {"p1", "p2"}, clustering=ClusterSettings(),
                                   labels=LabelSettings(), recluster=False, log=log)
    out["map"] = render_map(lambda: store(read_only=True), layout, NAME, ["p1", "p2"], log=log,
                            collection_step="steps/collection", topics_step="steps/topics")
    out["duplicates"] = find_duplicates(lambda: store(read_only=True), layout, NAME, threshold=0.999, log=log,
                                        collection_step="steps/collection")
    return out


def test_the_layout_is_fitted_on_every_point_and_each_partition_placed(built):
    assert built["fit"].points == 80 and built["fit"].model.version == 1
    for placement in built["placed"]:
        assert placement.placed == 40 and placement.check().passed
        assert placement.frame["x"].is_finite().all() and placement.frame["y"].is_finite().all()


def test_topics_find_the_three_planted_groups(built):
    result = built["topics"]
    assert result.update.reclustered and built["layout"].topics.exists()
    fine = result.table.filter((pl.col("level") == result.table["level"].max()) & (pl.col("topic_id") >= 0))
    assert fine.height >= 3
    with open_store(built["location"], NAME, read_only=True) as store:
        _, _, payloads = store.read_vectors()
    by_group: dict[str, set[int]] = {}
    for p in payloads:
        by_group.setdefault(p["text"].split(" record")[0], set()).add(p["topic_id"])
    # no topic mixes two planted groups
    topics = [t for ts in by_group.values() for t in ts]
    assert len(topics) == len(set(topics)), by_group


def test_the_map_is_drawn_and_every_check_passes(built):
    drawn = built["map"]
    assert drawn.points == 80 and drawn.documents == 80 and drawn.unmapped == 0 and not drawn.pending
    assert {c.name: c.passed for c in drawn.checks} == {
        "collection_matches_documents": True, "every_point_mapped": True, "every_point_current": True}
    assert built["layout"].html.stat().st_size > 10_000 and built["layout"].png.stat().st_size > 1_000


def test_a_map_over_the_semantic_limit_searches_by_words_without_reading_a_vector(built, monkeypatch):
    from dagster_embedmap.steps import render as render_step

    monkeypatch.setattr(render_step, "MAX_POINTS", 79)  # the map has 80 points
    monkeypatch.setattr(render_step, "_vectors_by_record", lambda store: pytest.fail("read the vectors"))
    monkeypatch.setattr(render_step, "static_table", lambda *a: pytest.fail("made the static table"))
    said = []

    class Log(NullLog):
        def info(self, msg):
            said.append(msg)

    layout, store = built["layout"], built["store"]
    drawn = render_map(lambda: store(read_only=True), layout, NAME, ["p1", "p2"], log=Log(),
                       collection_step="steps/collection", topics_step="steps/topics", semantic_model="any-model")
    assert drawn.semantic is False and drawn.points == 80
    assert said == ["the map has 80 points, more than 79: its page searches by words only"]
    assert 'id="embedmap-semantic">null<' in layout.html.read_text("utf-8")


def test_duplicates_find_the_planted_pairs_and_write_their_files(built):
    pairs = built["duplicates"].pairs
    found = {frozenset(r) for r in pairs.select("id_a", "id_b").iter_rows()}
    assert {frozenset({"p1-36", "p1-39"}), frozenset({"p2-36", "p2-39"})} <= found
    assert built["layout"].duplicates.exists() and built["layout"].outliers.exists()
    assert built["duplicates"].outliers.height > 0


def test_the_audit_sees_an_edited_record(built):
    layout = built["layout"]
    with open_store(built["location"], NAME, read_only=True) as store:
        from dagster_embedmap.core.store.payload import points_frame

        points = points_frame(store)
    assert audit_points(points, layout, {"p1", "p2"}).check().passed
    edited = _partition(1).with_columns(pl.when(pl.col("id") == "p1-0").then(pl.lit("an edited text"))
                                        .otherwise(pl.col("text")).alias("text"))
    write_documents(layout, "p1", edited, RecordSchema(vector_column="emb"), NullLog())
    audit = audit_points(points, layout, {"p1", "p2"})
    assert audit.text_changed == ["p1-0"] and not audit.check().passed


def test_the_layout_model_is_read_once_per_process_and_again_when_its_file_is_replaced(built, tmp_path):
    from dagster_embedmap.core.paths import EmbedMapFileError
    from dagster_embedmap.steps import load_layout_model

    layout = built["layout"]
    good = layout.projection_model.read_bytes()
    first = load_layout_model(layout)
    assert load_layout_model(layout) is first  # the steps of one in-process run share one read
    copy = tmp_path / "model.pkl"
    copy.write_bytes(good)
    copy.replace(layout.projection_model)  # how a fit writes it: a new file in its place
    again = load_layout_model(layout)
    assert again is not first and again.version == first.version and again.fitted == first.fitted
    layout.projection_model.write_bytes(b"not a pickle")  # changed in place: its size and time differ
    try:
        with pytest.raises(EmbedMapFileError, match="layout model"):
            load_layout_model(layout)
    finally:
        copy.write_bytes(good)
        copy.replace(layout.projection_model)
    assert load_layout_model(layout).fitted == first.fitted
