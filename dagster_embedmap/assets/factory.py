"""The asset factory: one call wires a whole data map.

``documents -> embeddings -> collection`` run per partition (cost in proportion to the batch);
``projection -> topics -> map`` are global and read the collection, the map's system of record.
Every asset writes its own files under the map's home folder and returns metadata; the algorithms
live in :mod:`dagster_embedmap.core`.
"""


import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence, Union

import dagster as dg
import numpy as np
import polars as pl

from ..core.cluster import ClusterSettings
from ..core.documents import RecordSchema, prepare_documents
from ..core.duplicates import near_duplicate_pairs, topic_outliers
from ..core.embed import split_cached, stack_vectors, vector_health
from ..core.errors import EmbedMapInputError
from ..core.label import LabelSettings
from ..core.paths import MapLayout, atomic_path
from ..core.points import full_texts, level_field, points_frame, topic_levels
from ..core.points import metadata_columns as record_metadata_columns
from ..core.project import ProjectionModel, ProjectionSettings, fit_projection
from ..core.render import png_markdown, render_html_map, render_preview_png
from ..core.sources import SINGLE_PARTITION, FileSource
from ..core.store import point_id
from ..sensors import build_landing_sensor
from ..core.topic_model import update_topics
from .metadata import file_metadata, md_table, topic_tree_markdown

__all__ = ["build_embedmap_defs", "MapKeys", "default_home", "SNIPPET_CHARS"]

SNIPPET_CHARS = 500
# Payload fields that say where a point sits and which topic it has; kept while its text is unchanged.
PLACEMENT_FIELDS = ("content_hash", "x", "y", "layout_version", "topic_id", "topic_label")
Source = Union[FileSource, dg.AssetsDefinition, dg.AssetKey, str]


def default_home() -> str:
    """``$EMBEDMAP_HOME``, else ``./.embedmap``."""
    return os.environ.get("EMBEDMAP_HOME", ".embedmap")


@dataclass(frozen=True)
class MapKeys:
    """The asset keys of one map: ``<prefix>/documents`` ... ``<prefix>/map``."""

    prefix: tuple[str, ...]

    @classmethod
    def for_map(cls, name: str, key_prefix: Sequence[str] | str | None = None) -> "MapKeys":
        if key_prefix is None:
            return cls((name,))
        return cls((key_prefix,) if isinstance(key_prefix, str) else tuple(key_prefix))

    def _key(self, step: str) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, step])

    documents = property(lambda self: self._key("documents"))
    embeddings = property(lambda self: self._key("embeddings"))
    collection = property(lambda self: self._key("collection"))
    projection_model = property(lambda self: self._key("projection_model"))
    projection = property(lambda self: self._key("projection"))
    topics = property(lambda self: self._key("topics"))
    map = property(lambda self: self._key("map"))
    duplicates = property(lambda self: self._key("duplicates"))

    @property
    def ingest(self) -> list[dg.AssetKey]:
        """Per partition, before any layout: documents, embeddings, collection."""
        return [self.documents, self.embeddings, self.collection]

    @property
    def per_partition(self) -> list[dg.AssetKey]:
        return [*self.ingest, self.projection]

    @property
    def summary(self) -> list[dg.AssetKey]:
        """Global, cheap, after the points are placed: topics and the map."""
        return [self.topics, self.map]

    @property
    def global_(self) -> list[dg.AssetKey]:
        return [self.projection_model, *self.summary]


def _source_key(source: Source) -> dg.AssetKey | None:
    if isinstance(source, FileSource):
        return None
    if isinstance(source, dg.AssetsDefinition):
        return source.key
    if isinstance(source, dg.AssetKey):
        return source
    if isinstance(source, str):
        return dg.AssetKey.from_user_string(source)
    raise TypeError(f"source must be a FileSource, an asset or an asset key, got {type(source).__name__}")


def _default_partitions(source: Source) -> dg.PartitionsDefinition:
    if isinstance(source, FileSource):
        return dg.StaticPartitionsDefinition(source.partition_keys())
    if isinstance(source, dg.AssetsDefinition) and source.partitions_def is not None:
        return source.partitions_def
    return dg.StaticPartitionsDefinition([SINGLE_PARTITION])


class _Progress:
    """Logs 'records done, docs/s, time left' at most every ``every_s`` seconds."""

    def __init__(self, log, label: str, every_s: float = 10.0):
        self.log, self.label, self.every_s, self.last = log, label, every_s, 0.0

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        if done < total and elapsed - self.last < self.every_s:
            return
        self.last = elapsed
        rate = done / elapsed if elapsed > 0 else float("nan")
        left = (total - done) / rate if rate > 0 else float("nan")
        self.log.info(f"{self.label}: embedded {done}/{total} records, {rate:.1f} docs/s, about {left:.0f} s left")


def build_embedmap_defs(
    name: str,
    source: Source,
    *,
    id_column: str = "id",
    text_column: str = "text",
    vector_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    empty_text: Literal["skip", "fail"] = "skip",
    partitions_def: dg.PartitionsDefinition | None = None,
    home: str | os.PathLike | None = None,
    collection_name: str | None = None,
    key_prefix: Sequence[str] | str | None = None,
    group_name: str | None = None,
    projection: ProjectionSettings = ProjectionSettings(),
    clustering: ClusterSettings = ClusterSettings(),
    labels: LabelSettings = LabelSettings(),
    embedder_key: str = "embedder",
    qdrant_key: str = "qdrant",
    pool: str = "gpu",
    refit_cron: str | None = "0 3 * * 0",
    refit_drift_share: float | None = 0.5,
    max_runs_per_tick: int = 10,
    sensor_interval_s: int = 30,
    automations_running: bool = False,
    partitions_per_run: int = 1,
    embeddings_tags: Mapping[str, object] | None = None,
    duplicate_threshold: float = 0.95,
) -> dg.Definitions:
    """Assets, checks and jobs for one data map named ``name``.

    Args:
        name: the map's name; also its Qdrant collection (unless ``collection_name``), its key
            prefix (unless ``key_prefix``) and its asset group.
        source: where records come from: a :class:`FileSource` (parquet / CSV / JSONL files), or a
            user asset (definition or key) whose output is a polars DataFrame.
        id_column / text_column: the record id and the text to embed.
        vector_column: a column of precomputed vectors; when given, the model is never loaded.
        metadata_columns: columns copied to the payload and the map's hover; ``None`` keeps all others.
        empty_text: ``"skip"`` null / blank texts (counted in metadata) or ``"fail"`` on them.
        partitions_def: the per-partition assets' partitions; by default the source asset's, the
            file source's (one per file, or per value of its partition column), else one ``all``.
        home: folder for the map's files (documents, embeddings, map.html, ...); default
            ``$EMBEDMAP_HOME`` or ``./.embedmap``.
        embedder_key / qdrant_key: resource keys of :class:`EmbedderResource` / :class:`QdrantResource`.
        pool: Dagster concurrency pool of the embeddings step (limit it to the GPUs you have).
        refit_cron: cron of the schedule that refits the layout (created stopped); ``None``: no schedule.
        refit_drift_share: a sensor (created stopped) refits the layout once more than this share of
            the records arrived after the last fit; ``None``: no sensor.
        max_runs_per_tick: with a file glob source and dynamic partitions, the landing sensor (one
            partition per file) requests at most this many partition runs per tick.
        sensor_interval_s: seconds between two evaluations of the landing sensor.
        partitions_per_run: a backfill of the per-partition assets runs this many partitions per run:
            one process and one model load serve them all (each partition is still validated,
            written and checked on its own).
        automations_running: create the refit schedule and the sensors running instead of stopped.
        embeddings_tags: op tags of the embeddings step, e.g. what a Kubernetes run or step launcher
            reads to give it a GPU (``{"dagster-k8s/config": {"container_config": {"resources":
            {"limits": {"nvidia.com/gpu": 1}}}}}``; see :func:`dagster_embedmap.k8s_gpu_tags`).
        duplicate_threshold: cosine similarity from which two records count as near-duplicates.

    New partitions cost only themselves: their points are placed with the current layout model and
    join their neighbours' topics. Declarative automation refreshes placement, topics and the map when
    partitions land (the layout model itself is refitted only when missing, on the schedule, by the
    drift sensor, or by hand).

    The resources themselves are not included: add them with ``embedmap_resources()`` or your own.
    """
    if not name or any(ch in name for ch in "/\\"):
        raise ValueError(f"map name must be non-empty without slashes, got {name!r}")
    keys = MapKeys.for_map(name, key_prefix)
    group = group_name or name.replace("-", "_")
    collection = collection_name or name
    layout = MapLayout(home or default_home(), name)
    schema = RecordSchema(
        id_column=id_column,
        text_column=text_column,
        vector_column=vector_column,
        metadata_columns=tuple(metadata_columns) if metadata_columns is not None else None,
        empty_text=empty_text,
    )
    pdef = partitions_def or _default_partitions(source)
    # where a point sits and its topics at every level: kept while the record's text is unchanged
    placement = PLACEMENT_FIELDS + tuple(level_field(level, kind) for level in range(clustering.levels)
                                         for kind in ("id", "label"))
    source_key = _source_key(source)
    eager = dg.AutomationCondition.eager()

    def write_documents(context: dg.AssetExecutionContext, partition: str, records: pl.DataFrame) -> dg.MaterializeResult:
        prepared = prepare_documents(records, schema, partition)
        path = layout.documents(partition)
        with atomic_path(path) as tmp:
            prepared.frame.write_parquet(tmp)
        preview = prepared.frame.head(5)
        meta = file_metadata(path, prepared.frame)
        meta.update(
            {
                "skipped_empty_text": prepared.skipped_empty_text,
                "control_characters_replaced": prepared.control_characters,
                "metadata_columns": prepared.metadata_columns,
                "preview": dg.MetadataValue.md(
                    md_table(["id", "text"], zip(preview["id"].to_list(), preview["text"].to_list()), max_chars=100)
                ),
            }
        )
        if prepared.control_characters:
            context.log.warning(
                f"partition {partition!r}: control characters replaced by spaces in {prepared.control_characters} "
                f"text(s) of column {text_column!r} (ids: {prepared.control_ids[:5]})"
            )
        if prepared.skipped_empty_text:
            context.log.warning(
                f"partition {partition!r}: skipped {prepared.skipped_empty_text} record(s) with empty text "
                f"in column {text_column!r} (ids: {prepared.skipped_ids[:5]})"
            )
        return dg.MaterializeResult(metadata=meta)

    common: dict = dict(partitions_def=pdef, group_name=group)
    if partitions_per_run > 1:  # a backfill runs that many partitions in one run (one model load, one process)
        common["backfill_policy"] = dg.BackfillPolicy.multi_run(max_partitions_per_run=partitions_per_run)
    if source_key is None:
        assert isinstance(source, FileSource)

        @dg.asset(
            key=keys.documents,
            kinds={"polars", "parquet"},
            automation_condition=eager,
            description=f"Records of one partition from {source.path}, validated: id, text, content hash, metadata.",
            **common,
        )
        def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            return _each_partition(context, lambda p: write_documents(context, p, source.read_partition(p)))

    else:

        @dg.asset(
            key=keys.documents,
            ins={"records": dg.AssetIn(key=source_key)},
            kinds={"polars", "parquet"},
            automation_condition=eager,
            description=f"Records of one partition of {source_key.to_user_string()}, validated: id, text, "
            "content hash, metadata.",
            **common,
        )
        def documents(context: dg.AssetExecutionContext, records) -> dg.MaterializeResult:
            # a run over several partitions receives {partition: frame}
            return _each_partition(context, lambda p: write_documents(
                context, p, records[p] if isinstance(records, dict) else records))

    @dg.asset(
        key=keys.embeddings,
        deps=[keys.documents],
        required_resource_keys={embedder_key},
        pool=pool,
        op_tags=dict(embeddings_tags or {}),
        kinds={"pytorch", "parquet"},
        automation_condition=eager,
        check_specs=[dg.AssetCheckSpec("embeddings_sane", asset=keys.embeddings,
                                       description="One finite, non-zero vector of the model's dimension per record.")],
        description="One vector per record (sentence-transformers, or the source's own vector column), as parquet.",
        **common,
    )
    def embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        # several partitions in one run share one encoder: the model loads once per run
        return _each_partition(context, lambda p: embed_partition(context, p))

    def embed_partition(context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
        docs = pl.read_parquet(layout.documents(partition))
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
            encoder = getattr(context.resources, embedder_key).get_encoder()
            fingerprint = encoder.fingerprint()
            previous = pl.read_parquet(path) if path.exists() else None
            cached, todo = split_cached(docs, previous, fingerprint)
            reused = cached.height
            cut: set[str] = set()
            if todo.height:
                loading = time.perf_counter()
                expected_dim = encoder.dimension  # loads the model outside the timed part: docs/s is encoding alone
                started = time.perf_counter()
                load_s = started - loading
                texts = todo.get_column("text").to_list()
                fresh = encoder.encode(texts, progress=_Progress(context.log, f"partition {partition!r}"))
                encoded = time.perf_counter()
                info = {k: v for k, v in encoder.identity().items() if k != "dimension"}
                cut = set(todo["id"].gather(encoder.over_window(texts)).to_list())
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
        embedded = docs.height - reused
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
        path = layout.embeddings(partition)
        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
        health = vector_health(vectors, expected_dim)
        rate = embedded / elapsed if elapsed > 0 and embedded else 0.0
        meta = file_metadata(path, frame)
        meta.update({k: dg.MetadataValue.text(str(v)) for k, v in info.items()})
        meta.update({"dimension": dim, "docs_per_s": round(rate, 1), "seconds": round(elapsed, 2),
                     "model_load_seconds": round(load_s, 2), "embedded": embedded, "reused": reused})
        cut_ids = docs["id"].filter(truncated.fill_null(False)).to_list()
        if "vector" not in docs.columns:
            # texts longer than the model's window: the vector describes their beginning only
            meta["truncated_texts"] = len(cut_ids)
        if cut_ids:
            context.log.warning(
                f"partition {partition!r}: {len(cut_ids)} text(s) are longer than the model's window"
                + (f" of {info['max_seq_length']} tokens" if "max_seq_length" in info else "")
                + f" and were embedded from their beginning (ids: {cut_ids[:5]})"
            )
        context.log.info(
            f"partition {partition!r}: {embedded} records embedded at {rate:.1f} docs/s, {reused} unchanged reused"
        )
        return dg.MaterializeResult(
            metadata=meta,
            # the vectors' version: changes with any text of the partition or with the model, which marks
            # the collection and everything after it stale in the UI; a rerun that changes nothing keeps it
            data_version=dg.DataVersion(_digest([fingerprint, *docs["id"].to_list(), *docs["content_hash"].to_list()])),
            check_results=[
                dg.AssetCheckResult(
                    check_name="embeddings_sane",
                    passed=health.pop("passed") and len(vectors) == docs.height,
                    metadata={**health, "rows": len(vectors), "documents": docs.height},
                )
            ],
        )

    @dg.asset(
        key=keys.collection,
        deps=[keys.embeddings],
        required_resource_keys={qdrant_key},
        kinds={"qdrant"},
        automation_condition=eager,
        check_specs=[dg.AssetCheckSpec("partition_points_match_documents", asset=keys.collection,
                                       description="The collection holds exactly one point per document of the partition.")],
        description=f"The partition's points in Qdrant collection {collection!r}: vector + payload (record id, "
        "partition, text snippet, metadata). Rerunning leaves one point per record; unchanged records keep "
        "their place and topic.",
        **common,
    )
    def collection_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return _each_partition(context, lambda p: upsert_partition(context, p))

    def upsert_partition(context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
        docs = pl.read_parquet(layout.documents(partition)).drop("vector", strict=False)
        emb = pl.read_parquet(layout.embeddings(partition))
        joined = docs.join(emb.select("id", pl.col("content_hash").alias("_h"), "vector"), on="id", how="left")
        stale = joined.filter(pl.col("vector").is_null() | (pl.col("_h") != pl.col("content_hash")))
        if stale.height:
            raise EmbedMapInputError(
                f"partition {partition!r}: embeddings are missing or out of date for id(s) "
                f"{stale['id'].head(5).to_list()}; materialize {keys.embeddings.to_user_string()} for this partition first"
            )
        meta_cols = [c for c in docs.columns if c not in ("id", "text", "content_hash")]
        ids = [point_id(name, rid) for rid in joined["id"].to_list()]
        vectors = joined.get_column("vector").to_numpy() if joined.height else np.empty((0, 1), np.float32)
        with getattr(context.resources, qdrant_key).open(collection) as store:
            # a record whose text is unchanged keeps its place on the map and its topic
            kept = {str(r.id): r.payload for r in store.scroll(partition=partition, with_payload=list(placement))}
            payloads = []
            for pid, row in zip(ids, joined.select("id", "text", "content_hash", *meta_cols).iter_rows(named=True)):
                payload = {"record_id": row["id"], "text": row["text"][:SNIPPET_CHARS], "content_hash": row["content_hash"],
                           **{c: row[c] for c in meta_cols}}
                before = kept.get(pid) or {}
                if before.get("content_hash") == row["content_hash"]:
                    payload.update({k: before[k] for k in placement if k in before and k != "content_hash"})
                payloads.append(payload)
            # from the first write until the last, the collection may hold half of this partition: the
            # global steps leave a pending partition out, and a rerun of this step completes it
            upserted, deleted = store.upsert_partition(
                partition, ids, np.asarray(vectors, np.float32), payloads,
                before_write=lambda: layout.mark_pending(partition, "collection"),
            )
            in_partition = store.count(partition)
            total = store.count()
            where = store.location.describe()
        layout.clear_pending(partition)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": in_partition,
                "collection": collection,
                "qdrant": where,
                "points_upserted": upserted,
                "stale_points_deleted": deleted,
                "collection_points": total,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="partition_points_match_documents",
                    passed=in_partition == docs.height,
                    metadata={"points": in_partition, "documents": docs.height},
                )
            ],
        )

    def layout_model() -> ProjectionModel | None:
        """The current layout model, if one was fitted."""
        return ProjectionModel.load(layout.projection_model) if layout.projection_model.exists() else None

    @dg.asset(
        key=keys.projection_model,
        deps=[keys.collection],
        required_resource_keys={qdrant_key},
        kinds={"umap"},
        # fitted by automation only while missing (once its partitions exist); refitted when asked, by the
        # refit schedule or by the drift sensor, never because a partition landed
        automation_condition=(dg.AutomationCondition.missing() & ~dg.AutomationCondition.any_deps_missing()
                              & ~dg.AutomationCondition.in_progress()),
        description=f"The 2-D layout model: UMAP fitted on a sample of up to {projection.sample_size} points, "
        "stratified across partitions, versioned, and aligned to the previous version (orthogonal Procrustes "
        "on the shared points) so a refit does not rotate or flip the map.",
        group_name=group,
    )
    def projection_model_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with getattr(context.resources, qdrant_key).open(collection) as store:
            ids, vectors, payloads = store.read_vectors()
        ids, vectors, payloads = _without_pending(context, ids, vectors, payloads)
        if len(ids) < 3:
            raise EmbedMapInputError(
                f"collection {collection!r} holds {len(ids)} point(s); a projection needs at least 3 — "
                f"materialize {keys.collection.to_user_string()} for some partitions first"
            )
        previous = layout_model()
        previous_xy = {pid: (p["x"], p["y"]) for pid, p in zip(ids, payloads)
                       if p.get("x") is not None and p.get("y") is not None} if previous is not None else None
        started = time.perf_counter()
        model = fit_projection(ids, vectors, [str(p.get("partition")) for p in payloads], projection,
                               previous=previous, previous_xy=previous_xy)
        seconds = time.perf_counter() - started
        model.save(layout.projection_model)
        _write_json(layout.projection_model_info, {"version": model.version, "points_at_fit": model.points_at_fit,
                                                    "fitted_on": len(model.fitted)})
        return dg.MaterializeResult(
            metadata={
                "version": model.version,
                "fitted_on": len(model.fitted),
                "points": len(ids),
                "alignment_disparity": round(float(model.alignment.disparity), 5),
                "aligned_to_version": previous.version if previous is not None else 0,
                "seconds": round(seconds, 2),
                "n_neighbors": projection.n_neighbors,
                "min_dist": projection.min_dist,
                "dagster/uri": dg.MetadataValue.text(layout.projection_model.as_uri()),
            },
            data_version=dg.DataVersion(f"layout-v{model.version}"),
        )

    @dg.asset(
        key=keys.projection,
        deps=[keys.collection, keys.projection_model],
        required_resource_keys={qdrant_key},
        kinds={"umap"},
        automation_condition=eager,
        check_specs=[dg.AssetCheckSpec("every_point_projected", asset=keys.projection,
                                       description="Every point of the partition has finite 2-D coordinates.")],
        description="The partition's 2-D coordinates from the layout model; x, y written to the payload. Points "
        "already placed by the current layout version keep their place.",
        **common,
    )
    def projection_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return _each_partition(context, lambda p: place_partition(context, p))

    def place_partition(context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
        model = layout_model()
        if model is None:
            raise EmbedMapInputError(
                f"partition {partition!r}: no layout model yet; materialize {keys.projection_model.to_user_string()} first"
            )
        resource = getattr(context.resources, qdrant_key)
        with resource.open(collection) as store:
            ids, vectors, payloads = store.read_vectors(partition)
        todo = [i for i, p in enumerate(payloads) if p.get("layout_version") != model.version or p.get("x") is None]
        started = time.perf_counter()
        xy = model.place([ids[i] for i in todo], vectors[todo]) if todo else np.empty((0, 2), np.float32)
        seconds = time.perf_counter() - started
        if todo:
            with resource.open(collection) as store:
                store.set_payloads({ids[i]: {"x": float(x), "y": float(y), "layout_version": model.version}
                                    for i, (x, y) in zip(todo, xy)})
        placed = {ids[i]: (float(x), float(y)) for i, (x, y) in zip(todo, xy)}
        coords = [placed.get(pid) or (payloads[i].get("x"), payloads[i].get("y")) for i, pid in enumerate(ids)]
        frame = pl.DataFrame(
            {
                "point_id": ids,
                "record_id": [str(p.get("record_id")) for p in payloads],
                "x": [c[0] for c in coords],
                "y": [c[1] for c in coords],
            },
            schema={"point_id": pl.String, "record_id": pl.String, "x": pl.Float32, "y": pl.Float32},
        )
        path = layout.coordinates(partition)
        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
        finite = int(frame.select((pl.col("x").is_finite() & pl.col("y").is_finite()).sum()).item() or 0)
        meta = file_metadata(path, frame)
        meta.update({"placed": len(todo), "kept": len(ids) - len(todo), "layout_version": model.version,
                     "seconds": round(seconds, 2)})
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                dg.AssetCheckResult(
                    check_name="every_point_projected",
                    passed=finite == len(ids),
                    metadata={"projected": finite, "points": len(ids)},
                )
            ],
        )

    class TopicsConfig(dg.Config):
        recluster: bool = False
        """Run HDBSCAN over the whole map again (topic ids are matched to the previous ones). Without it,
        only points without a topic get one; a new layout version always reclusters."""

    @dg.asset(
        key=keys.topics,
        deps=[keys.projection],
        required_resource_keys={qdrant_key},
        kinds={"hdbscan"},
        automation_condition=eager,
        description="Topics: HDBSCAN clusters of the 2-D map named by c-TF-IDF keywords. New points join "
        "their neighbours' topic; a recluster (after a refit, or when asked) keeps matched topics' ids and labels "
        "and records births, merges and splits. Points of removed partitions are dropped here.",
        group_name=group,
    )
    def topics_asset(context: dg.AssetExecutionContext, config: TopicsConfig) -> dg.MaterializeResult:
        resource = getattr(context.resources, qdrant_key)
        current = set(pdef.get_partition_keys(dynamic_partitions_store=context.instance))
        with resource.open(collection) as store:
            points = points_frame(store)  # one pass over the collection serves the pruning and the topics
            pruned = {p: store.delete_partition(p) for p in set(points["partition"].to_list()) - current}
        points = points.filter(~pl.col("partition").is_in(list(pruned)))
        pending = _pending(context)
        points = points.filter(~pl.col("partition").is_in(list(pending)))
        for partition in pruned:
            layout.remove_partition_files(partition)
        if pruned:
            context.log.info(f"removed the points of partitions no longer present: {pruned}")
        points = points.filter(pl.col("x").is_not_null())
        model = layout_model()
        before = _read_json(layout.topics_state)
        relayout = model is not None and before.get("layout_version") != model.version
        old_table = pl.read_parquet(layout.topics) if layout.topics.exists() else None
        depth = topic_levels(points.columns)
        previous = [points[level_field(level, "id")].fill_null(-1).to_numpy() for level in range(depth)]
        if not previous:
            previous = [points["topic_id"].fill_null(-1).to_numpy()]
        started = time.perf_counter()
        result = update_topics(
            points.select("x", "y").to_numpy(), previous, old_table, lambda: _texts_for(points),
            recluster=config.recluster or relayout, clustering=clustering, labels=labels,
        )
        seconds = time.perf_counter() - started
        # a recluster renames topics too, so every point is written; otherwise only the newly assigned ones
        with resource.open(collection) as store:
            store.set_payloads({
                point_id(name, rid): result.payload(i)
                for i, rid in enumerate(points["id"].to_list()) if result.changed[i]
            })
        table = result.table
        with atomic_path(layout.topics) as tmp:
            table.write_parquet(tmp)
        topic_ids = result.tree.fine
        state = {
            "layout_version": model.version if model else None,
            "reclustered": result.reclustered,
            # what HDBSCAN itself clustered at the last recluster (new points since then are assigned)
            "clustered_share": (float(result.clustered.mean()) if len(topic_ids) else 0.0) if result.reclustered
            else before.get("clustered_share"),
        }
        _write_json(layout.topics_state, state)
        meta = file_metadata(layout.topics, table)
        fine_level = table.filter(pl.col("level") == table["level"].max()) if table.height else table
        meta.update(
            {
                "topics": int(fine_level.filter(pl.col("topic_id") >= 0).height),
                "topics_per_level": [int(table.filter((pl.col("level") == level) & (pl.col("topic_id") >= 0)).height)
                                     for level in range(result.tree.depth)],
                "reclustered": result.reclustered,
                "points_assigned": int(result.changed.sum()),
                "share_clustered": round(float(state["clustered_share"] or 0.0), 4),
                "share_assigned": round(float((topic_ids >= 0).mean()), 4) if len(topic_ids) else 0.0,
                "removed_partitions": sorted(pruned),
                "incomplete_partitions": sorted(pending),
                "seconds": round(seconds, 2),
                "topic_tree": dg.MetadataValue.md(topic_tree_markdown(table)),
            }
        )
        if result.match is not None:
            meta["topic_changes"] = dg.MetadataValue.json(result.match.to_metadata())
        return dg.MaterializeResult(metadata=meta)

    def _pending(context) -> set[str]:
        """Partitions whose points are half written (a collection step interrupted): left off, said loudly."""
        pending = layout.pending_partitions()
        if pending:
            context.log.warning(
                f"partition(s) {sorted(pending)} of map {name!r} were interrupted while writing their points; they "
                f"are left out until {keys.collection.to_user_string()} is materialized for them again"
            )
        return pending

    def _without_pending(context, ids, vectors, payloads):
        pending = _pending(context)
        if not pending:
            return ids, vectors, payloads
        keep = [i for i, p in enumerate(payloads) if p.get("partition") not in pending]
        return [ids[i] for i in keep], vectors[keep], [payloads[i] for i in keep]

    def _texts_for(points: pl.DataFrame) -> list[str]:
        return full_texts(points, layout.documents)

    @dg.asset(
        key=keys.map,
        deps=[keys.topics],
        required_resource_keys={qdrant_key},
        kinds={"html"},
        automation_condition=eager,
        check_specs=[
            # the map's checks carry its automation condition, so the runs automation launches for the
            # map select them too and record their results (per-partition checks cannot: a partitioned
            # check would break plain asset backfills, which select assets without their checks)
            dg.AssetCheckSpec("collection_matches_documents", automation_condition=eager, asset=keys.map,
                              description="The collection holds as many points as there are documents in all partitions."),
            dg.AssetCheckSpec("every_point_mapped", automation_condition=eager, asset=keys.map,
                              description="Every point in the collection has coordinates and a topic."),
        ],
        description="The data map: an interactive HTML file, a PNG preview and the topic table, read from Qdrant.",
        group_name=group,
    )
    def map_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with getattr(context.resources, qdrant_key).open(collection) as store:
            points = points_frame(store)
            total = store.count()
        pending = _pending(context)
        points = points.filter(~pl.col("partition").is_in(list(pending)))
        partition_keys = pdef.get_partition_keys(dynamic_partitions_store=context.instance)
        documents_total = sum(
            pl.scan_parquet(layout.documents(p)).select(pl.len()).collect().item()
            for p in partition_keys
            if layout.documents(p).exists()
        )
        extra = record_metadata_columns(points.columns)
        title = f"{name}: {points.height} records"
        drawable = points.drop_nulls(["x", "y"]).with_columns(pl.col("topic_id").fill_null(-1))
        render_preview_png(drawable, layout.png, title=title)
        render_html_map(drawable, layout.html, title=title, extra_columns=extra)
        unmapped = points.filter(pl.col("x").is_null() | pl.col("topic_id").is_null() | (pl.col("topic_id") < 0)).height
        table = pl.read_parquet(layout.topics) if layout.topics.exists() else None
        meta = file_metadata(layout.html)
        meta.update(
            {
                "dagster/row_count": points.height,
                "preview": dg.MetadataValue.md(png_markdown(layout.png, alt=f"{name} map")),
                "png": dg.MetadataValue.path(str(layout.png)),
                "html_bytes": layout.html.stat().st_size,
            }
        )
        if table is not None:
            meta["topic_tree"] = dg.MetadataValue.md(topic_tree_markdown(table))
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                dg.AssetCheckResult(
                    check_name="collection_matches_documents",
                    passed=total == documents_total and not pending,
                    metadata={"collection_points": total, "documents": documents_total,
                              "incomplete_partitions": sorted(pending)},
                    description=(f"partition(s) {sorted(pending)} were interrupted while writing their points and "
                                 "are left off the map; rematerialize their collection step") if pending else None,
                ),
                dg.AssetCheckResult(
                    check_name="every_point_mapped",
                    passed=unmapped == 0,
                    metadata={"unmapped_points": unmapped, "points": points.height},
                ),
            ],
        )

    @dg.asset(
        key=keys.duplicates,
        deps=[keys.topics],
        required_resource_keys={qdrant_key},
        kinds={"qdrant", "parquet"},
        description=f"Near-duplicate pairs (cosine similarity >= {duplicate_threshold}, found through Qdrant's "
        "nearest-neighbour search) and the points farthest from their topic. Materialize it when you want it: "
        "it asks Qdrant about every point.",
        group_name=group,
    )
    def duplicates_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with getattr(context.resources, qdrant_key).open(collection) as store:
            ids, vectors, payloads = _without_pending(context, *store.read_vectors())
            pairs = near_duplicate_pairs(store, ids, vectors, threshold=duplicate_threshold)
        record = {pid: str(p.get("record_id")) for pid, p in zip(ids, payloads)}
        pairs = pairs.with_columns(
            pl.col("a").replace_strict(record, return_dtype=pl.String).alias("id_a"),
            pl.col("b").replace_strict(record, return_dtype=pl.String).alias("id_b"),
        ).select("id_a", "id_b", "similarity")
        placed = [i for i, p in enumerate(payloads) if p.get("x") is not None and p.get("topic_id") is not None]
        xy = np.asarray([[payloads[i]["x"], payloads[i]["y"]] for i in placed], dtype=np.float64).reshape(-1, 2)
        order, score = topic_outliers(xy, np.asarray([payloads[i]["topic_id"] for i in placed]), top=50)
        outliers = pl.DataFrame(
            {"id": [record[ids[placed[i]]] for i in order],
             "topic_label": [payloads[placed[i]].get("topic_label") for i in order],
             "distance": score},
            schema={"id": pl.String, "topic_label": pl.String, "distance": pl.Float64},
        )
        with atomic_path(layout.duplicates) as tmp:
            pairs.write_parquet(tmp)
        with atomic_path(layout.outliers) as tmp:
            outliers.write_parquet(tmp)
        meta = file_metadata(layout.duplicates, pairs)
        meta.update({
            "duplicate_pairs": pairs.height,
            "records_in_pairs": len(set(pairs["id_a"]) | set(pairs["id_b"])),
            "threshold": duplicate_threshold,
            "outliers_file": dg.MetadataValue.path(str(layout.outliers)),
            "pairs": dg.MetadataValue.md(md_table(["record", "record", "similarity"],
                                                  [(a, b, f"{v:.3f}") for a, b, v in pairs.head(20).iter_rows()])),
            "outliers": dg.MetadataValue.md(md_table(["record", "topic", "distance / typical"],
                                                     [(i, t, f"{d:.1f}") for i, t, d in outliers.head(20).iter_rows()])),
        })
        return dg.MaterializeResult(metadata=meta)

    ingest_job = dg.define_asset_job(
        f"{group}_partitions", selection=dg.AssetSelection.assets(*keys.ingest), partitions_def=pdef,
        description=f"Documents, embeddings and Qdrant points of one partition of map {name!r} (what a landed "
        "file or a backfill runs; automation places the points and refreshes topics and the map after it).",
    )
    refit_job = dg.define_asset_job(
        f"{group}_refit", selection=dg.AssetSelection.assets(keys.projection_model),
        description=f"Refit the layout model of {name!r}; automation then re-places every partition and reclusters.",
    )
    map_job = dg.define_asset_job(
        f"{group}_map", selection=dg.AssetSelection.assets(*keys.summary),
        description=f"Topics and the rendered map of {name!r}, from the whole collection.",
    )
    schedules = []
    if refit_cron:
        schedules.append(dg.ScheduleDefinition(
            name=f"{group}_refit_schedule", job=refit_job, cron_schedule=refit_cron,
            default_status=dg.DefaultScheduleStatus.RUNNING if automations_running else dg.DefaultScheduleStatus.STOPPED,
            description=f"Periodic full refit of the layout of {name!r} (aligned to the previous layout).",
        ))
    sensor_status = dg.DefaultSensorStatus.RUNNING if automations_running else dg.DefaultSensorStatus.STOPPED
    sensors = [_drift_sensor(f"{group}_drift_sensor", layout, pdef, refit_job, refit_drift_share, sensor_status)
               ] if refit_drift_share else []
    if isinstance(pdef, dg.DynamicPartitionsDefinition) and isinstance(source, FileSource) and source.per_file:
        sensors.append(build_landing_sensor(f"{group}_landing_sensor", source, pdef, ingest_job, cleanup_job=map_job,
                                            max_runs_per_tick=max_runs_per_tick,
                                            minimum_interval_seconds=sensor_interval_s, default_status=sensor_status))
    return dg.Definitions(
        assets=[documents, embeddings, collection_asset, projection_model_asset, projection_asset, topics_asset, map_asset,
                duplicates_asset],
        jobs=[ingest_job, refit_job, map_job],
        schedules=schedules,
        sensors=sensors,
    )


# metadata that adds up over the partitions of a run
_SUMMED = ("dagster/row_count", "skipped_empty_text", "control_characters_replaced", "embedded", "reused",
           "truncated_texts", "seconds", "model_load_seconds", "points_upserted", "stale_points_deleted", "placed",
           "kept")


def _each_partition(context: dg.AssetExecutionContext, one) -> dg.MaterializeResult:
    """``one(partition)`` for every partition of the run. A run of one partition returns its result
    as it is; a run of several (a backfill with ``partitions_per_run``) returns one result for all of
    them: the sums of what adds up, a row per partition, and each check passed only if it passed for
    every partition (the failing ones named)."""
    keys = list(context.partition_keys)
    if len(keys) == 1:
        return one(keys[0])
    results = [one(key) for key in keys]
    meta: dict[str, object] = {"partitions": len(keys)}
    for name in _SUMMED:
        values = [r.metadata.get(name) for r in results if r.metadata]
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            meta[name] = round(sum(values), 2) if any(isinstance(v, float) for v in values) else sum(values)
    meta["per_partition"] = dg.MetadataValue.md(md_table(
        ["partition", "rows"], [(k, (r.metadata or {}).get("dagster/row_count", "")) for k, r in zip(keys, results)]))
    checks: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for key, result in zip(keys, results):
        for check in result.check_results or []:
            checks.setdefault(check.check_name, []).append((key, check))
    merged = [
        dg.AssetCheckResult(
            check_name=name,
            passed=all(c.passed for _, c in pairs),
            metadata={"partitions": len(pairs), "failed_partitions": [k for k, c in pairs if not c.passed]},
        )
        for name, pairs in checks.items()
    ]
    return dg.MaterializeResult(metadata=meta, check_results=merged)


def _read_json(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_json(path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _drift_sensor(name: str, layout: MapLayout, pdef: dg.PartitionsDefinition, refit_job, share: float,
                  status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED) -> dg.SensorDefinition:
    """Requests a refit once more than ``share`` of the map's records arrived after the last fit."""

    @dg.sensor(name=name, job=refit_job, minimum_interval_seconds=300, default_status=status,
               description=f"Refits the layout when over {share:.0%} of the records are newer than the layout model.")
    def drift(context: dg.SensorEvaluationContext):
        info = _read_json(layout.projection_model_info)
        if not info:
            return dg.SkipReason("no layout model yet")
        keys = pdef.get_partition_keys(dynamic_partitions_store=context.instance)
        total = sum(pl.scan_parquet(layout.documents(k)).select(pl.len()).collect().item()
                    for k in keys if layout.documents(k).exists())
        new_share = (total - info["points_at_fit"]) / total if total else 0.0
        if new_share <= share:
            return dg.SkipReason(f"{new_share:.1%} of {total} records are newer than layout v{info['version']}")
        return dg.RunRequest(run_key=f"drift-v{info['version']}",
                             tags={"embedmap/reason": f"{new_share:.1%} new since layout v{info['version']}"})

    return drift


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]


def _in_order(ids: pl.Series, cached: pl.DataFrame, todo_ids: pl.Series, fresh: np.ndarray, dim: int) -> np.ndarray:
    """Reused and freshly computed vectors, back in the documents' order."""
    out = np.empty((len(ids), dim), dtype=np.float32)
    position = {rid: i for i, rid in enumerate(ids.to_list())}
    if cached.height:
        out[[position[r] for r in cached["id"].to_list()]] = np.asarray(cached["vector"].to_list(), dtype=np.float32)
    if len(todo_ids):
        out[[position[r] for r in todo_ids.to_list()]] = fresh
    return out
