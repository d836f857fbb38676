"""A property test: random sequences of adds, edits, removals, swapped texts, new and dropped partitions,
refits and reclusters over a few partitions, each followed by the incremental update the assets run
(the same step functions, the bundled model, the embedded Qdrant). After every step each point must agree
with the current input: its stored content hash, its vector, the hash its coordinates were computed for,
and its topics; and a record whose text changed must land among its new neighbours, in their topic.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dagster_embedmap.core.topics.cluster import ClusterSettings
from dagster_embedmap.core.records.documents import RecordSchema, content_hash
from dagster_embedmap.core.embedding import Encoder, EncoderSettings
from dagster_embedmap.core.topics.labels import LabelSettings
from dagster_embedmap.core.paths import MapLayout
from dagster_embedmap.core.store.payload import points_frame, vector_hashes
from dagster_embedmap.core.layout.project import ProjectionSettings
from dagster_embedmap.core.store import StoreLocation, open_store, point_id
from dagster_embedmap.steps import (
    NullLog,
    audit_points,
    embed_partition,
    fit_layout,
    place_partition,
    refresh_topics,
    write_documents,
    write_points,
)

from support.corpora import TOPICS, sentence

pytestmark = pytest.mark.slow

NAME = "prop"
STEPS = 240
SEED = 20261201


class Map:
    """The map under test and the input it must agree with: ``records[partition][id] = (text, topic)``."""

    def __init__(self, home: Path, encoder: Encoder):
        self.layout = MapLayout(home, NAME)
        self.location = StoreLocation(path=str(home / "qdrant"))
        self.encoder = encoder
        self.records: dict[str, dict[str, tuple[str, str]]] = {}
        self.reference: dict[str, np.ndarray] = {}
        self.log = NullLog()
        self.fitted = False

    def opener(self):
        return lambda: open_store(self.location, NAME)

    def update(self, partitions, refit: bool = False, recluster: bool = False) -> None:
        """What a build does for the partitions that changed: ingest and place them, then the topics."""
        for partition in sorted(partitions):
            if partition not in self.records:
                continue  # dropped: the topics step deletes its points and files
            rows = self.records[partition]
            frame = pl.DataFrame({"id": list(rows), "text": [t for t, _ in rows.values()],
                                  "topic": [c for _, c in rows.values()]},
                                 schema={"id": pl.String, "text": pl.String, "topic": pl.String})
            write_documents(self.layout, partition, frame, RecordSchema(), self.log)
            embed_partition(self.layout, partition, lambda: self.encoder, self.log)
            write_points(self.opener(), self.layout, NAME, partition, levels=2, log=self.log)
            if self.fitted and not refit:
                place_partition(self.opener(), self.layout, partition)
        if refit:
            fit_layout(self.opener(), self.layout, NAME, ProjectionSettings(), self.log)
            self.fitted = True
            for partition in sorted(self.records):
                place_partition(self.opener(), self.layout, partition)
        refresh_topics(self.opener(), self.layout, NAME, set(self.records), clustering=ClusterSettings(),
                       labels=LabelSettings(), recluster=recluster, log=self.log)

    def vector_of(self, text: str) -> np.ndarray:
        if text not in self.reference:
            self.reference[text] = self.encoder.encode([text])[0]
        return self.reference[text]

    def assert_current(self, step: str) -> pl.DataFrame:
        """Every point agrees with the input; returns the points (id, partition, x, y, topics, class)."""
        expected = {point_id(NAME, rid): (partition, rid, text)
                    for partition, rows in self.records.items() for rid, (text, _) in rows.items()}
        with open_store(self.location, NAME) as store:
            ids, vectors, payloads = store.read_vectors()
            points = points_frame(store)
        assert set(ids) == set(expected), f"{step}: points {len(ids)} vs records {len(expected)}"
        stored_hash = {}
        for partition in self.records:
            emb = pl.read_parquet(self.layout.embeddings(partition))
            hashes = vector_hashes(np.asarray(emb["vector"].to_list(), np.float32).reshape(emb.height, -1))
            stored_hash.update({point_id(NAME, rid): h for rid, h in zip(emb["id"].to_list(), hashes)})
        for pid, vector, payload in zip(ids, vectors, payloads):
            partition, rid, text = expected[pid]
            where = f"{step}: record {rid!r}"
            assert payload["partition"] == partition and payload["record_id"] == rid, where
            assert payload["content_hash"] == content_hash(text), where
            reference = self.vector_of(text)
            assert float(vector @ reference) / float(np.linalg.norm(vector) * np.linalg.norm(reference)) > 0.999, where
            assert payload["vector_hash"] == stored_hash[pid], where
            assert payload["xy_hash"] == payload["vector_hash"] == payload["topic_hash"], where
            assert np.isfinite([payload["x"], payload["y"]]).all(), where
            assert payload["topic_0_id"] >= 0 and payload["topic_1_id"] == payload["topic_id"] >= 0, where
        for partition in self.records:  # the coordinates files say what the payload says
            coords = pl.read_parquet(self.layout.coordinates(partition))
            assert coords.height == len(self.records[partition]), step
            merged = coords.join(points.select(pl.col("id").alias("record_id"), pl.col("x").alias("px"),
                                               pl.col("y").alias("py")), on="record_id")
            assert merged.height == coords.height and (merged["x"] == merged["px"]).all(), step
        audit = audit_points(points, self.layout, set(self.records))
        assert audit.current, (step, audit.check().description)
        fine = pl.read_parquet(self.layout.topics).filter(pl.col("level") == 1)
        assert fine["size"].sum() == len(ids), step
        topic_of = {rid: c for rows in self.records.values() for rid, (_, c) in rows.items()}
        return points.with_columns(pl.col("id").replace_strict(topic_of, return_dtype=pl.String).alias("class"))


def _neighbours(points: pl.DataFrame, rid: str, k: int = 5) -> pl.DataFrame:
    xy = points.select("x", "y").to_numpy()
    i = points["id"].to_list().index(rid)
    order = np.argsort(np.linalg.norm(xy - xy[i], axis=1))
    return points[[int(j) for j in order[1 : k + 1]]]


@pytest.fixture(scope="module")
def encoder():
    enc = Encoder(EncoderSettings(device="cpu"))
    yield enc
    enc.close()


def test_random_updates_keep_every_point_in_agreement_with_its_record(tmp_path, encoder):
    rng = random.Random(SEED)
    topics = list(TOPICS)
    the_map = Map(tmp_path / "home", encoder)
    counter = iter(range(10**6))

    def new_record() -> tuple[str, tuple[str, str]]:
        topic = rng.choice(topics)
        return f"r{next(counter)}", (sentence(topic, rng), topic)

    for p in ("p0", "p1", "p2"):
        the_map.records[p] = dict(new_record() for _ in range(40))
    the_map.update(the_map.records, refit=True)
    the_map.assert_current("initial build")

    kinds = ["edit"] * 30 + ["add"] * 20 + ["remove"] * 15 + ["swap"] * 10 + ["new partition"] * 3 \
        + ["drop partition"] * 2 + ["refit"] * 2 + ["recluster"] * 3 + ["rebuild unchanged"] * 5
    seen: dict[str, int] = {}
    moved = among_class = in_topic = 0
    started = time.perf_counter()
    for step in range(STEPS):
        kind = rng.choice(kinds)
        parts = sorted(the_map.records)
        partition = rng.choice(parts)
        rows = the_map.records[partition]
        edited: list[str] = []
        touched = {partition}
        if kind == "edit" and rows:
            for rid in rng.sample(list(rows), min(len(rows), rng.randint(1, 4))):
                topic = rng.choice([t for t in topics if t != rows[rid][1]])  # a text about something else
                rows[rid] = (sentence(topic, rng), topic)
                edited.append(rid)
        elif kind == "swap" and len(rows) >= 2:  # two records exchange their texts (as in the issue)
            a, b = rng.sample(list(rows), 2)
            rows[a], rows[b] = rows[b], rows[a]
            edited += [a, b] if rows[a][1] != rows[b][1] else []
        elif kind == "add":
            rows.update(new_record() for _ in range(rng.randint(1, 5)))
        elif kind == "remove" and len(rows) > 3:
            for rid in rng.sample(list(rows), rng.randint(1, 3)):
                del rows[rid]
        elif kind == "new partition" and len(parts) < 5:
            partition = f"p{next(counter)}"
            the_map.records[partition] = dict(new_record() for _ in range(rng.randint(5, 15)))
            touched = {partition}
        elif kind == "drop partition" and len(parts) > 2:
            del the_map.records[partition]
        the_map.update(touched, refit=kind == "refit", recluster=kind == "recluster")
        points = the_map.assert_current(f"step {step} ({kind} in {partition})")
        seen[kind] = seen.get(kind, 0) + 1
        for rid in edited:  # the edited record lands among its new neighbours, in their topic
            near = _neighbours(points, rid)
            mine = points.filter(pl.col("id") == rid).row(0, named=True)
            moved += 1
            among_class += int((near["class"] == mine["class"]).sum() >= 3)
            in_topic += int(near["topic_id"].mode().to_list()[0] == mine["topic_id"])
    seconds = time.perf_counter() - started
    print(f"\n{STEPS} steps in {seconds:.1f} s ({seconds / STEPS:.2f} s each): {dict(sorted(seen.items()))}; "
          f"{moved} edited records: {among_class} among their new class, {in_topic} in their neighbours' topic")
    assert set(seen) == set(kinds), seen  # every kind of step was exercised
    assert moved >= 100
    assert among_class >= 0.9 * moved and in_topic >= 0.85 * moved
