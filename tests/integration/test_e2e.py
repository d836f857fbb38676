"""The whole graph, materialized for real: bundled model, embedded Qdrant, UMAP, HDBSCAN, rendering."""

import re

import dagster as dg
import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from support.automation import drive_automation

from dagster_embedmap import (
    EmbedderResource,
    FileSource,
    MapKeys,
    QdrantResource,
    build_embedmap_defs,
    embedmap_resources,
    materialize_map,
)
from dagster_embedmap.core.store.payload import points_frame
from dagster_embedmap.core.store import StoreLocation, open_store

pytestmark = pytest.mark.e2e


def _defs_for_asset_source(frame: pl.DataFrame, home, name="wiki"):
    batches = dg.StaticPartitionsDefinition(sorted(frame["batch"].unique().to_list()))

    @dg.asset(partitions_def=batches, name=f"{name}_articles")
    def articles(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return frame.filter(pl.col("batch") == context.partition_key).drop("batch")

    return dg.Definitions.merge(
        dg.Definitions(assets=[articles]),
        build_embedmap_defs(name, articles, metadata_columns=["category", "description"], home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )


def _file_map(name: str, pattern, home):
    """A map over files matching ``pattern``, with the default resources in ``home``."""
    defs = dg.Definitions.merge(
        build_embedmap_defs(name, FileSource(str(pattern)), home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    return defs, MapKeys.for_map(name)


def _materialize_partition(defs, keys, partition, instance, **kwargs):
    """One partition's documents, embeddings and collection, as the partitions job runs them."""
    return dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys.ingest),
                          partition_key=partition, instance=instance, resources=defs.resources, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory, wiki_small):
    home = tmp_path_factory.mktemp("home")
    defs = _defs_for_asset_source(wiki_small, home)
    keys = MapKeys.for_map("wiki")
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as instance:
        result = materialize_map(defs, keys, instance=instance, include_upstream=True)
        yield {"home": home, "defs": defs, "keys": keys, "result": result, "instance": instance}


def _store(home):
    return open_store(StoreLocation(path=str(home / "qdrant")), "wiki")


def test_whole_graph_materializes_with_every_check_passing(built, wiki_small):
    result = built["result"]
    assert result.success
    assert result.partitions == ["batch-000", "batch-001"]
    checks = result.check_results()
    assert set(checks) == {
        "wiki/embeddings:embeddings_sane",
        "wiki/collection:partition_points_match_documents",
        "wiki/projection:every_point_projected",
        "wiki/map:collection_matches_documents",
        "wiki/map:every_point_mapped",
        "wiki/map:every_point_current",
    }
    assert all(checks.values()), checks
    with _store(built["home"]) as store:
        assert store.count() == wiki_small.height == 120
        assert store.dimension() == 384
        points = points_frame(store)
    assert points["x"].null_count() == 0 and points["topic_id"].null_count() == 0
    assert (points["topic_id"] >= 0).all()
    assert set(points["id"]) == set(wiki_small["id"])
    # metadata columns travel to the payload
    by_id = dict(zip(points["id"], points["category"]))
    expected = dict(zip(wiki_small["id"], wiki_small["category"]))
    assert by_id == expected


def test_materialization_metadata_follows_dagster_conventions(built):
    result, keys, home = built["result"], built["keys"], built["home"]
    docs = result.metadata(keys.documents)
    assert docs["dagster/row_count"] == 60
    assert docs["dagster/uri"].startswith("file://") and docs["dagster/uri"].endswith(".parquet")
    assert [c.name for c in docs["dagster/column_schema"].columns] == ["id", "text", "content_hash", "category", "description"]
    emb = result.metadata(keys.embeddings)
    assert emb["dimension"] == 384 and emb["device"] == "cpu" and emb["precision"] == "fp32"
    assert emb["docs_per_s"] > 0 and "all-MiniLM-L6-v2" in emb["model"]
    stored = pl.read_parquet(emb["path"])
    assert stored.columns == ["id", "content_hash", "model", "vector", "truncated"]
    assert stored["vector"].dtype == pl.Array(pl.Float32, 384)
    # texts over the model's 256-token window are flagged per record and counted
    assert emb["truncated_texts"] == stored["truncated"].sum() and stored["truncated"].null_count() == 0
    topics = result.metadata(keys.topics)
    assert topics["share_assigned"] == 1.0 and topics["topics"] >= 2
    the_map = result.metadata(keys.map)
    assert the_map["preview"].startswith("![wiki map](data:image/png;base64,")
    broad = pl.read_parquet(home / "wiki" / "topics.parquet").filter(pl.col("level") == 0)
    assert the_map["topic_tree"].startswith("- **")  # broad topics in bold, sub-topics nested under them
    assert the_map["topic_tree"].count("\n  - ") >= 2 and the_map["topic_tree"].count("\n- ") == broad.height - 1
    assert "topic_tree" in topics and topics["topics_per_level"][0] < topics["topics_per_level"][1]
    html = (home / "wiki" / "map.html").read_text(encoding="utf-8")
    assert the_map["dagster/uri"] == (home / "wiki" / "map.html").resolve().as_uri()
    assert the_map["open_map"] == the_map["dagster/uri"]  # a link the UI shows as clickable
    assert the_map["labels_at_overview"] >= broad.height + 2  # region titles and topic labels, as in map.html
    assert "embedmap-data" in html and not re.search(r"(src|href)=[\"']https?://", html)


def test_topic_labels_read_as_topics(built):
    topics = pl.read_parquet(built["home"] / "wiki" / "topics.parquet")
    assert sorted(topics["level"].unique()) == [0, 1]
    for level in (0, 1):
        assert topics.filter(pl.col("level") == level)["size"].sum() == 120
    for keywords in topics["keywords"].to_list():
        assert keywords, "every topic has keywords"
        words = [w for term in keywords for w in term.split(" ")]
        assert not set(words) & ENGLISH_STOP_WORDS
        assert all(w.isalpha() for w in words)
    with _store(built["home"]) as store:
        payloads = [r.payload for r in store.scroll()]
    fine = topics.filter(pl.col("level") == 1)
    assert {p["topic_id"]: p["topic_label"] for p in payloads} == dict(zip(fine["topic_id"], fine["label"]))
    broad = topics.filter(pl.col("level") == 0)
    assert {p["topic_0_id"]: p["topic_0_label"] for p in payloads} == dict(zip(broad["topic_id"], broad["label"]))
    assert all(p["topic_1_id"] == p["topic_id"] for p in payloads)


def test_every_sub_topic_has_exactly_one_parent_and_siblings_share_no_keyword(built):
    topics = pl.read_parquet(built["home"] / "wiki" / "topics.parquet")
    broad = topics.filter(pl.col("level") == 0)
    fine = topics.filter(pl.col("level") == 1)
    assert broad["parent_id"].null_count() == broad.height
    assert fine["parent_id"].null_count() == 0 and set(fine["parent_id"]) == set(broad["topic_id"])
    assert fine["topic_id"].is_unique().all()  # one row, so one parent, per sub-topic
    with _store(built["home"]) as store:
        parent_of = dict(zip(fine["topic_id"], fine["parent_id"]))
        for record in store.scroll():  # and every point's broad topic is its sub-topic's parent
            assert record.payload["topic_0_id"] == parent_of[record.payload["topic_id"]]
    for group in [broad, *fine.partition_by("parent_id")]:
        keywords = group["keywords"].to_list()
        for i in range(len(keywords)):
            for j in range(i + 1, len(keywords)):
                assert not set(keywords[i]) & set(keywords[j])


def test_rematerializing_a_partition_keeps_one_point_per_record(built):
    defs, keys, instance = built["defs"], built["keys"], built["instance"]
    with _store(built["home"]) as store:
        before = store.count()
        ids_before = {str(r.id) for r in store.scroll(with_payload=False)}
    run = _materialize_partition(defs, keys, "batch-001", instance)
    assert run.success
    with _store(built["home"]) as store:
        assert store.count() == before == 120
        assert {str(r.id) for r in store.scroll(with_payload=False)} == ids_before
    meta = {e.asset_key: e.materialization.metadata for e in run.get_asset_materialization_events()}
    assert meta[keys.collection]["points_upserted"].value == 60
    assert meta[keys.collection]["stale_points_deleted"].value == 0


def test_file_source_removed_record_leaves_the_collection(tmp_path, wiki_small):
    landing = tmp_path / "landing"
    landing.mkdir()
    small = wiki_small.head(40)
    small.head(20).write_ndjson(landing / "day1.jsonl")
    small.tail(20).write_ndjson(landing / "day2.jsonl")
    home = tmp_path / "home"
    defs, keys = _file_map("files", landing / "*.jsonl", home)
    with dg.instance_for_test() as instance:
        for day in ("day1", "day2"):
            assert _materialize_partition(defs, keys, day, instance).success
        location = StoreLocation(path=str(home / "qdrant"))
        with open_store(location, "files") as store:
            assert store.count() == 40 and store.count("day1") == 20
        removed = small.head(20)["id"][0]
        small.head(20).filter(pl.col("id") != removed).write_ndjson(landing / "day1.jsonl")
        assert _materialize_partition(defs, keys, "day1", instance).success
        with open_store(location, "files") as store:
            assert store.count() == 39 and store.count("day1") == 19 and store.count("day2") == 20
            assert removed not in {r.payload["record_id"] for r in store.scroll()}


def test_bring_your_own_vectors_never_loads_the_model(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 5
    n = 90
    vectors = np.vstack([c + rng.normal(size=(n // 3, 16)) for c in centers]).astype(np.float32)
    words = ["apple banana fruit", "rocket orbit planet", "guitar piano music"]
    frame = pl.DataFrame(
        {
            "doc": [f"d{i}" for i in range(n)],
            "body": [f"{words[i // 30]} note {i}" for i in range(n)],
            "emb": vectors.tolist(),
        }
    )
    frame.write_parquet(tmp_path / "vectors.parquet")
    home = tmp_path / "home"
    defs = dg.Definitions.merge(
        build_embedmap_defs("byo", FileSource(str(tmp_path / "vectors.parquet")), id_column="doc",
                            text_column="body", vector_column="emb", home=home),
        # a model that does not exist: loading it would fail the run
        dg.Definitions(resources={"embedder": EmbedderResource(model=str(tmp_path / "no-such-model")),
                                  "qdrant": QdrantResource(path=str(home / "qdrant"))}),
    )
    keys = MapKeys.for_map("byo")
    with dg.instance_for_test() as instance:
        result = materialize_map(defs, keys, instance=instance)
    assert result.success and all(result.check_results().values())
    assert result.metadata(keys.embeddings)["model"] == "vectors from column 'emb'"
    assert result.metadata(keys.embeddings)["dimension"] == 16
    with open_store(StoreLocation(path=str(home / "qdrant")), "byo") as store:
        _, stored, payloads = store.read_vectors()
        points = points_frame(store)
    assert stored.shape == (90, 16)
    # the three planted groups come out as three topics
    from sklearn.metrics import adjusted_rand_score

    truth = [int(i[1:]) // 30 for i in points["id"]]
    assert adjusted_rand_score(truth, points["topic_id"].to_list()) > 0.9


def test_bad_input_fails_the_partition_and_names_the_column(tmp_path, wiki_small):
    good = wiki_small.head(10)
    good.write_parquet(tmp_path / "a.parquet")
    good.tail(5).rename({"text": "body"}).write_parquet(tmp_path / "b.parquet")
    home = tmp_path / "home"
    defs, keys = _file_map("bad", tmp_path / "*.parquet", home)
    with dg.instance_for_test() as instance:
        assert _materialize_partition(defs, keys, "a", instance).success
        failed = _materialize_partition(defs, keys, "b", instance, raise_on_error=False)
        assert not failed.success
        message = failed.get_step_failure_events()[0].event_specific_data.error.to_string()
        assert "partition 'b'" in message and "'text'" in message and "'body'" in message
    with open_store(StoreLocation(path=str(home / "qdrant")), "bad") as store:
        assert store.count() == 10 and store.count("b") == 0


def test_lineage_and_resources_of_the_example_code_location():
    from dagster_embedmap.examples.wiki import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    chain = ["wiki_articles", "wiki/documents", "wiki/embeddings", "wiki/collection", "wiki/projection_model",
             "wiki/projection", "wiki/topics", "wiki/map"]
    for parent, child in zip(chain, chain[1:]):
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey.from_user_string(child)).parent_keys}
        assert parent in parents, (child, parents)
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(["wiki", "projection"])).parent_keys} == {
        "wiki/collection", "wiki/projection_model"}
    embeddings = graph.get(dg.AssetKey.from_user_string("wiki/embeddings"))
    assert embeddings.pools == {"gpu"}
    assert {"embedder", "qdrant"} <= set(defs.resources)
    assert {j.name for j in defs.jobs} == {"wiki_partitions", "wiki_refit", "wiki_map"}
    assert {s.name for s in defs.schedules} == {"wiki_refit_schedule"}
    assert {s.name for s in defs.sensors} == {"wiki_drift_sensor"}


def test_a_partition_of_blank_texts_materializes_empty_and_is_counted(tmp_path, wiki_small):
    wiki_small.head(5).select("id", "text").write_ndjson(tmp_path / "a.jsonl")
    pl.DataFrame({"id": ["b1", "b2"], "text": ["   ", ""]}).write_ndjson(tmp_path / "b.jsonl")
    home = tmp_path / "home"
    defs, keys = _file_map("blank", tmp_path / "*.jsonl", home)
    with dg.instance_for_test() as instance:
        for part in ("b", "a", "b"):
            run = _materialize_partition(defs, keys, part, instance)
            assert run.success
        docs_meta = [e.materialization.metadata for e in run.get_asset_materialization_events()
                     if e.asset_key == keys.documents][0]
        assert docs_meta["skipped_empty_text"].value == 2 and docs_meta["dagster/row_count"].value == 0
    with open_store(StoreLocation(path=str(home / "qdrant")), "blank") as store:
        assert store.count() == 5 and store.count("b") == 0 and store.dimension() == 384


def test_two_maps_live_side_by_side_in_one_code_location(tmp_path, wiki_small):
    wiki_small.head(10).write_parquet(tmp_path / "a.parquet")
    wiki_small.tail(10).write_csv(tmp_path / "b.csv")
    defs = dg.Definitions.merge(
        build_embedmap_defs("alpha", FileSource(str(tmp_path / "a.parquet")), home=tmp_path / "home"),
        build_embedmap_defs("beta-map", FileSource(str(tmp_path / "b.csv")), home=tmp_path / "home"),
        dg.Definitions(resources=embedmap_resources(tmp_path / "home")),
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    steps = ("documents", "embeddings", "collection", "projection_model", "projection", "topics", "map")
    for name in ("alpha", "beta-map"):
        assert {f"{name}/{step}" for step in steps} <= keys
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"alpha", "beta_map"}
    assert {j.name for j in defs.jobs} == {f"{g}_{j}" for g in ("alpha", "beta_map") for j in ("partitions", "refit", "map")}


def _embedding_meta(run, keys):
    event = [e for e in run.get_asset_materialization_events() if e.asset_key == keys.embeddings][0]
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    return meta, event.materialization.tags["dagster/data_version"]


def test_only_changed_texts_are_re_embedded_and_a_model_change_marks_downstream_stale(tmp_path, wiki_small):
    # what the UI asks to show "stale" (no public wrapper exists for it)
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    landing = tmp_path / "landing"
    landing.mkdir()
    records = wiki_small.head(12).select("id", "text")
    records.write_ndjson(landing / "day1.jsonl")
    home = tmp_path / "home"
    defs, keys = _file_map("cache", landing / "*.jsonl", home)
    emb_path = home / "cache" / "embeddings" / "day1.parquet"
    with dg.instance_for_test() as instance:
        first, version1 = _embedding_meta(_materialize_partition(defs, keys, "day1", instance), keys)
        assert (first["embedded"], first["reused"]) == (12, 0)
        vectors1 = pl.read_parquet(emb_path)

        again, version2 = _embedding_meta(_materialize_partition(defs, keys, "day1", instance), keys)
        assert (again["embedded"], again["reused"], again["device"]) == (0, 12, "not loaded")
        assert version2 == version1
        assert pl.read_parquet(emb_path)["vector"].to_list() == vectors1["vector"].to_list()

        changed_id = records["id"][3]
        records.with_columns(
            pl.when(pl.col("id") == changed_id).then(pl.lit("A completely different text about volcanoes."))
            .otherwise(pl.col("text")).alias("text")
        ).write_ndjson(landing / "day1.jsonl")
        edited, version3 = _embedding_meta(_materialize_partition(defs, keys, "day1", instance), keys)
        assert (edited["embedded"], edited["reused"]) == (1, 11) and version3 != version1
        vectors3 = pl.read_parquet(emb_path)
        same = [a == b for a, b in zip(vectors1["vector"].to_list(), vectors3["vector"].to_list())]
        assert same.count(False) == 1 and not same[3]

        # another model setting: every vector is recomputed, and the collection shows stale until rerun
        other = dg.Definitions.merge(
            build_embedmap_defs("cache", FileSource(str(landing / "*.jsonl")), home=home),
            dg.Definitions(resources={**embedmap_resources(home), "embedder": EmbedderResource(max_seq_length=64)}),
        )
        run = dg.materialize(list(other.assets), selection=dg.AssetSelection.assets(keys.documents, keys.embeddings),
                             partition_key="day1", instance=instance, resources=other.resources)
        remodelled, version4 = _embedding_meta(run, keys)
        assert (remodelled["embedded"], remodelled["reused"]) == (12, 0) and version4 != version3
        status = CachingStaleStatusResolver(instance, other.resolve_asset_graph(), LoadingContextForTest(instance))
        assert status.get_status(keys.collection, "day1") == StaleStatus.STALE
        assert status.get_status(keys.embeddings, "day1") == StaleStatus.FRESH


def test_landing_folder_sensor_and_automation_keep_the_map_fresh(tmp_path, wiki_small):
    landing = tmp_path / "landing"
    landing.mkdir()
    articles = wiki_small.select("id", "text")
    articles.slice(0, 40).write_ndjson(landing / "mon.jsonl")
    articles.slice(40, 40).write_ndjson(landing / "tue.jsonl")
    home = tmp_path / "home"
    days = dg.DynamicPartitionsDefinition(name="landed_days")
    defs = dg.Definitions.merge(
        build_embedmap_defs("live", FileSource(str(landing / "*.jsonl")), partitions_def=days, home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("live")
    sensor = defs.resolve_sensor_def("live_landing_sensor")
    with dg.instance_for_test() as instance:
        cursor, daemon = None, {}

        def tick():
            nonlocal cursor
            context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                              definitions=defs)
            data = sensor.evaluate_tick(context)
            cursor = data.cursor
            for request in data.dynamic_partitions_requests or []:
                if isinstance(request, dg.AddDynamicPartitionsRequest):
                    instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
                else:
                    for key in request.partition_keys:
                        instance.delete_dynamic_partition(request.partitions_def_name, key)
            selections = {"live_partitions": keys.ingest, "live_map": keys.summary}  # the jobs' selections
            for run in data.run_requests:
                assert dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*selections[run.job_name]),
                                      partition_key=run.partition_key, instance=instance,
                                      resources=defs.resources).success
            return data.run_requests

        assert sorted(r.partition_key for r in tick()) == ["mon", "tue"]
        rounds = drive_automation(defs, instance, daemon)
        assert rounds[0] == {"live/projection_model"}  # fitted once, when missing
        assert rounds[1] == {"live/projection[mon]", "live/projection[tue]"}
        assert {"live/topics", "live/map"} <= set().union(*rounds[2:])
        with open_store(StoreLocation(path=str(home / "qdrant")), "live") as store:
            before = points_frame(store)
        assert before.height == 80 and before["x"].null_count() == 0 and (before["topic_id"] >= 0).all()

        # a new file: only its partition is ingested and placed; the layout is not refitted
        articles.slice(80, 20).write_ndjson(landing / "wed.jsonl")
        assert [r.partition_key for r in tick()] == ["wed"]
        rounds = drive_automation(defs, instance, daemon)
        requested = set().union(*rounds)
        assert "live/projection[wed]" in requested and "live/projection_model" not in requested
        assert not {"live/projection[mon]", "live/projection[tue]"} & requested
        with open_store(StoreLocation(path=str(home / "qdrant")), "live") as store:
            after = points_frame(store)
        assert after.height == 100 and (after["topic_id"] >= 0).all()
        old = before.join(after, on="id", suffix="_after")
        assert (old["x"] == old["x_after"]).all() and (old["topic_id"] == old["topic_id_after"]).all()

        # nothing new: no run; a removed file: its partition and its points go
        assert tick() == []
        (landing / "tue.jsonl").unlink()
        assert [r.job_name for r in tick()] == ["live_map"]
        with open_store(StoreLocation(path=str(home / "qdrant")), "live") as store:
            assert store.count() == 60 and store.count("tue") == 0
        assert not (home / "live" / "documents" / "tue.parquet").exists()


def test_a_refit_is_aligned_to_the_previous_layout_and_topics_keep_their_ids(tmp_path):
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 24)) * 4
    words = ["apple banana orchard", "rocket orbit launch", "guitar chord melody", "river delta flood"]

    def batch(name: str, n: int, start: int) -> None:
        topic = np.arange(n) % 4
        vectors = centres[topic] + rng.normal(size=(n, 24))
        pl.DataFrame({"doc": [f"d{start + i}" for i in range(n)],
                      "body": [f"{words[t]} item {start + i}" for i, t in enumerate(topic)],
                      "truth": topic, "emb": vectors.astype(np.float32).tolist()}).write_parquet(tmp_path / f"{name}.parquet")

    for i in range(3):
        batch(f"b{i}", 80, i * 80)
    home = tmp_path / "home"
    days = dg.DynamicPartitionsDefinition(name="refit_batches")
    defs = dg.Definitions.merge(
        build_embedmap_defs("refit", FileSource(str(tmp_path / "*.parquet")), id_column="doc", text_column="body",
                            vector_column="emb", partitions_def=days, home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("refit")
    location = StoreLocation(path=str(home / "qdrant"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("refit_batches", ["b0", "b1", "b2"])
        first = materialize_map(defs, keys, instance=instance)
        assert first.metadata(keys.projection_model)["version"] == 1
        with open_store(location, "refit") as store:
            before = points_frame(store)
        batch("b3", 120, 240)  # new data changes the sample, so the refit's raw layout differs
        instance.add_dynamic_partitions("refit_batches", ["b3"])
        second = materialize_map(defs, keys, instance=instance, refit=True)
        model = second.metadata(keys.projection_model)
        assert model["version"] == 2 and model["aligned_to_version"] == 1
        topics = second.metadata(keys.topics)
        assert topics["reclustered"] is True and topics["topics"] == 4
        with open_store(location, "refit") as store:
            after = points_frame(store)
    assert after.height == 360 and after["x"].null_count() == 0
    shared = before.join(after, on="id", suffix="_after")
    # aligned onto the old layout by the best rotation / flip / scale / shift; how UMAP arranges four
    # separate blobs relative to each other still varies between fits (0.71 here since the fit sees its
    # points in content order; 0.1 before, by the luck of the id order): keeping neighbourhoods across
    # refits is the object-storage issue's (18) refit work
    assert 0.0 < model["alignment_disparity"] < 0.8
    # the same four groups, under the same topic ids
    assert adjusted_rand_score(shared["topic_id"], shared["topic_id_after"]) > 0.95
    assert float((shared["topic_id"] == shared["topic_id_after"]).mean()) > 0.95
    same = shared.filter(pl.col("topic_id") == pl.col("topic_id_after"))
    assert (same["topic_label"] == same["topic_label_after"]).all()  # a kept topic keeps its name
    truth = after.with_columns(pl.col("id").str.slice(1).cast(pl.Int64).alias("n"))
    assert adjusted_rand_score((truth["n"] % 4).to_list(), truth["topic_id"].to_list()) > 0.95


def test_time_window_partitions_work_through_the_same_factory(tmp_path, wiki_small):
    days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-04")
    articles = wiki_small.head(30).select("id", "text")

    @dg.asset(partitions_def=days)
    def daily_articles(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = int(context.partition_key[-2:])  # 01, 02, 03: ten articles a day
        return articles.slice((day - 1) * 10, 10)

    home = tmp_path / "home"
    defs = dg.Definitions.merge(
        dg.Definitions(assets=[daily_articles]),
        build_embedmap_defs("daily", daily_articles, home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("daily")
    graph = defs.resolve_asset_graph()
    assert graph.get(keys.embeddings).partitions_def == days
    with dg.instance_for_test() as instance:
        result = materialize_map(defs, keys, instance=instance, include_upstream=True)
    assert result.partitions == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert result.success and all(result.check_results().values())
    with open_store(StoreLocation(path=str(home / "qdrant")), "daily") as store:
        assert store.count() == 30 and store.count("2026-11-02") == 10


def test_the_drift_sensor_asks_for_a_refit_once_most_records_are_newer_than_the_layout(tmp_path):
    rng = np.random.default_rng(5)

    def batch(name: str, n: int) -> None:
        pl.DataFrame({"doc": [f"{name}-{i}" for i in range(n)], "body": [f"note {i} of {name}" for i in range(n)],
                      "emb": rng.normal(size=(n, 8)).astype(np.float32).tolist()}).write_parquet(tmp_path / f"{name}.parquet")

    batch("first", 30)
    home = tmp_path / "home"
    parts = dg.DynamicPartitionsDefinition(name="drift_batches")
    defs = dg.Definitions.merge(
        build_embedmap_defs("drift", FileSource(str(tmp_path / "*.parquet")), id_column="doc", text_column="body",
                            vector_column="emb", partitions_def=parts, home=home, refit_drift_share=0.5),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("drift")
    sensor = defs.resolve_sensor_def("drift_drift_sensor")
    with dg.instance_for_test() as instance:
        def tick():
            context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs)
            return sensor.evaluate_tick(context)

        assert "no layout model yet" in tick().skip_message
        instance.add_dynamic_partitions("drift_batches", ["first"])
        assert materialize_map(defs, keys, instance=instance).success
        assert "0.0% of 30 records are newer than layout v1" in tick().skip_message
        batch("second", 40)  # 40 of 70 records (57%) arrive after the fit
        instance.add_dynamic_partitions("drift_batches", ["second"])
        assert _materialize_partition(defs, keys, "second", instance).success
        [request] = tick().run_requests
        assert request.run_key == "drift-v1" and sensor.job_name == "drift_refit"


def test_semantic_search_finds_the_topic_and_honours_filters(built, wiki_small):
    from dagster_embedmap.core.embedding import Encoder
    from dagster_embedmap.core.store.search import search_map

    encoder = Encoder()
    with _store(built["home"]) as store:
        hits = search_map(store, encoder, "a species of animal, insect or plant", k=3)
        assert [h.metadata["category"] for h in hits] == ["Biology and health sciences"] * 3
        assert hits[0].score >= hits[1].score >= hits[2].score
        assert all(h.x is not None and h.topic_label for h in hits)
        topic = hits[0].topic_id
        in_topic = search_map(store, encoder, "war and empires", k=5, topic=topic)
        assert in_topic and all(h.topic_id == topic for h in in_topic)
        by_label = search_map(store, encoder, "war and empires", k=5, topic=hits[0].topic_label)
        assert [h.id for h in by_label] == [h.id for h in in_topic]
        broad = hits[0].topic_path[0]
        assert len(hits[0].topic_path) == 2 and hits[0].topic_path[-1] == hits[0].topic_label
        in_broad = search_map(store, encoder, "war and empires", k=8, topic=broad, level=0)
        assert in_broad and all(h.topic_path[0] == broad for h in in_broad)
        assert "content_hash" not in hits[0].metadata and "topic_0_id" not in hits[0].metadata
        arts = search_map(store, encoder, "war and empires", k=4, where={"category": "Arts"}, partition="batch-001")
        assert arts and all(h.metadata["category"] == "Arts" and h.partition == "batch-001" for h in arts)
        with pytest.raises(ValueError, match="empty"):
            search_map(store, encoder, "   ")


def test_near_duplicates_are_found_through_qdrant_and_none_invented(tmp_path, wiki_small):
    base = wiki_small.head(40).select("id", "text")
    planted = base.head(3).with_columns(
        ("copy of " + pl.col("id")).alias("id"),
        (pl.col("text") + " (Reprinted.)").alias("text"),  # the same article, lightly edited
    )
    pl.concat([base, planted]).write_parquet(tmp_path / "records.parquet")
    home = tmp_path / "home"
    defs, keys = _file_map("dups", tmp_path / "records.parquet", home)
    with dg.instance_for_test() as instance:
        assert materialize_map(defs, keys, instance=instance).success
        run = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(keys.duplicates),
                             instance=instance, resources=defs.resources)
    assert run.success
    meta = {k: v.value for k, v in run.get_asset_materialization_events()[0].materialization.metadata.items()}
    pairs = pl.read_parquet(home / "dups" / "duplicates.parquet")
    found = {tuple(sorted(p)) for p in pairs.select("id_a", "id_b").iter_rows()}
    assert found == {tuple(sorted((orig, f"copy of {orig}"))) for orig in base["id"].head(3)}
    assert meta["duplicate_pairs"] == 3 and meta["records_in_pairs"] == 6
    assert (pairs["similarity"] >= 0.95).all()
    outliers = pl.read_parquet(home / "dups" / "outliers.parquet")
    assert outliers.height == 43 and outliers["distance"].is_sorted(descending=True)
    assert set(outliers["id"]) == set(base["id"]) | set(planted["id"])


def test_a_backfill_runs_several_partitions_in_one_run_and_keeps_them_apart(tmp_path, wiki_small):
    """partitions_per_run=3: one run, one process and one model load for three partitions; every
    partition is still written, checked and recorded on its own."""
    landing = tmp_path / "landing"
    landing.mkdir()
    for i, day in enumerate(("d1", "d2", "d3")):
        wiki_small.slice(12 * i, 12).select("id", "text", "category").write_ndjson(landing / f"{day}.jsonl")
    home = tmp_path / "home"
    pdef = dg.DynamicPartitionsDefinition(name="batched_files")
    defs = dg.Definitions.merge(
        build_embedmap_defs("batched", FileSource(str(landing / "*.jsonl")), partitions_def=pdef, home=home,
                            partitions_per_run=3),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("batched")
    assert defs.get_assets_def(keys.embeddings).backfill_policy.max_partitions_per_run == 3
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(pdef.name, ["d1", "d2", "d3"])
        result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys.ingest),
                                instance=instance, resources=defs.resources,
                                tags={"dagster/asset_partition_range_start": "d1",
                                      "dagster/asset_partition_range_end": "d3"})
        assert result.success
        per_key = {}
        for event in result.get_asset_materialization_events():
            per_key.setdefault(event.asset_key, set()).add(event.partition)
        assert all(per_key[k] == {"d1", "d2", "d3"} for k in keys.ingest)
        embedded = next(e for e in result.get_asset_materialization_events() if e.asset_key == keys.embeddings)
        meta = embedded.materialization.metadata
        assert meta["partitions"].value == 3 and meta["embedded"].value == 36 and meta["dagster/row_count"].value == 36
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"embeddings_sane": True, "partition_points_match_documents": True}
    with open_store(StoreLocation(path=str(home / "qdrant")), "batched") as store:
        assert store.count() == 36 and all(store.count(day) == 12 for day in ("d1", "d2", "d3"))


def test_automation_requests_the_map_with_its_checks(tmp_path, wiki_small):
    """What declarative automation asks for once the topics are updated: the map and the two checks
    it yields, so the run it launches records their results."""
    landing = tmp_path / "landing"
    landing.mkdir()
    wiki_small.head(10).select("id", "text").write_ndjson(landing / "d1.jsonl")
    defs, keys = _file_map("auto", landing / "*.jsonl", tmp_path / "home")
    with dg.instance_for_test() as instance:
        evaluated = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=keys.topics))
        evaluated = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluated.cursor)
        requested = {r.key: r.true_subset.size for r in evaluated.results if r.true_subset.size}
    assert requested == {keys.map: 1, dg.AssetCheckKey(keys.map, "collection_matches_documents"): 1,
                         dg.AssetCheckKey(keys.map, "every_point_mapped"): 1,
                         dg.AssetCheckKey(keys.map, "every_point_current"): 1}
