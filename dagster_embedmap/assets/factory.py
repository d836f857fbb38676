"""The asset factory: one call wires a whole data map.

``documents -> embeddings -> collection`` run per partition (cost in proportion to the batch);
``projection -> topics -> map`` are global and read the collection, the map's system of record.
Every asset writes its own files under the map's home folder and returns metadata; the algorithms
live in :mod:`dagster_embedmap.core`.
"""


import hashlib
import os
import time
from dataclasses import dataclass
from typing import Literal, Sequence, Union

import dagster as dg
import numpy as np
import polars as pl

from ..core.cluster import ClusterSettings, HDBSCANTopics
from ..core.documents import RecordSchema, prepare_documents
from ..core.embed import split_cached, stack_vectors, vector_health
from ..core.errors import EmbedMapInputError
from ..core.label import LabelSettings, ctfidf_keywords
from ..core.paths import MapLayout, atomic_path
from ..core.points import points_frame
from ..core.project import ProjectionSettings, UMAPProjector
from ..core.render import png_markdown, render_html_map, render_preview_png
from ..core.sources import SINGLE_PARTITION, FileSource
from ..core.store import point_id
from .metadata import file_metadata, md_table

__all__ = ["build_embedmap_defs", "MapKeys", "default_home", "SNIPPET_CHARS"]

SNIPPET_CHARS = 500
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
    projection = property(lambda self: self._key("projection"))
    topics = property(lambda self: self._key("topics"))
    map = property(lambda self: self._key("map"))

    @property
    def per_partition(self) -> list[dg.AssetKey]:
        return [self.documents, self.embeddings, self.collection]

    @property
    def global_(self) -> list[dg.AssetKey]:
        return [self.projection, self.topics, self.map]


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
    source_key = _source_key(source)

    def write_documents(context: dg.AssetExecutionContext, records: pl.DataFrame) -> dg.MaterializeResult:
        partition = context.partition_key
        prepared = prepare_documents(records, schema, partition)
        path = layout.documents(partition)
        with atomic_path(path) as tmp:
            prepared.frame.write_parquet(tmp)
        preview = prepared.frame.head(5)
        meta = file_metadata(path, prepared.frame)
        meta.update(
            {
                "skipped_empty_text": prepared.skipped_empty_text,
                "metadata_columns": prepared.metadata_columns,
                "preview": dg.MetadataValue.md(
                    md_table(["id", "text"], zip(preview["id"].to_list(), preview["text"].to_list()), max_chars=100)
                ),
            }
        )
        if prepared.skipped_empty_text:
            context.log.warning(
                f"partition {partition!r}: skipped {prepared.skipped_empty_text} record(s) with empty text "
                f"in column {text_column!r} (ids: {prepared.skipped_ids[:5]})"
            )
        return dg.MaterializeResult(metadata=meta)

    common = dict(partitions_def=pdef, group_name=group)
    if source_key is None:
        assert isinstance(source, FileSource)

        @dg.asset(
            key=keys.documents,
            kinds={"polars", "parquet"},
            description=f"Records of one partition from {source.path}, validated: id, text, content hash, metadata.",
            **common,
        )
        def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            return write_documents(context, source.read_partition(context.partition_key))

    else:

        @dg.asset(
            key=keys.documents,
            ins={"records": dg.AssetIn(key=source_key)},
            kinds={"polars", "parquet"},
            description=f"Records of one partition of {source_key.to_user_string()}, validated: id, text, "
            "content hash, metadata.",
            **common,
        )
        def documents(context: dg.AssetExecutionContext, records: pl.DataFrame) -> dg.MaterializeResult:
            return write_documents(context, records)

    @dg.asset(
        key=keys.embeddings,
        deps=[keys.documents],
        required_resource_keys={embedder_key},
        pool=pool,
        kinds={"pytorch", "parquet"},
        check_specs=[dg.AssetCheckSpec("embeddings_sane", asset=keys.embeddings,
                                       description="One finite, non-zero vector of the model's dimension per record.")],
        description="One vector per record (sentence-transformers, or the source's own vector column), as parquet.",
        **common,
    )
    def embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        partition = context.partition_key
        docs = pl.read_parquet(layout.documents(partition))
        path = layout.embeddings(partition)
        load_s, reused = 0.0, 0
        if "vector" in docs.columns:
            started = time.perf_counter()
            vectors = stack_vectors(docs.get_column("vector").to_list())
            fingerprint = f"column:{vector_column}"
            info: dict[str, object] = {"model": f"vectors from column {vector_column!r}", "device": "none"}
            expected_dim = vectors.shape[1]
        else:
            encoder = getattr(context.resources, embedder_key).get_encoder()
            fingerprint = encoder.fingerprint()
            previous = pl.read_parquet(path) if path.exists() else None
            cached, todo = split_cached(docs, previous, fingerprint)
            reused = cached.height
            if todo.height:
                loading = time.perf_counter()
                expected_dim = encoder.dimension  # loads the model outside the timed part: docs/s is encoding alone
                started = time.perf_counter()
                load_s = started - loading
                fresh = encoder.encode(
                    todo.get_column("text").to_list(), progress=_Progress(context.log, f"partition {partition!r}")
                )
                info = {k: v for k, v in encoder.identity().items() if k != "dimension"}
            else:  # every text unchanged under the same model: the model is not even loaded
                started = time.perf_counter()
                expected_dim = len(cached["vector"][0]) if reused else 0
                fresh = np.empty((0, expected_dim), dtype=np.float32)
                info = {"model": encoder.settings.model, "fingerprint": fingerprint, "device": "not loaded"}
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
        check_specs=[dg.AssetCheckSpec("partition_points_match_documents", asset=keys.collection,
                                       description="The collection holds exactly one point per document of the partition.")],
        description=f"The partition's points in Qdrant collection {collection!r}: vector + payload (record id, "
        "partition, text snippet, metadata). Rerunning leaves one point per record.",
        **common,
    )
    def collection_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        partition = context.partition_key
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
        payloads = [
            {"record_id": row["id"], "text": row["text"][:SNIPPET_CHARS], **{c: row[c] for c in meta_cols}}
            for row in joined.select("id", "text", *meta_cols).iter_rows(named=True)
        ]
        vectors = joined.get_column("vector").to_numpy() if joined.height else np.empty((0, 1), np.float32)
        with getattr(context.resources, qdrant_key).open(collection) as store:
            upserted, deleted = store.upsert_partition(partition, ids, np.asarray(vectors, np.float32), payloads)
            in_partition = store.count(partition)
            total = store.count()
            where = store.location.describe()
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

    @dg.asset(
        key=keys.projection,
        deps=[keys.collection],
        required_resource_keys={qdrant_key},
        kinds={"umap"},
        check_specs=[dg.AssetCheckSpec("every_point_projected", asset=keys.projection,
                                       description="Every point of the collection has finite 2-D coordinates.")],
        description=f"2-D UMAP layout fitted on up to {projection.sample_size} points; x, y written to the payload.",
        group_name=group,
    )
    def projection_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with getattr(context.resources, qdrant_key).open(collection) as store:
            ids, vectors, payloads = store.read_vectors()
        if len(ids) < 3:
            raise EmbedMapInputError(
                f"collection {collection!r} holds {len(ids)} point(s); a projection needs at least 3 — "
                f"materialize {keys.collection.to_user_string()} for some partitions first"
            )
        started = time.perf_counter()
        projector = UMAPProjector(projection)
        xy = projector.fit_transform(vectors)
        seconds = time.perf_counter() - started
        projector.save(layout.projection_model)
        frame = pl.DataFrame(
            {
                "point_id": ids,
                "record_id": [str(p.get("record_id")) for p in payloads],
                "partition": [str(p.get("partition")) for p in payloads],
                "x": xy[:, 0],
                "y": xy[:, 1],
            }
        )
        with atomic_path(layout.projection) as tmp:
            frame.write_parquet(tmp)
        with getattr(context.resources, qdrant_key).open(collection) as store:
            store.set_payloads({pid: {"x": float(x), "y": float(y)} for pid, x, y in zip(ids, xy[:, 0], xy[:, 1])})
            total = store.count()
        finite = int(np.isfinite(xy).all(axis=1).sum())
        meta = file_metadata(layout.projection, frame)
        meta.update({"fitted_on": int(len(projector.fit_index_)), "seconds": round(seconds, 2),
                     "n_neighbors": projection.n_neighbors, "min_dist": projection.min_dist})
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                dg.AssetCheckResult(
                    check_name="every_point_projected",
                    passed=finite == len(ids) == total,
                    metadata={"projected": finite, "points_read": len(ids), "collection_points": total},
                )
            ],
        )

    @dg.asset(
        key=keys.topics,
        deps=[keys.projection],
        required_resource_keys={qdrant_key},
        kinds={"hdbscan"},
        description="Topics: HDBSCAN clusters of the 2-D map, every point given one, named by c-TF-IDF keywords.",
        group_name=group,
    )
    def topics_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        proj = pl.read_parquet(layout.projection)
        texts = pl.concat(
            [
                pl.read_parquet(layout.documents(p), columns=["id", "text"]).with_columns(pl.lit(p).alias("partition"))
                for p in proj["partition"].unique().sort().to_list()
            ]
        )
        proj = proj.join(texts.rename({"id": "record_id"}), on=["partition", "record_id"], how="left")
        missing = proj.filter(pl.col("text").is_null())
        if missing.height:
            raise EmbedMapInputError(
                f"{missing.height} point(s) have no document (e.g. {missing['record_id'].head(3).to_list()} in "
                f"partition {missing['partition'][0]!r}); rematerialize the per-partition assets, then the projection"
            )
        started = time.perf_counter()
        clusterer = HDBSCANTopics(clustering).fit(proj.select("x", "y").to_numpy())
        topic_ids = clusterer.labels_
        keywords = ctfidf_keywords(proj["text"].to_list(), topic_ids, labels)
        seconds = time.perf_counter() - started
        label_of = {t: kw.label for t, kw in keywords.items()}
        points = proj.with_columns(
            pl.Series("topic_id", topic_ids, dtype=pl.Int64),
            pl.Series("topic_label", [label_of.get(int(t), "unassigned") for t in topic_ids], dtype=pl.String),
            pl.Series("clustered", clusterer.clustered_, dtype=pl.Boolean),
        ).drop("text")
        table = (
            points.group_by("topic_id")
            .agg(pl.len().alias("size"), pl.col("x").median(), pl.col("y").median(), pl.col("clustered").mean().alias("core_share"))
            .with_columns(
                pl.col("topic_id").map_elements(lambda t: label_of.get(t, "unassigned"), return_dtype=pl.String).alias("label"),
                pl.col("topic_id").map_elements(lambda t: keywords[t].keywords if t in keywords else [],
                                                return_dtype=pl.List(pl.String)).alias("keywords"),
            )
            .sort("size", descending=True)
        )
        with atomic_path(layout.points) as tmp:
            points.write_parquet(tmp)
        with atomic_path(layout.topics) as tmp:
            table.write_parquet(tmp)
        with getattr(context.resources, qdrant_key).open(collection) as store:
            store.set_payloads(
                {pid: {"topic_id": int(t), "topic_label": lab}
                 for pid, t, lab in zip(points["point_id"], points["topic_id"], points["topic_label"])}
            )
        meta = file_metadata(layout.topics, table)
        meta.update(
            {
                "topics": int(table.height),
                "share_clustered": round(float(clusterer.clustered_.mean()), 4) if len(topic_ids) else 0.0,
                "share_assigned": round(float((topic_ids >= 0).mean()), 4) if len(topic_ids) else 0.0,
                "seconds": round(seconds, 2),
                "topic_table": dg.MetadataValue.md(_topic_markdown(table)),
            }
        )
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(
        key=keys.map,
        deps=[keys.topics],
        required_resource_keys={qdrant_key},
        kinds={"html"},
        check_specs=[
            dg.AssetCheckSpec("collection_matches_documents", asset=keys.map,
                              description="The collection holds as many points as there are documents in all partitions."),
            dg.AssetCheckSpec("every_point_mapped", asset=keys.map,
                              description="Every point in the collection has coordinates and a topic."),
        ],
        description="The data map: an interactive HTML file, a PNG preview and the topic table, read from Qdrant.",
        group_name=group,
    )
    def map_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with getattr(context.resources, qdrant_key).open(collection) as store:
            points = points_frame(store)
            total = store.count()
        partition_keys = pdef.get_partition_keys(dynamic_partitions_store=context.instance)
        documents_total = sum(
            pl.scan_parquet(layout.documents(p)).select(pl.len()).collect().item()
            for p in partition_keys
            if layout.documents(p).exists()
        )
        extra = [c for c in points.columns if c not in ("id", "partition", "x", "y", "topic_id", "topic_label", "text")]
        title = f"{name}: {points.height} records"
        render_preview_png(points.drop_nulls(["x", "y"]).with_columns(pl.col("topic_id").fill_null(-1)), layout.png, title=title)
        render_html_map(points.drop_nulls(["x", "y"]).with_columns(pl.col("topic_id").fill_null(-1)), layout.html,
                        title=title, extra_columns=extra)
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
            meta["topic_table"] = dg.MetadataValue.md(_topic_markdown(table))
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                dg.AssetCheckResult(
                    check_name="collection_matches_documents",
                    passed=total == documents_total,
                    metadata={"collection_points": total, "documents": documents_total},
                ),
                dg.AssetCheckResult(
                    check_name="every_point_mapped",
                    passed=unmapped == 0,
                    metadata={"unmapped_points": unmapped, "points": points.height},
                ),
            ],
        )

    per_partition_job = dg.define_asset_job(
        f"{group}_partitions", selection=dg.AssetSelection.assets(*keys.per_partition), partitions_def=pdef,
        description=f"Documents, embeddings and Qdrant points of one partition of map {name!r}.",
    )
    map_job = dg.define_asset_job(
        f"{group}_map", selection=dg.AssetSelection.assets(*keys.global_),
        description=f"Projection, topics and the rendered map of {name!r}, from the whole collection.",
    )
    return dg.Definitions(
        assets=[documents, embeddings, collection_asset, projection_asset, topics_asset, map_asset],
        jobs=[per_partition_job, map_job],
    )


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


def _topic_markdown(table: pl.DataFrame, limit: int = 30) -> str:
    rows = [
        (r["topic_id"], r["size"], r["label"], ", ".join(r["keywords"][:8]))
        for r in table.head(limit).iter_rows(named=True)
    ]
    return md_table(["topic", "size", "label", "keywords"], rows)
