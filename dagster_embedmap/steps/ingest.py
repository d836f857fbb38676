"""Per-partition ingest: the partition's documents, its vectors (only changed records re-embedded) and its
points in the collection (an unchanged vector keeps its place and topics, a changed one is placed again)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from ..core.records.documents import PreparedDocuments, RecordSchema, attach_images, prepare_documents
from ..core.embedding import Encoder, split_cached, stack_vectors, vector_health
from ..core.errors import EmbedMapInputError
from ..core.paths import Log, MapLayout, atomic_path, read_or_set_aside
from ..core.store.payload import class_fields, placement_fields, vector_hashes
from ..core.store import point_id
from .common import Check, StoreOpener, read_documents

__all__ = ["SNIPPET_CHARS", "DocumentsResult", "EmbeddingsResult", "PointsResult", "write_documents",
           "embed_partition", "write_points", "digest"]

SNIPPET_CHARS = 500
"""Characters of a record's text kept in its Qdrant payload (the documents file keeps the whole text)."""


def digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]


# -- documents ------------------------------------------------------------------------------------


@dataclass
class DocumentsResult:
    path: Path
    prepared: PreparedDocuments

    @property
    def frame(self) -> pl.DataFrame:
        return self.prepared.frame


def write_documents(layout: MapLayout, partition: str, records: pl.DataFrame, schema: RecordSchema,
                    log: Log) -> DocumentsResult:
    """Validate one partition's records (:func:`prepare_documents`), read their images, if any
    (:func:`attach_images`), and write ``documents/<partition>.parquet``."""
    prepared = attach_images(prepare_documents(records, schema, partition), schema, partition)
    path = layout.documents(partition)
    with atomic_path(path) as tmp:
        prepared.frame.write_parquet(tmp)
    if prepared.control_characters:
        log.warning(
            f"partition {partition!r}: control characters replaced by spaces in {prepared.control_characters} "
            f"text(s) of column {schema.text_column!r} (ids: {prepared.control_ids[:5]})"
        )
    if prepared.skipped_empty_text:
        log.warning(
            f"partition {partition!r}: skipped {prepared.skipped_empty_text} record(s) with empty text "
            f"in column {schema.text_column!r} (ids: {prepared.skipped_ids[:5]})"
        )
    if prepared.skipped_bad_images:
        bad = prepared.skipped_bad_images
        log.warning(
            f"partition {partition!r}: skipped {len(bad)} record(s) whose image in column {schema.image_column!r} "
            f"cannot be read: " + "; ".join(f"id {rid!r}: {why}" for rid, why in bad[:5])
            + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        )
    if prepared.renamed_columns:
        pairs = ", ".join(f"{old!r} -> {new!r}" for old, new in prepared.renamed_columns.items())
        log.warning(
            f"partition {partition!r}: column(s) named like the map's own fields are kept under another name: "
            f"{pairs} (in the payload, the HTML map and the export); rename them in the source to choose the names"
        )
    return DocumentsResult(path, prepared)


# -- embeddings -----------------------------------------------------------------------------------


class Progress:
    """Logs 'records done, docs/s, time left' at most every ``every_s`` seconds."""

    def __init__(self, log: Log, label: str, every_s: float = 10.0):
        self.log, self.label, self.every_s, self.last = log, label, every_s, 0.0

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        if done < total and elapsed - self.last < self.every_s:
            return
        self.last = elapsed
        rate = done / elapsed if elapsed > 0 else float("nan")
        left = (total - done) / rate if rate > 0 else float("nan")
        self.log.info(f"{self.label}: embedded {done}/{total} records, {rate:.1f} docs/s, about {left:.0f} s left")


@dataclass
class EmbeddingsResult:
    path: Path
    frame: pl.DataFrame
    fingerprint: str
    info: dict[str, object]
    """What made the vectors: model, device, precision, ... (or the source's vector column)."""
    embedded: int
    reused: int
    seconds: float
    load_seconds: float
    truncated_ids: list[str]
    from_column: bool
    health: dict[str, object]
    dimension: int
    data_version: str
    documents: int
    """Records in the partition's documents (one vector each)."""

    @property
    def docs_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 and self.embedded else 0.0

    def check(self) -> Check:
        health = dict(self.health)
        passed = bool(health.pop("passed")) and self.frame.height == self.documents
        return Check("embeddings_sane", passed, {**health, "rows": self.frame.height, "documents": self.documents})


def embed_partition(layout: MapLayout, partition: str, get_encoder: Callable[[], Encoder], log: Log, *,
                    vector_column: str | None = None, documents_step: str = "documents") -> EmbeddingsResult:
    """Write ``embeddings/<partition>.parquet``: one vector per document, with its content hash and model.

    A record keeps its previous vector while its text (content hash) and the model fingerprint are
    unchanged; only the others go through the model, which is not even loaded when none changed. An
    unreadable previous file is set aside and every record embedded again. With ``vector_column`` the
    source's own vectors are used and no model is loaded.
    """
    docs = read_documents(layout, partition, documents_step)
    path = layout.embeddings(partition)
    load_s, reused = 0.0, 0
    if "vector" in docs.columns:
        started = time.perf_counter()
        vectors = stack_vectors(docs.get_column("vector").to_list())
        fingerprint = f"column:{vector_column}"
        info: dict[str, object] = {"model": f"vectors from column {vector_column!r}", "device": "none"}
        expected_dim = vectors.shape[1]
        truncated = pl.Series("truncated", [None] * docs.height, dtype=pl.Boolean)
    else:
        encoder = get_encoder()
        fingerprint = encoder.fingerprint()
        previous = read_or_set_aside(
            path, pl.read_parquet, log=log,
            holds=f"the vectors of partition {partition!r} (derived from its documents and the model)",
            then="every record of the partition is embedded again",
        )
        cached, todo = split_cached(docs, previous, fingerprint, earlier=encoder.earlier_fingerprint())
        reused = cached.height
        cut: set[str] = set()
        if todo.height:
            loading = time.perf_counter()
            expected_dim = encoder.dimension  # loads the model outside the timed part: docs/s is encoding alone
            started = time.perf_counter()
            load_s = started - loading
            fresh, texts, text_rows = _encode(encoder, todo, Progress(log, f"partition {partition!r}"))
            encoded = time.perf_counter()
            info = {k: v for k, v in encoder.identity().items() if k != "dimension"}
            cut = set(todo["id"].gather([text_rows[i] for i in encoder.over_window(texts)]).to_list())
            started += time.perf_counter() - encoded  # the window check is not encoding time
        else:  # every text unchanged under the same model: the model is not even loaded
            started = time.perf_counter()
            expected_dim = len(cached["vector"][0]) if reused else 0
            fresh = np.empty((0, expected_dim), dtype=np.float32)
            info = {"model": encoder.settings.model, "fingerprint": fingerprint, "device": "not loaded"}
        flags = dict(zip(cached["id"].to_list(), cached["truncated"].to_list()))
        flags.update({rid: rid in cut for rid in todo["id"].to_list()})
        truncated = pl.Series("truncated", [flags.get(rid) for rid in docs["id"].to_list()], dtype=pl.Boolean)
        vectors = _in_order(docs["id"], cached, todo["id"], fresh, expected_dim)
    elapsed = time.perf_counter() - started
    dim = vectors.shape[1]
    frame = pl.DataFrame(
        {
            "id": docs.get_column("id"),
            "content_hash": docs.get_column("content_hash"),
            "model": pl.Series("model", [fingerprint] * docs.height, dtype=pl.String),
            "vector": pl.Series("vector", vectors, dtype=pl.Array(pl.Float32, max(dim, 1))) if docs.height
            else pl.Series("vector", [], dtype=pl.Array(pl.Float32, max(dim, 1))),
            "truncated": truncated,
        }
    )
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
    embedded = docs.height - reused
    cut_ids = docs["id"].filter(truncated.fill_null(False)).to_list()
    if cut_ids:
        log.warning(
            f"partition {partition!r}: {len(cut_ids)} text(s) are longer than the model's window"
            + (f" of {info['max_seq_length']} tokens" if "max_seq_length" in info else "")
            + f" and were embedded from their beginning (ids: {cut_ids[:5]})"
        )
    result = EmbeddingsResult(
        path=path, frame=frame, fingerprint=fingerprint, info=info, embedded=embedded, reused=reused,
        seconds=elapsed, load_seconds=load_s, truncated_ids=cut_ids, from_column="vector" in docs.columns,
        health=vector_health(vectors, expected_dim), dimension=dim, documents=docs.height,
        # the vectors' version: changes with any text of the partition or with the model
        data_version=digest([fingerprint, *docs["id"].to_list(), *docs["content_hash"].to_list()]),
    )
    log.info(f"partition {partition!r}: {embedded} records embedded at {result.docs_per_s:.1f} docs/s, "
             f"{reused} unchanged reused")
    return result


def _encode(encoder: Encoder, todo: pl.DataFrame, progress: Progress) -> tuple[np.ndarray, list[str], list[int]]:
    """The vectors of the records ``todo``: an image record's from its image, the others' from their text;
    with the texts embedded and their rows (what :meth:`Encoder.over_window` checks)."""
    images = todo.get_column("image") if "image" in todo.columns else None
    if images is None or images.null_count() == todo.height:
        texts = todo.get_column("text").to_list()
        return encoder.encode(texts, progress=progress), texts, list(range(todo.height))
    has = images.is_not_null().to_numpy()
    text_rows = np.flatnonzero(~has).tolist()
    texts = todo.get_column("text").gather(text_rows).to_list()
    out = np.empty((todo.height, encoder.dimension), dtype=np.float32)
    out[has] = encoder.encode_images(images.filter(pl.Series(has)).to_list(), progress=progress)
    if text_rows:
        out[~has] = encoder.encode(texts, progress=progress)
    return out, texts, text_rows


def _in_order(ids: pl.Series, cached: pl.DataFrame, todo_ids: pl.Series, fresh: np.ndarray, dim: int) -> np.ndarray:
    """Reused and freshly computed vectors, back in the documents' order."""
    out = np.empty((len(ids), dim), dtype=np.float32)
    position = {rid: i for i, rid in enumerate(ids.to_list())}
    if cached.height:
        out[[position[r] for r in cached["id"].to_list()]] = np.asarray(cached["vector"].to_list(), dtype=np.float32)
    if len(todo_ids):
        out[[position[r] for r in todo_ids.to_list()]] = fresh
    return out


# -- the partition's points -----------------------------------------------------------------------


@dataclass
class PointsResult:
    upserted: int
    deleted: int
    points: int
    """Points of the partition in the collection now."""
    documents: int
    collection_points: int
    where: str
    replaced: int = 0
    """Points whose vector changed: their place and topics were dropped, to be computed again."""

    def check(self) -> Check:
        return Check("partition_points_match_documents", self.points == self.documents,
                     {"points": self.points, "documents": self.documents})


def write_points(open_store: StoreOpener, layout: MapLayout, map_name: str, partition: str, *, levels: int,
                 log: Log, embeddings_step: str = "embeddings", documents_step: str = "documents") -> PointsResult:
    """Make the collection hold exactly the partition's records: vector + payload (record id, snippet,
    content and vector hashes, metadata); records gone from the partition are deleted.

    A point whose vector is unchanged keeps its place, topics (``levels`` topic levels) and classes (of
    the map's trained classifiers); a point whose vector changed loses them, so the placement, topics and
    classifier steps compute them again from the new vector. From the first write to the last the
    partition is marked pending (the global steps leave it
    out; a rerun completes it).
    """
    docs = read_documents(layout, partition, documents_step).drop("vector", strict=False)
    emb = read_or_set_aside(layout.embeddings(partition), pl.read_parquet, holds=f"the vectors of partition {partition!r}",
                            fix=f"materialize {embeddings_step} for the partition: it embeds its records again")
    if emb is None:
        raise EmbedMapInputError(f"partition {partition!r}: no embeddings yet; materialize {embeddings_step} for "
                                 "this partition first")
    joined = docs.join(emb.select("id", pl.col("content_hash").alias("_h"), "vector"), on="id", how="left")
    stale = joined.filter(pl.col("vector").is_null() | (pl.col("_h") != pl.col("content_hash")))
    if stale.height:
        raise EmbedMapInputError(
            f"partition {partition!r}: embeddings are missing or out of date for id(s) "
            f"{stale['id'].head(5).to_list()}; materialize {embeddings_step} for this partition first"
        )
    # an image record's copy for the model and its thumbnail stay in the documents file (the map reads the
    # thumbnails from there); the payload keeps the image's hash
    meta_cols = [c for c in docs.columns if c not in ("id", "text", "content_hash", "image", "thumbnail")]
    ids = [point_id(map_name, rid) for rid in joined["id"].to_list()]
    vectors = np.asarray(joined.get_column("vector").to_numpy(), np.float32) if joined.height \
        else np.empty((0, 1), np.float32)
    hashes = vector_hashes(vectors)
    # an unchanged vector keeps its place, its topics and its classes (the classifiers' fields)
    keep = (*placement_fields(levels), *(f for name in layout.classifier_names() for f in class_fields(name)))
    replaced = 0
    with open_store() as store:
        before = {str(r.id): r.payload for r in store.scroll(partition=partition, with_payload=[*keep, "vector_hash"])}
        payloads = []
        for pid, vhash, row in zip(ids, hashes, joined.select("id", "text", "content_hash", *meta_cols).iter_rows(named=True)):
            payload: dict[str, Any] = {"record_id": row["id"], "text": row["text"][:SNIPPET_CHARS],
                                       "content_hash": row["content_hash"], "vector_hash": vhash,
                                       **{c: row[c] for c in meta_cols}}
            old = before.get(pid)
            if old is not None and old.get("vector_hash") == vhash:  # same vector: same place, same topics
                payload.update({k: old[k] for k in keep if k in old})
            elif old is not None:
                replaced += 1
            payloads.append(payload)
        upserted, deleted = store.upsert_partition(
            partition, ids, vectors, payloads, before_write=lambda: layout.mark_pending(partition, "collection"),
        )
        in_partition = store.count(partition)
        total = store.count()
        where = store.location.describe()
    layout.clear_pending(partition)
    if replaced:
        log.info(f"partition {partition!r}: {replaced} record(s) changed their vector; they are placed and given "
                 "a topic again")
    return PointsResult(upserted=upserted, deleted=deleted, points=in_partition, documents=docs.height,
                        collection_points=total, where=where, replaced=replaced)
