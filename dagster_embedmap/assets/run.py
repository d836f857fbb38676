"""Materialize a whole map in-process: each partition's run, then the global steps (what a backfill does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

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


class MapBuildInterrupted(Exception):
    """The build was interrupted (Ctrl-C, SIGTERM): where it stopped, and which partitions were already
    written to the collection (``written``) and placed on the map (``placed``)."""

    def __init__(self, stage: str, written: Sequence[str], placed: Sequence[str], partitions: Sequence[str]):
        self.stage, self.written, self.placed, self.partitions = stage, list(written), list(placed), list(partitions)

        def some(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

        only_written = [p for p in self.written if p not in self.placed]
        parts = []
        if self.placed:
            parts.append(f"partition(s) {some(self.placed)} are written and placed")
        if only_written:
            parts.append(f"partition(s) {some(only_written)} are written to the collection, not yet placed")
        done = "; ".join(parts) if parts else f"none of the {len(self.partitions)} partition(s) was finished"
        super().__init__(f"interrupted during {stage}; {done}")


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
) -> MapBuildResult:
    """Bring the map up to date in-process, the way a backfill plus automation would.

    1. each of ``partition_keys`` (default: all): documents, embeddings, collection, and, when a layout
       model exists and no refit is asked, its 2-D placement;
    2. with ``refit`` (default: only when no layout model has been materialized yet): the layout model,
       then the placement of every partition;
    3. topics and the map.

    ``include_upstream`` also materializes the source asset of each partition (for a self-contained
    demo). ``log_level`` is the runs' console log level; ``logger`` replaces Dagster's console logger
    (it takes the same ``log_level`` config). ``should_stop`` is asked before and after every run: once
    it says True, or on a ``KeyboardInterrupt``, :class:`MapBuildInterrupted` is raised naming what was
    complete. Raises on the first failed run, after it has been recorded in ``instance``.
    """
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    documents_def = next(a for a in assets if isinstance(a, dg.AssetsDefinition) and keys.documents in a.keys)
    pdef = documents_def.partitions_def
    own_instance = instance is None
    instance = instance or dg.DagsterInstance.ephemeral()
    loggers = {"console": logger} if logger is not None else None
    stage = "the start"
    written: list[str] = []
    placed: list[str] = []

    def stop_if_asked() -> None:
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt

    def run(selection: dg.AssetSelection, partition: str | None = None) -> dg.ExecuteInProcessResult:
        stop_if_asked()
        job_defs = dg.Definitions(jobs=[dg.define_asset_job(_JOB, selection=selection)], assets=assets,
                                  resources=resources, loggers=loggers)
        result = job_defs.resolve_job_def(_JOB).execute_in_process(
            run_config=run_config, instance=instance, partition_key=partition)
        stop_if_asked()  # Dagster may swallow a Ctrl-C that arrives between two steps
        return result

    keys_to_run: list[str] = []
    try:
        all_keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
        keys_to_run = list(partition_keys) if partition_keys is not None else all_keys
        if refit is None:
            refit = instance.get_latest_materialization_event(keys.projection_model) is None
        result = MapBuildResult(partitions=keys_to_run)
        ingest = dg.AssetSelection.assets(*(keys.ingest if refit else keys.per_partition))
        if include_upstream:
            ingest = ingest | dg.AssetSelection.assets(keys.documents).upstream(depth=1)
        steps = "documents -> embeddings -> collection" + ("" if refit else " -> projection")
        for i, partition in enumerate(keys_to_run, 1):
            stage = f"partition {partition!r} ({steps})"
            log(f"[{i}/{len(keys_to_run)}] partition {partition}: {steps}")
            result.runs.append(run(ingest, partition))
            written.append(partition)
            if not refit:
                placed.append(partition)
        if refit:
            stage = "the layout model (UMAP)"
            log("layout model (UMAP on a sample chosen by content, and the topics' cluster space)")
            result.runs.append(run(dg.AssetSelection.assets(keys.projection_model)))
            for i, partition in enumerate(all_keys, 1):
                stage = f"partition {partition!r} (projection)"
                log(f"[{i}/{len(all_keys)}] partition {partition}: projection")
                result.runs.append(run(dg.AssetSelection.assets(keys.projection), partition))
                placed.append(partition)
        stage = "topics and the map"
        log("topics -> map")
        result.runs.append(run(dg.AssetSelection.assets(*keys.summary)))
        return result
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)) or (
                should_stop is not None and should_stop()):
            raise MapBuildInterrupted(stage, written, placed, keys_to_run) from exc
        raise
    finally:
        if own_instance:
            instance.dispose()
