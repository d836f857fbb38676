"""``embedmap build`` and ``embedmap demo``: the map's assets run in-process, only the partitions whose
input changed (see :mod:`dagster_embedmap.core.records.rebuild`), under the map's build lock."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .home import MANIFEST, STORE_FOLDER, _build_lock, _instance, _read_manifest, _store_location, _write_manifest
from .output import _CliLog, _cli_logger, _log, _one_line


class _Interrupts:
    """Notices Ctrl-C (SIGINT) and SIGTERM whatever handler is installed when they arrive: during a run
    Dagster swaps the handlers and may swallow a signal that lands between two steps. The interpreter
    writes every signal it receives to the wakeup file descriptor, which this reads."""

    def __enter__(self) -> "_Interrupts":
        self.seen = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def _unraisable(self, unraisable) -> None:
        # an interrupt raised inside a C callback (numba compiling, say) cannot propagate: note it quietly
        if isinstance(unraisable.exc_value, BaseException) and not isinstance(unraisable.exc_value, Exception):
            self.seen = True
            return
        self._previous_hook(unraisable)

    def __call__(self) -> bool:
        try:
            received = os.read(self._read, 1024)
        except BlockingIOError:
            received = b""
        if signal.SIGINT in received or signal.SIGTERM in received:
            self.seen = True
        return self.seen

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        signal.signal(signal.SIGTERM, self._previous_term)
        sys.unraisablehook = self._previous_hook
        os.close(self._read)
        os.close(self._write)


def _quiet_dagster() -> None:
    """Keep the console to our own progress lines: no weight-loading bars when the model loads."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


def _summary(home: Path, name: str, result, started: float, top: int = 10) -> None:
    import polars as pl

    from ..assets import MapKeys
    from ..core.paths import MapLayout

    layout = MapLayout(home, name)
    keys = MapKeys.for_map(name)
    failed = [k for k, ok in result.check_results().items() if not ok]
    try:
        coll = result.metadata(keys.collection)
    except KeyError:  # no partition ran in this build: only the global steps
        coll = {"collection": name, "qdrant": _store_location(home, _read_manifest(home)["maps"].get(name) or {}).describe()}
    _log("")
    _log(f"map        {layout.html}")
    _log(f"preview    {layout.png}")
    _log(f"collection {coll['collection']!r} in {coll['qdrant']} ({result.metadata(keys.map)['dagster/row_count']} points)")
    rates = []
    for run in result.runs:
        for event in run.get_asset_materialization_events():
            if event.asset_key == keys.embeddings:
                rates.append(event.materialization.metadata["docs_per_s"].value)
    if rates:
        _log(f"embedding  {sum(rates) / len(rates):.1f} docs/s (mean over {len(rates)} partition(s))")
    _log(f"checks     {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    _log(f"wall time  {time.perf_counter() - started:.1f} s")
    table = pl.read_parquet(layout.topics)
    depth = int(table["level"].max()) + 1
    for level in range(depth):
        topics = table.filter((pl.col("level") == level) & (pl.col("topic_id") >= 0))
        what = "broad topics" if level == 0 and depth > 1 else "topics" if level == depth - 1 else f"level-{level} topics"
        _log(f"\ntop {what} ({topics.height} in all):")
        for row in topics.head(top).iter_rows(named=True):
            _log(f"  {row['topic_id']:>3}  {row['size']:>5}  {_one_line(row['label'], 80)}")


def cmd_build(args: argparse.Namespace) -> int:
    from ..core.records.rebuild import settings_digest

    started = time.perf_counter()
    if not args.text_column and not args.image_column:
        raise SystemExit("embedmap: give --text-column COLUMN (the text to embed), --image-column COLUMN (image "
                         "paths, with a CLIP-family --model), or both")
    home = Path(args.home).expanduser().resolve()
    source = file_source(args.input, args.partition_column)
    name = args.name or _map_name(args.input)
    entry = {
        "input": args.input,
        "text_column": args.text_column,
        "id_column": args.id_column,
        "vector_column": args.vector_column,
        "partition_column": args.partition_column,
        "qdrant_path": STORE_FOLDER,
        "engine": "edge",
        "collection": name,
        "model": args.model,
    }
    if args.image_column:  # (a map of texts keeps the manifest entry, and so the settings digest, it had)
        entry["image_column"] = args.image_column
    # device and batch size do not change what is written: a rebuild on another device runs nothing again
    digest = settings_digest({**entry, "backend": args.backend, "empty_text": args.empty_text,
                              **({"bad_image": args.bad_image} if args.image_column else {})})
    inputs = (source.fingerprints(), digest)
    if _nothing_to_do(home, name, inputs, started):  # before Dagster and the layout's libraries load
        return 0
    import dagster as dg

    from .. import ImageSettings, build_embedmap_defs, embedmap_resources
    from .classify import saved_classifiers

    # the classifiers `embedmap classify` trained stay with the map: each partition this build runs is
    # tagged in its own run (materialize_map), and the map is drawn once, with the classes
    kept = (_read_manifest(home)["maps"].get(name) or {}).get("classifiers") if (home / MANIFEST).exists() else None
    if kept:
        entry["classifiers"] = kept
    defs = dg.Definitions.merge(
        build_embedmap_defs(
            name,
            source,
            id_column=args.id_column,
            text_column=args.text_column,
            vector_column=args.vector_column,
            empty_text=args.empty_text,
            image_column=args.image_column,
            images=ImageSettings(bad=args.bad_image),
            home=home,
            classifiers=saved_classifiers(entry),
        ),
        dg.Definitions(resources=embedmap_resources(home, **_embedder_kwargs(args))),
    )
    return _build(home, name, defs, entry, started, inputs=inputs)


def file_source(text: str, partition_column: str | None):
    """The FileSource of ``build``'s input: a file by its absolute path, a glob as given."""
    from ..core.records.sources import FileSource

    path = str(Path(text).expanduser().resolve()) if not any(c in text for c in "*?[") else text
    return FileSource(path, partition_column=partition_column)


def _nothing_to_do(home: Path, name: str, inputs: tuple[dict[str, str], str], started: float) -> bool:
    """True (and said so) when the map is up to date with these inputs: every partition's input and the
    build settings as the last, finished, build left them, its files and its store's points all there.
    Read without the build lock: a build still running has not finished, so this answers False and
    the build waits for it."""
    from ..core.records.rebuild import plan_rebuild
    from ..core.paths import MapLayout

    if not home.is_dir() or not (home / MANIFEST).exists():
        return False
    before = _read_manifest(home)["maps"].get(name) or {}
    plan = plan_rebuild(before.get("built"), *inputs)
    if plan.anything or not MapLayout(home, name).projection_model.exists() or not _up_to_date(home, name, before, plan):
        return False
    _log(f"map {name!r} is up to date: its {len(plan.unchanged)} partition(s) are unchanged since the last build, "
         f"so nothing was run ({time.perf_counter() - started:.1f} s)\nmap        {MapLayout(home, name).html}")
    return True


def _build(home: Path, name: str, defs, entry: dict, started: float, include_upstream: bool = False,
           inputs: tuple[dict[str, str], str] | None = None) -> int:
    """Materialize the map under its build lock; the manifest says which input the store holds, and
    whether that build completed. With ``inputs`` (each partition's input fingerprint, and the digest
    of the build settings) only new or changed partitions run, and nothing at all when the map is up
    to date."""
    from ..assets import MapKeys, materialize_map
    from ..core.records.rebuild import plan_rebuild
    from ..core.store import keep_open

    if entry.get("vector_column") is None:  # the model loads (importing transformers costs ~1 s otherwise)
        _quiet_dagster()
    keys = MapKeys.for_map(name)
    with keep_open(), _Interrupts() as interrupted, _build_lock(home, name):
        before = _read_manifest(home)["maps"].get(name) or {}
        plan = plan_rebuild(before.get("built"), *inputs) if inputs is not None else None
        refit = _needs_refit(home, name)
        built: dict = {}
        if plan is not None:
            plan = _rechecked(home, name, before, plan)
            _log(plan.describe())
            last = before.get("built") or {}
            built = {"settings": inputs[1], "partitions": {k: last["partitions"][k] for k in plan.unchanged},
                     "points": {k: (last.get("points") or {}).get(k) for k in plan.unchanged}}

        def placed(partition: str, points: int | None) -> None:  # what the next build may skip
            built["partitions"][partition] = inputs[0][partition]
            built["points"][partition] = points
            _write_manifest(home, name, {**entry, "complete": False, "built": built})

        placed_hook = placed if plan is not None else None
        _write_manifest(home, name, {**entry, "complete": False, "built": built})
        instance = _instance(home)
        try:
            result = materialize_map(defs, keys, instance=instance, include_upstream=include_upstream,
                                     partition_keys=plan.changed if plan is not None else None,
                                     log=_log, log_level="INFO", logger=_cli_logger(), should_stop=interrupted,
                                     refit=refit, on_placed=placed_hook)
        finally:
            instance.dispose()
        _write_manifest(home, name, {**entry, "complete": result.success, "built": built})
        _summary(home, name, result, started)
    return 0 if result.success else 1


def _up_to_date(home: Path, name: str, before: dict, plan) -> bool:
    """The last build finished; its layout model, topic state and table, and map are there and readable;
    every partition's files are (:func:`_damaged`); and the store holds the points it wrote (a store
    deleted or replaced since is built again)."""
    from ..core.paths import MapLayout

    layout = MapLayout(home, name)
    if before.get("complete") is not True or not _global_files_readable(layout):
        return False
    return not _rechecked(home, name, before, plan, say=False).changed


def _rechecked(home: Path, name: str, before: dict, plan, say: bool = True):
    """``plan`` with the unchanged partitions a build must still run: their files damaged
    (:func:`_damaged`) or their points gone from the store (:func:`_missing_from_store`)."""
    from ..core.paths import MapLayout

    return _missing_from_store(home, name, before, _damaged(MapLayout(home, name), plan, say=say), say=say)


def _global_files_readable(layout) -> bool:
    """The global steps' files read back (the JSON state parses, the tables' footers read, the layout
    model is a whole pickle): one that does not means a build, whose steps name it and recover."""
    import json

    try:
        for path in (layout.projection_model_info, layout.topics_state):
            json.loads(path.read_text(encoding="utf-8"))
        model = layout.projection_model.read_bytes()
    except (OSError, ValueError):
        return False
    return model[:1] == b"\x80" and model[-1:] == b"." and _parquet_readable(layout.topics) and layout.html.exists()


def _parquet_readable(path: Path) -> bool:
    import polars as pl

    try:
        pl.read_parquet_schema(path)
    except Exception:  # missing, truncated, not parquet: whichever, the step that writes it runs again
        return False
    return True


def _damaged(layout, plan, say: bool = True):
    """``plan`` with every unchanged partition whose own files (documents, embeddings, coordinates) are
    missing or unreadable, or whose last write into the store did not finish, moved to the partitions
    to run: their steps then name the file, set it aside and write it again."""
    pending = layout.pending_partitions()
    bad = [k for k in plan.unchanged if k in pending or not all(
        _parquet_readable(path) for path in (layout.documents(k), layout.embeddings(k), layout.coordinates(k)))]
    if bad and say:
        _log(f"{len(bad)} unchanged partition(s) ({', '.join(bad[:5])}) have a file missing or unreadable, or a "
             "write that did not finish; they run again")
    return plan.run_again(bad)


def _missing_from_store(home: Path, name: str, before: dict, plan, say: bool = True):
    """``plan`` with every unchanged partition whose points the store no longer holds (as many as the
    last build wrote: the store was deleted, replaced or edited since) moved to the partitions to run."""
    from ..core.store import open_store

    recorded = (before.get("built") or {}).get("points")
    recorded = recorded if isinstance(recorded, dict) else {}
    if not plan.unchanged:
        return plan
    with open_store(_store_location(home, before), before.get("collection", name), read_only=True) as store:
        if not store.exists():
            lost = list(plan.unchanged)
        elif store.count() == sum(v for v in recorded.values() if isinstance(v, int)):
            lost = [k for k in plan.unchanged if not isinstance(recorded.get(k), int)]
        else:  # points added or lost somewhere: which partitions?
            lost = [k for k in plan.unchanged if store.count(partition=k) != recorded.get(k)]
    if lost and say:
        _log(f"the store no longer holds the points the last build wrote for {len(lost)} partition(s); they are "
             "written again")
    return plan.run_again(lost)


def _needs_refit(home: Path, name: str) -> bool | None:
    """True when the map's layout model file is missing (a first build, or a lost file) or cannot be read
    (it is set aside, and said so): the build fits one. None when it is there: the run history decides."""
    from ..core.paths import MapLayout
    from ..steps.layout import layout_info, load_layout_model

    layout = MapLayout(home, name)
    if not layout.projection_model.exists():
        return True
    model = load_layout_model(layout, _CliLog(), then="the layout is fitted again")
    if model is None:
        return True
    layout_info(layout, _CliLog())  # its summary, written again if unreadable
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser().resolve()
    os.environ["EMBEDMAP_HOME"] = str(home)
    os.environ["EMBEDMAP_DEMO_SIZE"] = "full" if args.full else str(args.size)
    from ..core.embedding.model import DEFAULT_MODEL
    from ..examples import wiki

    started = time.perf_counter()
    entry = {"input": "wiki demo corpus", "qdrant_path": STORE_FOLDER, "engine": "edge", "collection": wiki.MAP_NAME,
             "model": DEFAULT_MODEL}
    code = _build(home, wiki.MAP_NAME, wiki.defs, entry, started, include_upstream=True)
    _log(f"\nopen {Path(home, wiki.MAP_NAME, 'map.html')} in a browser, or run "
         f"`EMBEDMAP_HOME={home} DAGSTER_HOME={home / 'dagster'} bash scripts/ui.sh` (in the repository) for the "
         f"lineage and the runs")
    return code


def _map_name(path: str) -> str:
    from ..core.paths import partition_filename

    stem = Path(path.split("*")[0] or "map").stem or "map"
    return partition_filename(stem)


def _embedder_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return {"model": args.model, "device": args.device, "batch_size": args.batch_size, "backend": args.backend}
