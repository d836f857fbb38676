"""A map's jobs, its refit schedule and its sensors (layout drift, landing files)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from ..core.paths import MapLayout
from ..core.records.sources import FileSource
from ..sensors import build_landing_sensor
from ..steps.layout import layout_info
from .keys import MapKeys

__all__ = ["MapJobs", "map_schedules", "map_sensors", "drift_sensor"]


class MapJobs:
    """The map's three jobs: one partition's ingest, the layout refit, the topics and the map."""

    def __init__(self, name: str, group: str, keys: MapKeys, pdef: dg.PartitionsDefinition):
        self.ingest = dg.define_asset_job(
            f"{group}_partitions", selection=dg.AssetSelection.assets(*keys.ingest), partitions_def=pdef,
            description=f"Documents, embeddings and Qdrant points of one partition of map {name!r} (what a landed "
            "file or a backfill runs; automation places the points and refreshes topics and the map after it).",
        )
        self.refit = dg.define_asset_job(
            f"{group}_refit", selection=dg.AssetSelection.assets(keys.projection_model),
            description=f"Refit the layout model of {name!r}; automation then re-places every partition and "
            "reclusters.",
        )
        self.map = dg.define_asset_job(
            f"{group}_map", selection=dg.AssetSelection.assets(*keys.summary),
            description=f"Topics and the rendered map of {name!r}, from the whole collection.",
        )

    def all(self) -> list:
        return [self.ingest, self.refit, self.map]


def map_schedules(name: str, group: str, jobs: MapJobs, refit_cron: str | None,
                  running: bool) -> list[dg.ScheduleDefinition]:
    """The periodic refit of the layout (none without ``refit_cron``)."""
    if not refit_cron:
        return []
    return [dg.ScheduleDefinition(
        name=f"{group}_refit_schedule", job=jobs.refit, cron_schedule=refit_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description=f"Periodic full refit of the layout of {name!r} (aligned to the previous layout).",
    )]


def map_sensors(group: str, layout: MapLayout, source, pdef: dg.PartitionsDefinition, jobs: MapJobs, *,
                refit_drift_share: float | None, max_runs_per_tick: int, sensor_interval_s: int,
                running: bool) -> list[dg.SensorDefinition]:
    """The drift sensor (unless ``refit_drift_share`` is None) and, for a file glob source with dynamic
    partitions of one file each, the landing sensor."""
    status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    sensors = [drift_sensor(f"{group}_drift_sensor", layout, pdef, jobs.refit, refit_drift_share, status)
               ] if refit_drift_share else []
    if isinstance(pdef, dg.DynamicPartitionsDefinition) and isinstance(source, FileSource) and source.per_file:
        sensors.append(build_landing_sensor(f"{group}_landing_sensor", source, pdef, jobs.ingest, cleanup_job=jobs.map,
                                            max_runs_per_tick=max_runs_per_tick,
                                            minimum_interval_seconds=sensor_interval_s, default_status=status))
    return sensors


def drift_sensor(name: str, layout: MapLayout, pdef: dg.PartitionsDefinition, refit_job, share: float,
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
