"""The asset bodies: each calls its step (:mod:`dagster_embedmap.steps`) and turns the result into a
``MaterializeResult`` (metadata, data version, check results). No algorithm lives here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import dagster as dg
import polars as pl

from ..core.topics.cluster import ClusterSettings
from ..core.records.documents import RecordSchema
from ..core.topics.labels import LabelSettings
from ..core.paths import MapLayout
from ..core.layout.project import ProjectionSettings
from ..core.render import png_markdown
from ..core.render.html import THUMBNAIL_BUDGET
from ..steps import embed_partition, fit_layout, place_partition, refresh_topics, write_documents, write_points
from ..steps.common import Check
from ..steps.duplicates import find_duplicates
from ..steps.render import render_map
from .keys import MapKeys
from .metadata import file_metadata, md_table, topic_tree_markdown

if TYPE_CHECKING:
    from ..resources import EmbedderResource, QdrantResource

__all__ = ["MapContext", "TopicsConfig", "each_partition", "check_result"]


class TopicsConfig(dg.Config):
    recluster: bool = False
    """Run HDBSCAN over the whole map again (topic ids are matched to the previous ones). Without it,
    only points without a topic get one; a new layout version always reclusters."""


@dataclass(frozen=True)
class MapContext:
    """What every asset body of one map needs: where its files and points are, its settings, its keys."""

    name: str
    layout: MapLayout
    collection: str
    schema: RecordSchema
    keys: MapKeys
    pdef: dg.PartitionsDefinition
    projection: ProjectionSettings
    clustering: ClusterSettings
    labels: LabelSettings
    embedder_key: str
    qdrant_key: str
    duplicate_threshold: float

    def step(self, step: str) -> str:
        """The asset key of ``step`` as a user types it (in messages that say what to rerun)."""
        return self.keys.key(step).to_user_string()

    def qdrant(self, context: dg.AssetExecutionContext) -> "QdrantResource":
        return _resource(context, self.qdrant_key, "open", "QdrantResource")

    def embedder(self, context: dg.AssetExecutionContext) -> "EmbedderResource":
        return _resource(context, self.embedder_key, "get_encoder", "EmbedderResource")

    def store(self, context: dg.AssetExecutionContext, read_only: bool = False) -> Callable:
        resource = self.qdrant(context)
        return lambda: resource.open(self.collection, read_only=read_only)

    def partition_keys(self, context) -> list[str]:
        return list(self.pdef.get_partition_keys(dynamic_partitions_store=context.instance))


def _resource(context, key: str, method: str, kind: str):
    resource = getattr(context.resources, key, None)
    if resource is None or not hasattr(resource, method):
        raise dg.DagsterInvariantViolationError(
            f"resource {key!r} must be a {kind} (with .{method}()), got {type(resource).__name__}; add it with "
            "embedmap_resources() or pass your own under that key")
    return resource


def documents(ctx: MapContext, context: dg.AssetExecutionContext, partition: str,
              records: pl.DataFrame) -> dg.MaterializeResult:
    result = write_documents(ctx.layout, partition, records, ctx.schema, context.log)
    prepared = result.prepared
    preview = prepared.frame.head(5)
    meta = file_metadata(result.path, prepared.frame)
    meta.update({
        "skipped_empty_text": prepared.skipped_empty_text,
        "control_characters_replaced": prepared.control_characters,
        "metadata_columns": prepared.metadata_columns,
        "preview": dg.MetadataValue.md(
            md_table(["id", "text"], zip(preview["id"].to_list(), preview["text"].to_list()), max_chars=100)),
    })
    if prepared.renamed_columns:
        meta["renamed_columns"] = dg.MetadataValue.json(prepared.renamed_columns)
    if "image" in prepared.frame.columns:
        thumbs = prepared.frame["thumbnail"]
        meta.update({"images": prepared.frame.height - prepared.frame["image"].null_count(),
                     "skipped_bad_images": len(prepared.skipped_bad_images),
                     "thumbnail_bytes": int(thumbs.bin.size().sum() or 0)})
        if prepared.skipped_bad_images:
            meta["bad_images"] = dg.MetadataValue.md(md_table(["id", "why"], prepared.skipped_bad_images[:50],
                                                              max_chars=160))
    return dg.MaterializeResult(metadata=meta)


def embeddings(ctx: MapContext, context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
    result = embed_partition(ctx.layout, partition, ctx.embedder(context).get_encoder, context.log,
                             vector_column=ctx.schema.vector_column, documents_step=ctx.step("documents"))
    meta = file_metadata(result.path, result.frame)
    meta.update({k: dg.MetadataValue.text(str(v)) for k, v in result.info.items()})
    meta.update({"dimension": result.dimension, "docs_per_s": round(result.docs_per_s, 1),
                 "seconds": round(result.seconds, 2), "model_load_seconds": round(result.load_seconds, 2),
                 "embedded": result.embedded, "reused": result.reused})
    if not result.from_column:
        # texts longer than the model's window: the vector describes their beginning only
        meta["truncated_texts"] = len(result.truncated_ids)
    sample = _image_sample(ctx.layout.documents(partition))
    if sample:
        meta["image_sample"] = dg.MetadataValue.md(sample)
    # the vectors' version: changes with any text of the partition or with the model, which marks the
    # collection and everything after it stale in the UI; a rerun that changes nothing keeps it
    return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(result.data_version),
                                check_results=[check_result(result.check())])


def _image_sample(documents: Path, n: int = 24) -> str | None:
    """The first ``n`` image records' thumbnails of a partition, as one inline markdown image; None
    for a partition of texts."""
    import base64

    from ..core.records.images import contact_sheet

    if "thumbnail" not in pl.read_parquet_schema(documents):
        return None
    sheet = contact_sheet(pl.read_parquet(documents, columns=["thumbnail"], n_rows=4 * n)["thumbnail"]
                          .drop_nulls().head(n).to_list())
    return None if sheet is None else \
        f"![a sample of the partition's images](data:image/jpeg;base64,{base64.b64encode(sheet).decode('ascii')})"


def collection(ctx: MapContext, context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
    result = write_points(ctx.store(context), ctx.layout, ctx.name, partition, levels=ctx.clustering.levels,
                          log=context.log, embeddings_step=ctx.step("embeddings"), documents_step=ctx.step("documents"))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": result.points, "collection": ctx.collection, "qdrant": result.where,
                  "points_upserted": result.upserted, "stale_points_deleted": result.deleted,
                  "points_replaced": result.replaced, "collection_points": result.collection_points},
        check_results=[check_result(result.check())],
    )


def projection_model(ctx: MapContext, context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    fit = fit_layout(ctx.store(context), ctx.layout, ctx.name, ctx.projection, context.log,
                     collection_step=ctx.step("collection"), refit_step=ctx.step("projection_model"))
    model = fit.model
    return dg.MaterializeResult(
        metadata={"version": model.version, "fitted_on": len(model.fitted), "points": fit.points,
                  "alignment_disparity": round(float(model.alignment.disparity), 5),
                  "aligned_to_version": fit.aligned_to_version, "seconds": round(fit.seconds, 2),
                  "n_neighbors": ctx.projection.n_neighbors, "min_dist": ctx.projection.min_dist,
                  "dagster/uri": dg.MetadataValue.text(ctx.layout.projection_model.as_uri())},
        data_version=dg.DataVersion(f"layout-v{model.version}"),
    )


def projection(ctx: MapContext, context: dg.AssetExecutionContext, partition: str) -> dg.MaterializeResult:
    result = place_partition(ctx.store(context), ctx.layout, partition, refit_step=ctx.step("projection_model"))
    meta = file_metadata(result.path, result.frame)
    meta.update({"placed": result.placed, "kept": result.kept, "layout_version": result.version,
                 "seconds": round(result.seconds, 2)})
    return dg.MaterializeResult(metadata=meta, check_results=[check_result(result.check())])


def topics(ctx: MapContext, context: dg.AssetExecutionContext, config: TopicsConfig) -> dg.MaterializeResult:
    # the map's own model names topics by meaning; maps of precomputed vectors never load it
    embed = None if ctx.schema.vector_column else (lambda terms: ctx.embedder(context).get_encoder().encode(terms))
    result = refresh_topics(ctx.store(context), ctx.layout, ctx.name, set(ctx.partition_keys(context)),
                            clustering=ctx.clustering, labels=ctx.labels, recluster=config.recluster, log=context.log,
                            collection_step=ctx.step("collection"), embed=embed)
    table, update = result.table, result.update
    meta = file_metadata(ctx.layout.topics, table)
    fine_level = table.filter(pl.col("level") == table["level"].max()) if table.height else table
    meta.update({
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
    })
    if update.match is not None:
        meta["topic_changes"] = dg.MetadataValue.json(update.match.to_metadata())
    if "labelled_from" in table.columns:  # image records: topics of images named from their nearest texts
        meta["topics_named_from_nearest_texts"] = int((table["labelled_from"] == "nearest texts").sum())
    return dg.MaterializeResult(metadata=meta)


def map_(ctx: MapContext, context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    # a map embedded by its own model searches by meaning in the page; one of given vectors by words only
    embedder = None if ctx.schema.vector_column else ctx.embedder(context)
    drawn = render_map(ctx.store(context, read_only=True), ctx.layout, ctx.name, ctx.partition_keys(context),
                       log=context.log, collection_step=ctx.step("collection"), topics_step=ctx.step("topics"),
                       semantic_model=embedder.model if embedder else None,
                       model_cache_dir=embedder.cache_dir if embedder else None)
    layout = ctx.layout
    meta = file_metadata(layout.html)
    meta.update({"dagster/row_count": drawn.points,
                 "preview": dg.MetadataValue.md(png_markdown(layout.png, alt=f"{ctx.name} map")),
                 "png": dg.MetadataValue.path(str(layout.png)), "html_bytes": layout.html.stat().st_size,
                 "open_map": dg.MetadataValue.url(layout.html.resolve().as_uri()),
                 "labels_at_overview": len(drawn.preview_labels), "search_by_meaning": drawn.semantic})
    if drawn.topics is not None:
        meta["topic_tree"] = dg.MetadataValue.md(topic_tree_markdown(drawn.topics))
    if drawn.thumbnails[1]:
        kept, images, size = drawn.thumbnails
        meta.update({"image_records": images, "thumbnails_on_page": kept, "thumbnail_bytes": size,
                     "thumbnail_budget": THUMBNAIL_BUDGET})
    return dg.MaterializeResult(metadata=meta, check_results=[check_result(c) for c in drawn.checks])


def duplicates(ctx: MapContext, context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    found = find_duplicates(ctx.store(context, read_only=True), ctx.layout, ctx.name,
                            threshold=ctx.duplicate_threshold, log=context.log, collection_step=ctx.step("collection"))
    pairs, outliers = found.pairs, found.outliers
    meta = file_metadata(ctx.layout.duplicates, pairs)
    meta.update({
        "duplicate_pairs": pairs.height,
        "records_in_pairs": len(set(pairs["id_a"]) | set(pairs["id_b"])),
        "threshold": ctx.duplicate_threshold,
        "outliers_file": dg.MetadataValue.path(str(ctx.layout.outliers)),
        "pairs": dg.MetadataValue.md(md_table(["record", "record", "similarity"],
                                              [(a, b, f"{v:.3f}") for a, b, v in pairs.head(20).iter_rows()])),
        "outliers": dg.MetadataValue.md(md_table(["record", "topic", "distance / typical"],
                                                 [(i, t, f"{d:.1f}") for i, t, d in outliers.head(20).iter_rows()])),
    })
    return dg.MaterializeResult(metadata=meta)


# metadata that adds up over the partitions of a run
_SUMMED = ("dagster/row_count", "skipped_empty_text", "control_characters_replaced", "images", "skipped_bad_images",
           "thumbnail_bytes", "embedded", "reused",
           "truncated_texts", "seconds", "model_load_seconds", "points_upserted", "stale_points_deleted", "placed",
           "kept")


def each_partition(context: dg.AssetExecutionContext, one) -> dg.MaterializeResult:
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


def check_result(check: Check) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=check.name, passed=check.passed, metadata=check.metadata,
                               description=check.description)
