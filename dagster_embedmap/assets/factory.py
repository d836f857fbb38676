"""The asset factory: one call wires a whole data map.

``documents -> embeddings -> collection`` run per partition (cost in proportion to the batch);
``projection -> topics -> map`` are global and read the collection, the map's system of record.
Every asset writes its own files under the map's home folder and returns metadata; the algorithms
live in :mod:`dagster_embedmap.core`.
"""


import os
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence, Union

import dagster as dg
import numpy as np
import polars as pl

from ..core.cluster import ClusterSettings
from ..core.documents import RecordSchema
from ..core.duplicates import near_duplicate_pairs, topic_outliers
from ..core.label import LabelSettings
from ..core.paths import MapLayout, atomic_path, read_or_set_aside
from ..core.points import points_frame
from ..core.points import metadata_columns as record_metadata_columns
from ..core.project import ProjectionSettings
from ..core.render import png_markdown, render_html_map, render_preview_png
from ..core.sources import SINGLE_PARTITION, FileSource
from ..sensors import build_landing_sensor
from ..steps import audit_points, embed_partition, fit_layout, place_partition, refresh_topics, write_documents
from ..steps import write_points
from ..steps.common import Check, pending_partitions, without_pending
from ..steps.ingest import SNIPPET_CHARS
from ..steps.layout import layout_info
from .metadata import file_metadata, md_table, topic_tree_markdown

__all__ = ["build_embedmap_defs", "MapKeys", "default_home", "SNIPPET_CHARS"]

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
    source_key = _source_key(source)
    eager = dg.AutomationCondition.eager()
    step = {k: getattr(keys, k).to_user_string() for k in ("documents", "embeddings", "collection", "projection_model")}

    def open_store(context: dg.AssetExecutionContext):
        resource = getattr(context.resources, qdrant_key)
        return lambda: resource.open(collection)

    def documents_partition(context: dg.AssetExecutionContext, partition: str, records: pl.DataFrame) -> dg.MaterializeResult:
        result = write_documents(layout, partition, records, schema, context.log)
        prepared = result.prepared
        preview = prepared.frame.head(5)
        meta = file_metadata(result.path, prepared.frame)
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
        if prepared.renamed_columns:
            meta["renamed_columns"] = dg.MetadataValue.json(prepared.renamed_columns)
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
            return _each_partition(context, lambda p: documents_partition(context, p, source.read_partition(p)))

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
            return _each_partition(context, lambda p: documents_partition(
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
        return _each_partition(context, lambda p: embeddings_partition(context, p))

    def embeddings_partition(context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
        result = embed_partition(layout, partition, getattr(context.resources, embedder_key).get_encoder,
                                 context.log, vector_column=vector_column, documents_step=step["documents"])
        meta = file_metadata(result.path, result.frame)
        meta.update({k: dg.MetadataValue.text(str(v)) for k, v in result.info.items()})
        meta.update({"dimension": result.dimension, "docs_per_s": round(result.docs_per_s, 1),
                     "seconds": round(result.seconds, 2), "model_load_seconds": round(result.load_seconds, 2),
                     "embedded": result.embedded, "reused": result.reused})
        if not result.from_column:
            # texts longer than the model's window: the vector describes their beginning only
            meta["truncated_texts"] = len(result.truncated_ids)
        return dg.MaterializeResult(
            metadata=meta,
            # the vectors' version: changes with any text of the partition or with the model, which marks
            # the collection and everything after it stale in the UI; a rerun that changes nothing keeps it
            data_version=dg.DataVersion(result.data_version),
            check_results=[_check_result(result.check())],
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
        return _each_partition(context, lambda p: points_partition(context, p))

    def points_partition(context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
        result = write_points(open_store(context), layout, name, partition, levels=clustering.levels, log=context.log,
                              embeddings_step=step["embeddings"], documents_step=step["documents"])
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.points,
                "collection": collection,
                "qdrant": result.where,
                "points_upserted": result.upserted,
                "stale_points_deleted": result.deleted,
                "points_replaced": result.replaced,
                "collection_points": result.collection_points,
            },
            check_results=[_check_result(result.check())],
        )

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
        "chosen and ordered by vector content (the same records give the same map under any name or partitioning), "
        "with the 10-d cluster space the topics use, versioned, and aligned to the previous version (orthogonal "
        "Procrustes on the shared points) so a refit does not rotate or flip the map.",
        group_name=group,
    )
    def projection_model_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        fit = fit_layout(open_store(context), layout, name, projection, context.log,
                         collection_step=step["collection"], refit_step=step["projection_model"])
        model = fit.model
        return dg.MaterializeResult(
            metadata={
                "version": model.version,
                "fitted_on": len(model.fitted),
                "points": fit.points,
                "alignment_disparity": round(float(model.alignment.disparity), 5),
                "aligned_to_version": fit.aligned_to_version,
                "seconds": round(fit.seconds, 2),
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
        return _each_partition(context, lambda p: placement_partition(context, p))

    def placement_partition(context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
        result = place_partition(open_store(context), layout, partition, refit_step=step["projection_model"])
        meta = file_metadata(result.path, result.frame)
        meta.update({"placed": result.placed, "kept": result.kept, "layout_version": result.version,
                     "seconds": round(result.seconds, 2)})
        return dg.MaterializeResult(metadata=meta, check_results=[_check_result(result.check())])

    class TopicsConfig(dg.Config):
        recluster: bool = False
        """Run HDBSCAN over the whole map again (topic ids are matched to the previous ones). Without it,
        only points without a topic get one; a new layout version always reclusters."""

    @dg.asset(
        key=keys.topics,
        deps=[keys.projection],
        # the map's own model names topics by meaning; maps of precomputed vectors never load it
        required_resource_keys={qdrant_key} if vector_column else {qdrant_key, embedder_key},
        kinds={"hdbscan"},
        automation_condition=eager,
        description="Topics: HDBSCAN's dense cores in the layout's 5-d cluster space, joined by their mean "
        "embedding into fine topics and a tree of broad ones, named by c-TF-IDF candidates the model ranks by "
        "meaning. New points join "
        "their neighbours' topic; a recluster (after a refit, or when asked) keeps matched topics' ids and labels "
        "and records births, merges and splits. Points of removed partitions are dropped here.",
        group_name=group,
    )
    def topics_asset(context: dg.AssetExecutionContext, config: TopicsConfig) -> dg.MaterializeResult:
        current = set(pdef.get_partition_keys(dynamic_partitions_store=context.instance))
        embed = None if vector_column else (lambda terms: getattr(context.resources, embedder_key).get_encoder()
                                            .encode(terms))
        result = refresh_topics(open_store(context), layout, name, current, clustering=clustering, labels=labels,
                                recluster=config.recluster, log=context.log, collection_step=step["collection"],
                                embed=embed)
        table, update = result.table, result.update
        meta = file_metadata(layout.topics, table)
        fine_level = table.filter(pl.col("level") == table["level"].max()) if table.height else table
        meta.update(
            {
                "topics": int(fine_level.filter(pl.col("topic_id") >= 0).height),
                "topics_per_level": [int(table.filter((pl.col("level") == level) & (pl.col("topic_id") >= 0)).height)
                                     for level in range(update.tree.depth)],
                "reclustered": update.reclustered,
                "points_assigned": int(update.changed.sum()),
                "points_reassigned": result.reassigned,
                "share_clustered": round(float(result.state["clustered_share"] or 0.0), 4),
                "share_assigned": round(result.share_assigned, 4),
                "removed_partitions": sorted(result.pruned),
                "incomplete_partitions": sorted(result.pending),
                "seconds": round(result.seconds, 2),
                "topic_tree": dg.MetadataValue.md(topic_tree_markdown(table)),
            }
        )
        if update.match is not None:
            meta["topic_changes"] = dg.MetadataValue.json(update.match.to_metadata())
        return dg.MaterializeResult(metadata=meta)

    def _pending(context) -> set[str]:
        return pending_partitions(layout, name, step["collection"], context.log)

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
            dg.AssetCheckSpec("every_point_current", automation_condition=eager, asset=keys.map,
                              description="Every point agrees with its record: its stored text hash is the "
                              "record's, its place was computed from its current vector and its topic for that place."),
        ],
        description="The data map: an interactive HTML file, a PNG preview and the topic table, read from Qdrant.",
        group_name=group,
    )
    def map_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with getattr(context.resources, qdrant_key).open(collection, read_only=True) as store:
            points = points_frame(store)
            total = store.count()
        pending = _pending(context)
        points = points.filter(~pl.col("partition").is_in(list(pending)))
        partition_keys = pdef.get_partition_keys(dynamic_partitions_store=context.instance)
        audit = audit_points(points, layout, set(partition_keys) - pending)
        documents_total = sum(
            pl.scan_parquet(layout.documents(p)).select(pl.len()).collect().item()
            for p in partition_keys
            if layout.documents(p).exists() and p not in audit.unreadable
        )
        extra = record_metadata_columns(points.columns)
        title = f"{name}: {points.height} records"
        drawable = points.drop_nulls(["x", "y"]).with_columns(pl.col("topic_id").fill_null(-1))
        render_preview_png(drawable, layout.png, title=title)
        render_html_map(drawable, layout.html, title=title, extra_columns=extra)
        unmapped = points.filter(pl.col("x").is_null() | pl.col("topic_id").is_null() | (pl.col("topic_id") < 0)).height
        table = read_or_set_aside(layout.topics, pl.read_parquet, log=context.log, holds="the topic table",
                                  then=f"the map is drawn without it; materialize {keys.topics.to_user_string()} again")
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
                _check_result(audit.check()),
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
        with getattr(context.resources, qdrant_key).open(collection, read_only=True) as store:
            ids, vectors, payloads = without_pending(layout, name, step["collection"], context.log,
                                                     *store.read_vectors())
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


def _check_result(check: Check) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=check.name, passed=check.passed, metadata=check.metadata,
                               description=check.description)


def _drift_sensor(name: str, layout: MapLayout, pdef: dg.PartitionsDefinition, refit_job, share: float,
                  status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED) -> dg.SensorDefinition:
    """Requests a refit once more than ``share`` of the map's records arrived after the last fit."""

    @dg.sensor(name=name, job=refit_job, minimum_interval_seconds=300, default_status=status,
               description=f"Refits the layout when over {share:.0%} of the records are newer than the layout model.")
    def drift(context: dg.SensorEvaluationContext):
        info = layout_info(layout, context.log)
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
