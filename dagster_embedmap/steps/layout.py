"""The 2-D layout: a model fitted on a sample of the whole map, and each partition's placement with it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import EmbedMapInputError
from ..core.paths import Log, MapLayout, atomic_path, read_json_state, read_or_set_aside, write_json
from ..core.layout.project import ProjectionModel, ProjectionSettings, fit_projection
from .common import Check, StoreOpener, without_pending

__all__ = ["LayoutFit", "Placement", "fit_layout", "place_partition", "load_layout_model", "layout_info",
           "MIN_POINTS"]

MIN_POINTS = 3
"""A layout needs at least this many points."""


_LOADED: dict[str, tuple[tuple[int, int, int], ProjectionModel]] = {}
"""The last layout model this process read, by path, with the file's inode, size and modification time:
the steps of one in-process run (the CLI's) read it once. A model is written by replacing its file
(:func:`~dagster_embedmap.core.paths.atomic_path`), which changes the inode, so a new one is read again.
Callers only read a model; none changes it."""


def _read_model(path: Path) -> ProjectionModel:
    stat = os.stat(path)
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    cached = _LOADED.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    model = ProjectionModel.load(path)
    if not isinstance(model, ProjectionModel):
        raise ValueError(f"expected a layout model, found {type(model).__name__}")
    _LOADED.clear()  # one model kept: a 1,000,000-point map's is hundreds of MB
    _LOADED[str(path)] = (key, model)
    return model


def load_layout_model(layout: MapLayout, log: Log | None = None, then: str | None = None,
                      refit_step: str = "projection_model") -> ProjectionModel | None:
    """The current layout model; None if none was fitted. An unreadable model file is set aside; then
    ``then`` is logged and None returned, or, without ``then``, the error says to refit (``refit_step``)."""
    return read_or_set_aside(layout.projection_model, _read_model, log=log, then=then,
                             holds="the map's fitted layout model (UMAP)",
                             fix=f"materialize {refit_step} to fit it again (points keep their places until the new "
                                 "layout places them)")


def layout_info(layout: MapLayout, log: Log | None = None) -> dict:
    """``projection_model.json`` (version, points at fit, fitted on); written again from the model itself
    when missing or unreadable. {} when there is no model."""
    info = read_json_state(layout.projection_model_info, log=log,
                           holds="a summary of the layout model (version, points at the fit)",
                           then="it is written again from the layout model")
    if info:
        return info
    model = load_layout_model(layout, log, then="the layout counts as not fitted")
    if model is None:
        return {}
    info = _info(model)
    write_json(layout.projection_model_info, info)
    return info


def _info(model: ProjectionModel) -> dict:
    return {"version": model.version, "points_at_fit": model.points_at_fit, "fitted_on": len(model.fitted)}


@dataclass
class LayoutFit:
    model: ProjectionModel
    points: int
    seconds: float
    aligned_to_version: int


def fit_layout(open_store: StoreOpener, layout: MapLayout, map_name: str, settings: ProjectionSettings, log: Log, *,
               collection_step: str = "collection", refit_step: str = "projection_model") -> LayoutFit:
    """Fit a new layout version on a sample of the map's points (partitions whose points are half written
    left out) and align it to where the points are now, so a refit keeps the map people know."""
    with open_store() as store:
        ids, vectors, payloads = without_pending(layout, map_name, collection_step, log, *store.read_vectors())
    if len(ids) < MIN_POINTS:
        raise EmbedMapInputError(
            f"map {map_name!r} has {len(ids)} record(s); laying a map out in 2-D needs at least {MIN_POINTS}. Add "
            f"records to its source and build again (in Dagster: materialize {collection_step} for more "
            f"partitions, then {refit_step})"
        )
    previous = load_layout_model(layout, log, then="the new layout is aligned to the points' current places")
    # the points' current places (those computed for their current vector) anchor the alignment
    previous_xy = {pid: (p["x"], p["y"]) for pid, p in zip(ids, payloads)
                   if p.get("x") is not None and p.get("y") is not None and p.get("xy_hash") == p.get("vector_hash")}
    versions = [int(p["layout_version"]) for p in payloads if isinstance(p.get("layout_version"), int)]
    started = time.perf_counter()
    model = fit_projection(ids, vectors, settings,
                           previous=previous, previous_xy=previous_xy or None, after_version=max(versions, default=0))
    seconds = time.perf_counter() - started
    model.save(layout.projection_model)
    write_json(layout.projection_model_info, _info(model))
    return LayoutFit(model=model, points=len(ids), seconds=seconds,
                     aligned_to_version=previous.version if previous is not None else 0)


@dataclass
class Placement:
    path: Path
    frame: pl.DataFrame
    placed: int
    kept: int
    version: int
    seconds: float
    current: int
    """Points whose place was computed from their current vector."""

    def check(self) -> Check:
        finite = int(self.frame.select((pl.col("x").is_finite() & pl.col("y").is_finite()).sum()).item() or 0)
        n = self.frame.height
        return Check("every_point_projected", finite == n and self.current == n,
                     {"projected": finite, "points": n, "placed_for_current_vector": self.current})


def place_partition(open_store: StoreOpener, layout: MapLayout, partition: str, *,
                    refit_step: str = "projection_model") -> Placement:
    """Give the partition's points x, y with the current layout model: every point not yet placed by this
    layout version, or whose vector changed since it was placed (``xy_hash`` != ``vector_hash``). The
    others keep their place. Writes ``coordinates/<partition>.parquet``."""
    model = load_layout_model(layout, refit_step=refit_step)
    if model is None:
        raise EmbedMapInputError(f"partition {partition!r}: no layout model yet; materialize {refit_step} first")
    with open_store() as store:
        ids, vectors, payloads = store.read_vectors(partition)
    todo = [i for i, p in enumerate(payloads)
            if p.get("layout_version") != model.version or p.get("x") is None or p.get("xy_hash") != p.get("vector_hash")]
    started = time.perf_counter()
    xy = model.place([ids[i] for i in todo], vectors[todo]) if todo else np.empty((0, 2), np.float32)
    seconds = time.perf_counter() - started
    if todo:
        with open_store() as store:
            store.set_payloads({ids[i]: {"x": float(x), "y": float(y), "layout_version": model.version,
                                         "xy_hash": payloads[i].get("vector_hash")}
                                for i, (x, y) in zip(todo, xy)})
    placed = {ids[i]: (float(x), float(y)) for i, (x, y) in zip(todo, xy)}
    coords = [placed.get(pid) or (payloads[i].get("x"), payloads[i].get("y")) for i, pid in enumerate(ids)]
    redone = {ids[i] for i in todo}
    current = [pid in redone or p.get("xy_hash") == p.get("vector_hash") for pid, p in zip(ids, payloads)]
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
    return Placement(path=path, frame=frame, placed=len(todo), kept=len(ids) - len(todo), version=model.version,
                     seconds=seconds, current=sum(current))
