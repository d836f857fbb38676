"""The asset factory: one call wires a whole data map.

``documents -> embeddings -> collection`` run per partition (cost in proportion to the batch);
``projection -> topics -> map`` are global and read the collection, the map's system of record.
How each step becomes an asset (key, group, description, owners, tags, kinds, automation) goes through
a translator (:mod:`.translator`); the defaults are in :mod:`.specs`, the asset bodies in :mod:`.bodies`
(each calls its step in :mod:`dagster_embedmap.steps`), the jobs, schedule and sensors in :mod:`.automation`.
"""


import os
from dataclasses import replace
from typing import Literal, Mapping, Sequence, Union

import dagster as dg

from ..core.classify import ClassifierSpec
from ..core.topics.cluster import ClusterSettings
from ..core.records.documents import RecordSchema
from ..core.records.images import ImageSettings, image_root_of
from ..core.topics.labels import LabelSettings
from ..core.paths import MapLayout, default_home
from ..core.settings import AutomationSettings
from ..core.layout.project import ProjectionSettings
from ..core.records.sources import SINGLE_PARTITION, FileSource
from ..steps.ingest import SNIPPET_CHARS
from . import bodies
from .automation import MapJobs, map_schedules, map_sensors
from .bodies import MapContext, TopicsConfig, each_partition
from .classifiers import classes_of, classifier_assets
from .keys import MAP_TAG, STEP_TAG, MapKeys
from .specs import DEPS, PARTITIONED, check_specs, default_props
from .translator import EmbedMapTranslator

__all__ = ["build_embedmap_defs", "MapKeys", "default_home", "SNIPPET_CHARS"]

Source = Union[FileSource, dg.AssetsDefinition, dg.AssetKey, str]


_AUTOMATION = AutomationSettings()
"""The defaults of the automation and GPU parameters below (declared once, in ``core/settings.py``)."""


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
    text_column: str | None = "text",
    vector_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    empty_text: Literal["skip", "fail"] = "skip",
    image_column: str | None = None,
    images: ImageSettings = ImageSettings(),
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
    pool: str = _AUTOMATION.pool,
    refit_cron: str | None = _AUTOMATION.refit_cron,
    refit_drift_share: float | None = _AUTOMATION.refit_drift_share,
    max_runs_per_tick: int = _AUTOMATION.max_runs_per_tick,
    sensor_interval_s: int = _AUTOMATION.sensor_interval_s,
    automations_running: bool = _AUTOMATION.running,
    partitions_per_run: int = 1,
    embeddings_tags: Mapping[str, object] | None = None,
    duplicate_threshold: float = 0.95,
    classifiers: Sequence[ClassifierSpec] = (),
    translator: EmbedMapTranslator | None = None,
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
        image_column: a column of images (paths or bytes) embedded by the embedder's model, then CLIP-family
            (texts and images in one space); their text, if any, is a caption. ``images``: an
            :class:`ImageSettings` (bad images skipped or failing, the folder of relative paths, sizes).
        partitions_def: the per-partition assets' partitions; by default the source asset's, the
            file source's (one per file, or per value of its partition column), else one ``all``.
        home: folder for the map's files (documents, map.html, ...); default ``$EMBEDMAP_HOME`` or ``./.embedmap``.
        embedder_key / qdrant_key: resource keys of :class:`EmbedderResource` / :class:`QdrantResource`.
        pool: Dagster concurrency pool of the embeddings step (limit it to the GPUs you have).
        refit_cron: cron of the schedule that refits the layout (created stopped); ``None``: no schedule.
        refit_drift_share: a sensor (created stopped) refits the layout once more than this share of the
            records came after the last fit; ``None``: no sensor. ``sensor_interval_s``: the landing sensor's interval.
        max_runs_per_tick: the landing sensor (a glob source, dynamic partitions) requests at most this many runs a tick.
        partitions_per_run: a backfill of the per-partition assets runs this many partitions per run (one
            process and one model load; each partition still validated, written and checked on its own).
        automations_running: create the refit schedule and the sensors running instead of stopped.
        embeddings_tags: op tags of the embeddings step, e.g. what a Kubernetes run or step launcher reads to
            give it a GPU (:func:`dagster_embedmap.k8s_gpu_tags` makes them).
        duplicate_threshold: cosine similarity from which two records count as near-duplicates.
        classifiers: :class:`ClassifierSpec`\ s (a labels file, a label column or a labels asset, and/or
            descriptions); each adds ``<prefix>/classifier_<name>`` (trains when asked) and the per-partition
            ``<prefix>/classes_<name>`` (``class_<name>`` and ``class_<name>_score`` in the payload, the map's
            hover and colour-by, the export); the map depends on the classes.
        translator: an :class:`EmbedMapTranslator` (subclass) giving the assets other keys, groups, descriptions,
            owners, tags, kinds or automation conditions; read the keys back with ``MapKeys.of(defs, name)``.

    New partitions cost only themselves: their points are placed with the current layout model and join their
    neighbours' topics. Declarative automation refreshes placement, topics and the map when partitions land
    (the layout model itself is refitted only when missing, on the schedule, by the drift sensor, or by hand).

    The resources are not included: add them with ``embedmap_resources()`` or your own.
    """
    group = group_name or _checked(name).replace("-", "_")
    pdef = partitions_def or _default_partitions(source)
    source_key = _source_key(source)
    specs, keys = _translate(translator or EmbedMapTranslator(), default_props(
        name, MapKeys.for_map(name, key_prefix), group, collection=collection_name or name,
        source=f"from {source.path}" if source_key is None else f"of {source_key.to_user_string()}",
        sample_size=projection.sample_size, duplicate_threshold=duplicate_threshold))
    schema = RecordSchema(id_column=id_column, text_column=text_column, vector_column=vector_column,
                          metadata_columns=tuple(metadata_columns) if metadata_columns is not None else None,
                          empty_text=empty_text, image_column=image_column, images=_image_settings(images, source))
    ctx = MapContext(name=name, layout=MapLayout(home or default_home(), name), collection=collection_name or name,
                     schema=schema, keys=keys, pdef=pdef, projection=projection, clustering=clustering, labels=labels,
                     embedder_key=embedder_key, qdrant_key=qdrant_key, duplicate_threshold=duplicate_threshold)
    wired = _wiring(specs, keys, name, pdef, source_key, resources=_step_resources(vector_column, embedder_key, qdrant_key),
                    default_resources={qdrant_key}, partitions_per_run=partitions_per_run, classes=classes_of(ctx, classifiers),
                    embeddings=dict(pool=pool, op_tags=dict(embeddings_tags or {})))
    jobs = MapJobs(name, group, keys, pdef)
    return dg.Definitions(
        assets=_assets(ctx, wired, source, source_key) + classifier_assets(ctx, classifiers, group),
        jobs=jobs.all(),
        schedules=map_schedules(name, group, jobs, refit_cron, automations_running),
        sensors=map_sensors(group, ctx.layout, source, pdef, jobs, running=automations_running,
                            refit_drift_share=refit_drift_share, max_runs_per_tick=max_runs_per_tick,
                            sensor_interval_s=sensor_interval_s),
    )


def _image_settings(images: ImageSettings, source: Source) -> ImageSettings:
    """``images`` with the folder relative image paths are read from: a file source's own by default."""
    if images.root is not None or not isinstance(source, FileSource):
        return images
    return replace(images, root=str(image_root_of(source.path)))


def _step_resources(vector_column: str | None, embedder_key: str, qdrant_key: str) -> dict[str, set[str]]:
    """The resources of the steps that do not use only Qdrant: the map's own model names topics and lets
    the page search by meaning; a map of given vectors never loads it."""
    own_model = {qdrant_key} if vector_column else {qdrant_key, embedder_key}
    return {"documents": set(), "embeddings": {embedder_key}, "topics": own_model, "map": own_model}


def _checked(name: str) -> str:
    if not name or any(ch in name for ch in "/\\"):
        raise ValueError(f"map name must be non-empty without slashes, got {name!r}")
    return name


def _translate(translator: EmbedMapTranslator, props: list) -> tuple[dict[str, dg.AssetSpec], MapKeys]:
    """Each step's spec as the translator makes it, and the map's keys read from them."""
    specs = {p.step: translator.get_asset_spec(p) for p in props}
    return specs, MapKeys.from_mapping({step: spec.key for step, spec in specs.items()})


def _wiring(specs: dict[str, dg.AssetSpec], keys: MapKeys, name: str, pdef: dg.PartitionsDefinition,
            source_key: dg.AssetKey | None, *, resources: dict[str, set[str]], default_resources: set[str],
            partitions_per_run: int, embeddings: dict, classes: Sequence[dg.AssetKey] = ()) -> dict[str, dict]:
    """Per step, the ``multi_asset`` arguments that make the translated specs run together: dependencies on
    the translated keys, partitions, checks, resources, the op's name and the backfill policy (and
    ``embeddings``: the embeddings step's pool and op tags). The map also depends on the classifiers'
    ``classes`` (its page colours by them), without waiting for a classifier nobody trained yet."""
    backfill = (dg.BackfillPolicy.multi_run(max_partitions_per_run=partitions_per_run)
                if partitions_per_run > 1 else None)  # several partitions per run: one model load, one process
    wired = {}
    for step, spec in specs.items():
        deps = [keys.key(d) for d in DEPS[step]] + ([source_key] if step == "documents" and source_key else [])
        condition = spec.automation_condition
        if step == "map" and classes:
            deps += list(classes)
            if condition is not None:  # a classes asset still missing (untrained) does not hold the map back
                condition = condition.replace("any_deps_missing", dg.AutomationCondition.any_deps_missing().ignore(
                    dg.AssetSelection.assets(*classes)))
        wired[step] = dict(
            specs=[spec.replace_attributes(
                deps=deps, partitions_def=pdef if step in PARTITIONED else None, automation_condition=condition,
                metadata={**(spec.metadata or {}), MAP_TAG: name, STEP_TAG: step})],
            name=spec.key.to_python_identifier(), check_specs=check_specs(step, spec.key),
            required_resource_keys=resources.get(step, default_resources),
            backfill_policy=backfill if step in PARTITIONED else None)
    wired["embeddings"].update(embeddings)
    return wired


def _assets(ctx: MapContext, wired: dict[str, dict], source: Source,
            source_key: dg.AssetKey | None) -> list[dg.AssetsDefinition]:
    """The map's eight assets: each a one-spec ``multi_asset`` whose body is in :mod:`.bodies`."""
    if source_key is None:
        assert isinstance(source, FileSource)

        @dg.multi_asset(**wired["documents"])
        def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            return each_partition(context, lambda p: bodies.documents(ctx, context, p, source.read_partition(p)))

    else:

        @dg.multi_asset(ins={"records": dg.AssetIn(key=source_key)}, **wired["documents"])
        def documents(context: dg.AssetExecutionContext, records) -> dg.MaterializeResult:
            # a run over several partitions receives {partition: frame}
            return each_partition(context, lambda p: bodies.documents(
                ctx, context, p, records[p] if isinstance(records, dict) else records))

    @dg.multi_asset(**wired["embeddings"])
    def embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        # several partitions in one run share one encoder: the model loads once per run
        return each_partition(context, lambda p: bodies.embeddings(ctx, context, p))

    @dg.multi_asset(**wired["collection"])
    def collection(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return each_partition(context, lambda p: bodies.collection(ctx, context, p))

    @dg.multi_asset(**wired["projection_model"])
    def projection_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return bodies.projection_model(ctx, context)

    @dg.multi_asset(**wired["projection"])
    def projection(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return each_partition(context, lambda p: bodies.projection(ctx, context, p))

    @dg.multi_asset(**wired["topics"])
    def topics(context: dg.AssetExecutionContext, config: TopicsConfig) -> dg.MaterializeResult:
        return bodies.topics(ctx, context, config)

    @dg.multi_asset(**wired["map"])
    def map_(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return bodies.map_(ctx, context)

    @dg.multi_asset(**wired["duplicates"])
    def duplicates(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return bodies.duplicates(ctx, context)

    return [documents, embeddings, collection, projection_model, projection, topics, map_, duplicates]
