"""Topic quality, guarded: a small fixed labelled corpus built through the production path twice.

600 Wikipedia summaries (seeded) in 11 categories: build A embeds the texts with the bundled model in 2
partitions; build B takes A's vectors as a vector column, under another map name, in 3 partitions (so
every point id, the partitioning and the store's order differ). The floors sit a little below the
figures measured when they were set (in the comments), so a regression in clustering, the tree, the
labels or order independence fails here loudly. ``benchmarks/topics.py`` measures the same on the
full corpora.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from dagster_embedmap import build_embedmap_defs, embedmap_resources
from dagster_embedmap.assets.factory import MapKeys
from dagster_embedmap.assets.run import materialize_map
from dagster_embedmap.core.records.datasets import load_wiki_summaries
from dagster_embedmap.core.store.payload import level_field, points_frame
from dagster_embedmap.core.records.sources import FileSource
from dagster_embedmap.core.store import StoreLocation, open_store
from dagster_embedmap.core.topics.quality import ctfidf_labels, label_accuracy

pytestmark = pytest.mark.e2e

N = 600


def _build(tmp_path_factory, name: str, frame: pl.DataFrame, parts: int, **kwargs):
    home = tmp_path_factory.mktemp(f"{name}_home")
    landing = tmp_path_factory.mktemp(f"{name}_landing")
    for p in range(parts):
        frame.gather_every(parts, offset=p).write_parquet(landing / f"part-{p}.parquet")
    pdef = dg.DynamicPartitionsDefinition(name=f"{name}_parts")
    defs = dg.Definitions.merge(
        build_embedmap_defs(name, FileSource(str(landing / "*.parquet")), partitions_def=pdef, home=home, **kwargs),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(pdef.name, [f"part-{p}" for p in range(parts)])
    materialize_map(defs, MapKeys.for_map(name), instance=instance, log_level="WARNING")
    with open_store(StoreLocation(path=str(home / "qdrant")), name, read_only=True) as store:
        points = points_frame(store)
        _, vectors, payloads = store.read_vectors()  # the payload carries the record id
    stored = pl.DataFrame({"id": [p["record_id"] for p in payloads],
                           "emb": pl.Series(vectors.tolist(), dtype=pl.List(pl.Float32))})
    return points.sort("id"), pl.read_parquet(home / name / "topics.parquet"), stored


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    corpus = load_wiki_summaries(n=N, seed=3, batches=2).select("id", "text", "category")
    a, table, vectors = _build(tmp_path_factory, "quality_a", corpus, 2)
    b, _, _ = _build(tmp_path_factory, "other_map_b", corpus.join(vectors, on="id"), 3, vector_column="emb")
    return corpus, a, table, b, vectors


def _column(points: pl.DataFrame, frame: pl.DataFrame, name: str) -> np.ndarray:
    """``frame[name]`` of every point, in the points' order (by record id)."""
    of = dict(zip(frame["id"].to_list(), frame[name].to_list()))
    return np.array([of[rid] for rid in points["id"].to_list()], dtype=object)


def _fine(points: pl.DataFrame) -> np.ndarray:
    depth = max(int(c.split("_")[1]) for c in points.columns if c.startswith("topic_") and c.endswith("_id")
                and c.split("_")[1].isdigit()) + 1
    return points[level_field(depth - 1, "id")].to_numpy()


def test_fine_topics_beat_kmeans_and_are_well_sized(builds):
    corpus, a, _, _, vectors = builds
    truth = _column(a, corpus, "category")
    fine = _fine(a)
    vecs = np.asarray(_column(a, vectors, "emb").tolist(), dtype=np.float32)
    kmeans = np.mean([normalized_mutual_info_score(truth, KMeans(11, n_init=10, random_state=s).fit_predict(vecs))
                      for s in range(3)])
    nmi = normalized_mutual_info_score(truth, fine)
    assert (fine >= 0).all()  # every point has a topic
    sizes = np.bincount(fine)
    assert 8 <= len(sizes) <= 20  # auto_fine_topics(600) = 11; measured: 11
    assert sizes.max() / len(fine) <= 0.25  # measured: 0.168
    assert nmi / kmeans >= 1.10, (nmi, kmeans)  # measured: 1.161 (0.548 vs 0.472)


def test_broad_topics_are_few_and_none_is_a_blob(builds):
    _, a, table, _, _ = builds
    broad = a[level_field(0, "id")].to_numpy()
    sizes = np.bincount(broad)
    assert 4 <= len(sizes) <= 15  # measured: 4
    assert sizes.max() / len(broad) <= 0.40  # measured: 0.337
    # every broad topic is its sub-topics, each sub-topic under exactly one parent
    fine_rows = table.filter(pl.col("level") == 1)
    assert fine_rows["parent_id"].null_count() == 0
    assert set(fine_rows["parent_id"].to_list()) == set(range(len(sizes)))


def test_the_same_records_under_another_map_name_give_the_same_topics(builds):
    _, a, _, b, _ = builds
    assert a["id"].to_list() == b["id"].to_list() and a.height == N  # both sorted by record id
    ari = adjusted_rand_score(a[level_field(1, "id")], b[level_field(1, "id")])
    assert ari >= 0.99, ari  # measured: 1.000 (the fit sees the vectors in content order)


def test_labels_name_what_the_topics_are_about(builds):
    import os

    from dagster_embedmap.core.embedding import Encoder, EncoderSettings

    corpus, a, table, _, _ = builds
    fine = _fine(a)
    fine_rows = table.filter((pl.col("level") == table["level"].max()) & (pl.col("topic_id") >= 0))
    ours = dict(zip(fine_rows["topic_id"].to_list(), fine_rows["label"].to_list()))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    encoder = Encoder(EncoderSettings())
    embed = lambda texts: encoder.encode(list(texts))  # noqa: E731
    truth = _column(a, corpus, "category").tolist()
    accuracy = label_accuracy(ours, fine, truth, embed)
    baseline = label_accuracy(ctfidf_labels(_column(a, corpus, "text").tolist(), fine), fine, truth, embed)
    encoder.close()
    # measured here: 0.657 vs 0.250 (2.63x); on CI's machine 0.567 vs 0.318 (1.78x). Its float rounding
    # moves the topics a little, and with 11 topics one label is ~9% of either figure: with 1e-5 noise on
    # every vector (5 seeds) ours read 0.50-0.60, c-TF-IDF's 0.10-0.27 (2.2-5.0x). So a floor on ours
    # itself, and on the ratio below every figure seen (c-TF-IDF's own labels would fail both).
    assert accuracy >= 0.45, (accuracy, baseline)
    assert accuracy >= 1.5 * baseline, (accuracy, baseline)
    # no label holds a clipped contraction or a word in every topic
    words = [w for label in ours.values() for term in label.split(", ") for w in term.split(" ")]
    assert not {"don", "ll", "ve", "isn"} & set(words)
    assert len(set(ours.values())) == len(ours)  # every topic named differently
