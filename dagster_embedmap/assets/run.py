"""Materialize a whole map in-process: each partition's run, then the global steps (what a backfill does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

from ..core.errors import MapBuildInterrupted
from ..core.store import keep_open
from .classifiers import classes_keys
from .factory import MapKeys

__all__ = ["materialize_map", "MapBuildResult", "MapBuildInterrupted"]

_JOB = "__ephemeral_asset_job__"


@dataclass
class MapBuildResult:
    partitions: list[str]
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs)

    def metadata(self, key: dg.AssetKey) -> dict[str, object]:
        """The metadata of the last materialization of ``key`` among these runs."""
        for run in reversed(self.runs):
            for event in run.get_asset_materialization_events():
                if event.asset_key == key:
                    return {k: v.value for k, v in event.materialization.metadata.items()}
        raise KeyError(key)

    def check_results(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for run in self.runs:
            for event in run.get_asset_check_evaluations():
                out[f"{event.asset_key.to_user_string()}:{event.check_name}"] = event.passed
        return out


class _Progress:
    """Which partitions a build wrote to the collection (and how many points each holds there), and
    which it placed on the map."""

    def __init__(self, collection: dg.AssetKey, on_placed: Callable[[str, int | None], None] | None):
        self.collection, self.on_placed = collection, on_placed
        self.written: list[str] = []
        self.done: list[str] = []
        self.points: dict[str, int] = {}

    def wrote(self, partition: str, run_result: dg.ExecuteInProcessResult) -> None:
        self.written.append(partition)
        for event in run_result.get_asset_materialization_events():
            if event.asset_key == self.collection and "dagster/row_count" in event.materialization.metadata:
                self.points[partition] = int(event.materialization.metadata["dagster/row_count"].value)

    def placed(self, partition: str) -> None:
        self.done.append(partition)
        if self.on_placed is not None:
            self.on_placed(partition, self.points.get(partition))


def run_selection(assets, resources, selection, *, instance: dg.DagsterInstance, partition: str | None = None,
                  run_config: dict | None = None, loggers: dict | None = None) -> dg.ExecuteInProcessResult:
    """One in-process run of the assets ``selection`` picks (of ``assets``, with ``resources``), recorded
    in ``instance``; ``loggers`` replace Dagster's console logger."""
    job_defs = dg.Definitions(jobs=[dg.define_asset_job(_JOB, selection=selection)], assets=assets,
                              resources=resources, loggers=loggers)
    return job_defs.resolve_job_def(_JOB).execute_in_process(run_config=run_config, instance=instance,
                                                             partition_key=partition)


def _trained_classes(assets, map_key: dg.AssetKey, instance: dg.DagsterInstance) -> list[dg.AssetKey]:
    """The classes assets of the map's classifiers that have been trained (their classifier asset
    materialized in ``instance``): what tags each partition a build runs."""
    return [classes for classes, trained_by in classes_keys(assets, map_key).items()
            if instance.get_latest_materialization_event(trained_by) is not None]


def materialize_map(
    defs: dg.Definitions,
    keys: MapKeys,
    *,
    instance: dg.DagsterInstance | None = None,
    partition_keys: Sequence[str] | None = None,
    include_upstream: bool = False,
    refit: bool | None = None,
    log: Callable[[str], None] = lambda _: None,
    log_level: str = "DEBUG",
    logger: dg.LoggerDefinition | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_placed: Callable[[str, int | None], None] | None = None,
) -> MapBuildResult:
    """Bring the map up to date in-process, the way a backfill plus automation would.

    1. each of ``partition_keys`` (default: all): documents, embeddings, collection, the classes of
       every classifier of the map that has been trained (its asset materialized in ``instance``), and,
       when a layout model exists and no refit is asked, its 2-D placement;
    2. with ``refit`` (default: only when no layout model has been materialized yet): the layout model,
       then the placement of every partition;
    3. topics and the map: in the last partition's run when there is no refit, else in a run of their own.

    ``include_upstream`` also materializes the source asset of each partition (for a self-contained
    demo). ``log_level`` is the runs' console log level; ``logger`` replaces Dagster's console logger
    (it takes the same ``log_level`` config). ``should_stop`` is asked before and after every run: once
    it says True, or on a ``KeyboardInterrupt``, :class:`MapBuildInterrupted` is raised naming what was
    complete. ``on_placed`` is called with each partition key and its number of points in the collection
    once the partition is written and placed (what a later build may skip when its input is unchanged).
    Raises on the first failed run, after it has been recorded in ``instance``.
    """
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    pdef = next(a for a in assets if isinstance(a, dg.AssetsDefinition) and keys.documents in a.keys).partitions_def
    own_instance = instance is None
    instance = instance or dg.DagsterInstance.ephemeral()
    loggers = {"console": logger} if logger is not None else None
    stage = "the start"
    progress = _Progress(keys.collection, on_placed)
    def stop_if_asked() -> None:
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt

    def run(selection: dg.AssetSelection, partition: str | None = None) -> dg.ExecuteInProcessResult:
        stop_if_asked()
        result = run_selection(assets, resources, selection, instance=instance, partition=partition,
                               run_config=run_config, loggers=loggers)
        stop_if_asked()  # Dagster may swallow a Ctrl-C that arrives between two steps
        return result

    keys_to_run: list[str] = []
    (kept := keep_open()).__enter__()  # the runs share one load of an embedded collection (core/store)
    try:
        all_keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
        keys_to_run = list(partition_keys) if partition_keys is not None else all_keys
        if refit is None:
            refit = instance.get_latest_materialization_event(keys.projection_model) is None
        result = MapBuildResult(partitions=keys_to_run)
        tagged = _trained_classes(assets, keys.map, instance)  # in each partition's run: the map is drawn once
        ingest = dg.AssetSelection.assets(*(keys.ingest if refit else keys.per_partition), *tagged)
        if include_upstream:
            ingest = ingest | dg.AssetSelection.assets(keys.documents).upstream(depth=1)
        steps = ("documents -> embeddings -> collection" + ("" if refit else " -> projection")
                 + "".join(f" -> {c.path[-1]}" for c in tagged))
        summary = dg.AssetSelection.assets(*keys.summary)
        for i, partition in enumerate(keys_to_run, 1):
            # without a refit the last partition's run also brings topics and the map up to date (a run's
            # unpartitioned assets materialize unpartitioned): one run fewer, a third of an update's overhead
            last = not refit and i == len(keys_to_run)
            stage = f"partition {partition!r} ({steps})" + (", then topics and the map" if last else "")
            log(f"[{i}/{len(keys_to_run)}] partition {partition}: {steps}" + (" -> topics -> map" if last else ""))
            result.runs.append(run(ingest | summary if last else ingest, partition))
            progress.wrote(partition, result.runs[-1])
            if not refit:
                progress.placed(partition)
        if keys_to_run and not refit:
            return result
        if refit:
            stage = "the layout model (UMAP)"
            log("layout model (UMAP on a sample chosen by content, and the topics' cluster space)")
            result.runs.append(run(dg.AssetSelection.assets(keys.projection_model)))
            for i, partition in enumerate(all_keys, 1):
                stage = f"partition {partition!r} (projection)"
                log(f"[{i}/{len(all_keys)}] partition {partition}: projection")
                result.runs.append(run(dg.AssetSelection.assets(keys.projection), partition))
                progress.placed(partition)
        stage = "topics and the map"
        log("topics -> map")
        result.runs.append(run(summary))
        return result
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)) or (
                should_stop is not None and should_stop()):
            raise MapBuildInterrupted(stage, progress.written, progress.done, keys_to_run) from exc
        raise
    finally:
        kept.__exit__(None, None, None)
        if own_instance:
            instance.dispose()
