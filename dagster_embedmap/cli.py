"""``embedmap``: build, inspect and export data maps without writing Dagster code.

The commands run the very same assets in-process, recording runs in a Dagster instance inside
``--home`` (``<home>/dagster``), so ``DAGSTER_HOME=<home>/dagster dagster dev`` shows their history.

    embedmap build data.jsonl --text-column body --id-column id --home maps/
    embedmap export --home maps/ --out points.parquet
    embedmap search --home maps/ "rockets and orbits" [--topic 3] [-k 10]
    embedmap demo --home .embedmap
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .cli_errors import _terminal_safe

__all__ = ["main"]

MANIFEST = "embedmap.json"
STORE_FOLDER = "qdrant"
"""The embedded Qdrant's folder inside a home; the manifest records it relative to the home."""
INTERRUPTED = 130


def _log(message: str) -> None:
    print(_terminal_safe(message), flush=True)


def _warn(message: str) -> None:
    print(_terminal_safe(f"warning: {message}"), file=sys.stderr, flush=True)


class _CliLog:
    """What the core's steps write to (``info`` / ``warning``) when the CLI calls them directly."""

    def info(self, message: str) -> None:
        _log(message)

    def warning(self, message: str) -> None:
        _warn(message)


class _StepMessages(logging.Handler):
    """The runs' log records as CLI lines: a step's own messages, one line each (warnings to stderr);
    Dagster's event records (step started, failed with a stack trace, ...) are left to the run history
    in ``<home>/dagster``: the CLI says what failed itself, in one paragraph."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        if meta.get("dagster_event") is not None:
            return
        message = meta.get("orig_message") or record.getMessage()
        (_warn if record.levelno >= logging.WARNING else _log)(message)


def _cli_logger():
    import dagster as dg

    @dg.logger(dg.Field({"log_level": dg.Field(str, is_required=False, default_value="INFO")}),
               description="The embedmap CLI's console: the steps' own messages, one line each.")
    def cli_console(init_context) -> logging.Logger:
        logger = logging.Logger("embedmap", level=init_context.logger_config["log_level"])
        logger.addHandler(_StepMessages())
        return logger

    return cli_console


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
    """Keep the console to our own progress lines: no per-event debug logs, no weight-loading bars."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


def _instance(home: Path):
    import dagster as dg

    from .cli_support import telemetry_off

    folder = home / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    telemetry_off(folder / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(folder))


def _read_manifest(home: Path) -> dict:
    """``{"maps": {name: entry}}``. An unreadable manifest is named and set aside; without a readable one
    the maps are found from the home's own folders (each map's folder beside its collection in the store)."""
    from .core.paths import read_json_state, set_aside

    path = home / MANIFEST
    recover = "the maps are found from the home's folders instead (the next `embedmap build` writes it again)"
    data = read_json_state(path, log=_CliLog(), then=recover,
                           holds="the list of the maps built in this home (input, columns, model and store of each)")
    maps = data.get("maps") if data else None
    if maps is not None and not (isinstance(maps, dict) and all(isinstance(v, dict) for v in maps.values())):
        aside = set_aside(path)
        _warn(f"{path} does not hold a list of maps; it was set aside as {aside.name}, and {recover}")
        maps = None
    if maps is None:  # missing or unreadable: what the home's folders hold
        maps = _discover_maps(home)
    return {"maps": maps}


def _discover_maps(home: Path) -> dict[str, dict]:
    """The maps a home holds, found from its folders: a map folder with documents whose collection is in
    the embedded store (what `embedmap build` writes)."""
    found: dict[str, dict] = {}
    store = home / STORE_FOLDER
    for folder in sorted(p for p in home.iterdir() if p.is_dir()) if home.is_dir() else []:
        if not (folder / "documents").is_dir():
            continue
        engine = "edge" if (store / "edge" / f"{folder.name}.json").exists() else \
            "local" if (store / "collection" / folder.name).exists() else None
        if engine is None:
            continue
        found[folder.name] = {"collection": folder.name, "qdrant_path": STORE_FOLDER, "engine": engine,
                              "model": None, "input": None, "recovered": True}
    if found:
        _warn(f"found map(s) {sorted(found)} in {home}; their input and model are not known until they are built "
              "again (search uses the bundled model)")
    return found


def _write_manifest(home: Path, name: str, entry: dict) -> None:
    from .core.paths import write_json

    home.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(home)
    manifest["maps"][name] = entry
    write_json(home / MANIFEST, manifest)


def _store_location(home: Path, entry: dict):
    """Where a map's collection is: the manifest's ``qdrant_path``, relative to the home. Manifests of
    earlier versions hold an absolute path; a home's store was always its ``qdrant`` folder, so that is
    used (a copied home reads its own store, never the one it was copied from)."""
    from .core.store import StoreLocation

    recorded = Path(entry.get("qdrant_path") or STORE_FOLDER)
    folder = home / STORE_FOLDER if recorded.is_absolute() else home / recorded
    if recorded.is_absolute() and recorded != home / STORE_FOLDER:
        _warn(f"{home / MANIFEST} names the store {recorded}, outside this home (a manifest from before paths "
              f"were kept relative); reading this home's own store {folder}")
    # a manifest without an engine was written before the edge engine became the default
    return StoreLocation(path=str(folder), engine=entry.get("engine", "local"))


@contextmanager
def _build_lock(home: Path, name: str) -> Iterator[None]:
    """One build of a map at a time: a second `embedmap build` of the same map waits for the first, so
    the manifest and the store always describe the same build."""
    from .core.paths import MapLayout, file_lock

    layout = MapLayout(home, name)
    waiting = lambda: _log(f"waiting for another build of map {name!r} in {home} to finish ...")  # noqa: E731
    with file_lock(layout.root / ".build.lock", on_wait=waiting):
        yield


def _pick_map(home: Path, name: str | None) -> tuple[str, dict]:
    maps = _read_manifest(home)["maps"]
    if name:
        if name not in maps:
            raise SystemExit(f"embedmap: no map named {name!r} in {home} (maps: {sorted(maps) or 'none'})")
        return name, maps[name]
    if len(maps) != 1:
        raise SystemExit(
            f"embedmap: {home} holds {len(maps)} maps ({sorted(maps) or 'none'}); pick one with --name"
            if maps
            else f"embedmap: no map built in {home} yet; run `embedmap build` or `embedmap demo` first"
        )
    return next(iter(maps.items()))


def _summary(home: Path, name: str, result, started: float, top: int = 10) -> None:
    import polars as pl

    from .assets import MapKeys
    from .core.paths import MapLayout

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
    from .core.records.rebuild import settings_digest
    from .core.records.sources import FileSource

    started = time.perf_counter()
    home = Path(args.home).expanduser().resolve()
    source = FileSource(str(Path(args.input).expanduser().resolve()) if not any(c in args.input for c in "*?[") else args.input,
                        partition_column=args.partition_column)
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
    # device and batch size do not change what is written: a rebuild on another device runs nothing again
    digest = settings_digest({**entry, "backend": args.backend, "empty_text": args.empty_text})
    inputs = (source.fingerprints(), digest)
    if _nothing_to_do(home, name, inputs, started):  # before Dagster and the layout's libraries load
        return 0
    import dagster as dg

    from . import build_embedmap_defs, embedmap_resources

    defs = dg.Definitions.merge(
        build_embedmap_defs(
            name,
            source,
            id_column=args.id_column,
            text_column=args.text_column,
            vector_column=args.vector_column,
            empty_text=args.empty_text,
            home=home,
        ),
        dg.Definitions(resources=embedmap_resources(home, **_embedder_kwargs(args))),
    )
    return _build(home, name, defs, entry, started, inputs=inputs)


def _nothing_to_do(home: Path, name: str, inputs: tuple[dict[str, str], str], started: float) -> bool:
    """True (and said so) when the map is up to date with these inputs: every partition's input and the
    build settings as the last, finished, build left them, its files and its store's points all there.
    Read without the build lock: a build still running has not finished, so this answers False and
    the build waits for it."""
    from .core.records.rebuild import plan_rebuild
    from .core.paths import MapLayout

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
    from .assets import MapKeys, materialize_map
    from .core.records.rebuild import plan_rebuild

    _quiet_dagster()
    keys = MapKeys.for_map(name)
    with _Interrupts() as interrupted, _build_lock(home, name):
        before = _read_manifest(home)["maps"].get(name) or {}
        plan = plan_rebuild(before.get("built"), *inputs) if inputs is not None else None
        refit = _needs_refit(home, name)
        built: dict = {}
        if plan is not None:
            plan = _missing_from_store(home, name, before, plan)
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
    """The last build finished, its map and topics files are there, and the store holds the points it
    wrote (a store deleted or replaced since is built again)."""
    from .core.paths import MapLayout

    layout = MapLayout(home, name)
    if before.get("complete") is not True or not (layout.html.exists() and layout.topics.exists()):
        return False
    return not _missing_from_store(home, name, before, plan, say=False).changed


def _missing_from_store(home: Path, name: str, before: dict, plan, say: bool = True):
    """``plan`` with every unchanged partition whose points the store no longer holds (as many as the
    last build wrote: the store was deleted, replaced or edited since) moved to the partitions to run."""
    from dataclasses import replace

    from .core.store import open_store

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
    if not lost:
        return plan
    if say:
        _log(f"the store no longer holds the points the last build wrote for {len(lost)} partition(s); they are "
             "written again")
    return replace(plan, changed=sorted({*plan.changed, *lost}), unchanged=[k for k in plan.unchanged if k not in lost])


def _needs_refit(home: Path, name: str) -> bool | None:
    """True when the map's layout model file is missing (a first build, or a lost file) or cannot be read
    (it is set aside, and said so): the build fits one. None when it is there: the run history decides."""
    from .core.paths import MapLayout
    from .steps.layout import layout_info, load_layout_model

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
    from .core.embedding.model import DEFAULT_MODEL
    from .examples import wiki

    started = time.perf_counter()
    entry = {"input": "wiki demo corpus", "qdrant_path": STORE_FOLDER, "engine": "edge", "collection": wiki.MAP_NAME,
             "model": DEFAULT_MODEL}
    code = _build(home, wiki.MAP_NAME, wiki.defs, entry, started, include_upstream=True)
    _log(f"\nopen {Path(home, wiki.MAP_NAME, 'map.html')} in a browser, or run "
         f"`DAGSTER_HOME={home / 'dagster'} dagster dev -w workspace.yaml` for the lineage and the runs")
    return code


def cmd_export(args: argparse.Namespace) -> int:
    import polars as pl

    from .core.records.documents import RESERVED_COLUMNS
    from .core.records.sources import output_format, write_table
    from .core.paths import MapLayout
    from .core.store.payload import PIPELINE_FIELDS, full_texts, points_frame
    from .core.store import open_store

    out = Path(args.out)
    fmt = output_format(out)  # an extension it cannot write is refused before any work
    home = Path(args.home).expanduser().resolve()
    name, entry = _pick_map(home, args.name)
    location = _store_location(home, entry)
    with open_store(location, entry["collection"], read_only=True) as store:
        points = points_frame(store)
    if points.is_empty():
        raise SystemExit(f"embedmap: map {name!r} has no points in {location.folder()}")
    _warn_incomplete(name, entry)
    points = points.drop(PIPELINE_FIELDS, strict=False)
    if args.with_text:  # the whole text, not the payload's snippet
        layout = MapLayout(home, name)
        points = points.with_columns(pl.Series("text", full_texts(points, layout.documents), dtype=pl.String))
    else:
        points = points.drop("text")
    out.parent.mkdir(parents=True, exist_ok=True)
    as_json = write_table(points, out)
    _log(f"wrote {points.height} points of map {name!r} to {out} as {fmt} (columns: {', '.join(points.columns)})")
    if as_json:
        _log(f"note: CSV holds no lists or structs: column(s) {', '.join(as_json)} written as JSON text")
    renamed = [c for c in points.columns if c.startswith("meta_") and c[len("meta_"):] in RESERVED_COLUMNS]
    if renamed:
        _log(f"note: {', '.join(renamed)} are the input's columns {', '.join(c[len('meta_'):] for c in renamed)}, "
             "renamed because the map uses those names itself")
    return 0


def _warn_incomplete(name: str, entry: dict) -> None:
    if entry.get("complete") is False:
        _warn(f"the last build of map {name!r} (input {entry.get('input')!r}) did not finish; the map may still show "
              "some records of the build before it. Run that build again to finish it")


def _one_line(text: object, limit: int) -> str:
    """Record text made safe for a terminal: no control characters (escape sequences), one line."""
    cleaned = " ".join(_terminal_safe("" if text is None else text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _parse_where(pairs: Sequence[str]) -> dict[str, object]:
    where: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"embedmap: --where takes FIELD=VALUE, got {pair!r}")
        where[key] = int(value) if value.lstrip("-").isdigit() else value
    return where


def cmd_search(args: argparse.Namespace) -> int:
    from .core.embedding import DEFAULT_MODEL, Encoder, EncoderSettings
    from .cli_support import check_topic
    from .core.store.search import explain_no_match, search_map
    from .core.store import open_store

    _quiet_dagster()
    home = Path(args.home).expanduser().resolve()
    name, entry = _pick_map(home, args.name)
    topic: int | str | None = None
    if args.topic is not None:
        topic = int(args.topic) if args.topic.lstrip("-").isdigit() else args.topic
    check_topic(home, name, topic, args.level)
    where = _parse_where(args.where)
    encoder = Encoder(EncoderSettings(model=entry.get("model") or DEFAULT_MODEL, device=args.device))
    location = _store_location(home, entry)
    _warn_incomplete(name, entry)
    with open_store(location, entry["collection"], read_only=True) as store:
        if not store.exists():
            raise SystemExit(f"embedmap: map {name!r} has no collection in {location.folder()}")
        hits = search_map(store, encoder, args.query, k=args.k, topic=topic, level=args.level,
                          partition=args.partition, where=where)
        if not hits:  # a partition, field or value the map lacks is named, not reported as "no match"
            explain_no_match(store, partition=args.partition, where=where)
    if args.json:
        for hit in hits:
            print(json.dumps(hit.__dict__, ensure_ascii=True, default=str))
        return 0
    if not hits:
        _log("no match")
    for rank, hit in enumerate(hits, 1):
        where = f"({hit.x:.2f}, {hit.y:.2f})" if hit.x is not None and hit.y is not None else "(not placed)"
        path = " > ".join(hit.topic_path) if hit.topic_path else f"{hit.topic_label}"
        _log(f"{rank:>3}. {hit.score:.3f}  {_one_line(hit.id, 60)}  [topic {hit.topic_id}: {_one_line(path, 80)}] "
             f"{where}\n      {_one_line(hit.text, 160)}")
    return 0


def _map_name(path: str) -> str:
    from .core.paths import partition_filename

    stem = Path(path.split("*")[0] or "map").stem or "map"
    return partition_filename(stem)


def _embedder_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return {"model": args.model, "device": args.device, "batch_size": args.batch_size, "backend": args.backend}


def _setting_option(parser: argparse.ArgumentParser, settings: type, name: str) -> None:
    """``--<name>``, with the type, default, choices and help of field ``name`` of a core settings class:
    the CLI never restates them."""
    import typing

    from .core.settings import described

    field = described(settings)[name]
    kind = typing.get_type_hints(settings)[name]
    choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
    parser.add_argument(f"--{name.replace('_', '-')}", default=field.default, choices=choices,
                        type=kind if kind in (int, float) else str,
                        help=field.metadata["description"].replace("%", "%%") + f" (default: {field.default})")


def _parser() -> argparse.ArgumentParser:
    from .core.embedding.model import EncoderSettings
    from .core.paths import DEFAULT_HOME

    intro, history, examples = __doc__.strip().split("\n\n")[:3]
    parser = argparse.ArgumentParser(prog="embedmap", description=f"{intro}\n\n{history}".replace("``", ""),
                                     epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    debug = "on an error, show the full stack trace (default: one paragraph saying what failed and how to fix it)"
    parser.add_argument("--debug", action="store_true", help=debug)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", parents=[common], help="build a map from a parquet / CSV / JSONL file (or a glob of them)")
    build.add_argument("input", help="file or glob; with a glob and no --partition-column, one partition per file")
    build.add_argument("--text-column", required=True, help="column holding the text to embed")
    build.add_argument("--id-column", default="id", help="column holding a unique record id (default: id)")
    build.add_argument("--vector-column", help="column of precomputed vectors (the model is then not used)")
    build.add_argument("--partition-column", help="column whose values split the records into partitions")
    build.add_argument("--home", required=True, help="folder for the map's files, Qdrant data and run history")
    build.add_argument("--name", help="map name (default: the input file's name)")
    build.add_argument("--empty-text", choices=["skip", "fail"], default="skip",
                       help="records with blank text: skip them (default), or fail naming them")
    build.set_defaults(func=cmd_build)

    demo = sub.add_parser("demo", parents=[common], help="build the demo map of Wikipedia vital-article summaries")
    demo.add_argument("--home", default=DEFAULT_HOME, help=f"folder for the map (default: {DEFAULT_HOME})")
    demo.add_argument("--size", type=int, default=2000, help="number of articles (default 2000)")
    demo.add_argument("--full", action="store_true", help="all 10,033 articles (the uncategorised ones too)")
    demo.set_defaults(func=cmd_demo)

    for option in ("model", "device", "batch_size", "backend"):  # defaults and help: EncoderSettings
        _setting_option(build, EncoderSettings, option)

    search = sub.add_parser("search", parents=[common], help="semantic search: the records nearest to a query, with their topic")
    search.add_argument("query", help="what to look for, in words")
    search.add_argument("--home", required=True, help="the folder the map was built in (build's --home)")
    search.add_argument("--name", help="which map, when the home holds several")
    search.add_argument("-k", type=int, default=10, help="how many records (default 10)")
    search.add_argument("--topic", help="only this topic: its id, or its exact label")
    search.add_argument("--level", type=int, help="the topic tree level --topic refers to (0 = broadest; "
                        "default: the finest)")
    search.add_argument("--partition", help="only this partition")
    search.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                        help="only records whose metadata FIELD equals VALUE (repeatable)")
    _setting_option(search, EncoderSettings, "device")
    search.add_argument("--json", action="store_true", help="one JSON object per hit")
    search.set_defaults(func=cmd_search)

    export = sub.add_parser("export", parents=[common],
                            help="write the map's points (id, x, y, topics, metadata) to parquet, CSV or JSONL")
    export.add_argument("--home", required=True, help="the folder the map was built in (build's --home)")
    export.add_argument("--out", required=True, help="output file; its extension picks the format: .parquet "
                        "(or .pq), .csv (list and struct values as JSON text), .jsonl (or .ndjson)")
    export.add_argument("--name", help="which map, when the home holds several")
    export.add_argument("--with-text", action="store_true", help="include each record's text (needed by "
                        "viewers such as Embedding Atlas: --text text --x x --y y)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .cli_errors import USER_ERROR, report_failure, say
    from .core.errors import MapBuildInterrupted

    started = time.time()
    try:
        return int(args.func(args) or 0)
    except MapBuildInterrupted as stopped:
        say(f"embedmap: {stopped}; the topics and the map are not updated yet. Run the same command again to "
            "finish: what is done is kept and not redone")
        return INTERRUPTED
    except KeyboardInterrupt:
        say("embedmap: interrupted; run the same command again to finish (every step can be rerun safely)")
        return INTERRUPTED
    except SystemExit as stop:  # a command's own "embedmap: ..." refusal
        if not isinstance(stop.code, str):
            raise
        say(stop.code)
        return USER_ERROR
    except Exception as exc:  # a failed step arrives wrapped in Dagster's errors: say the user's cause
        if args.debug:
            raise
        home = Path(args.home).expanduser().resolve() if getattr(args, "home", None) else None
        return report_failure(exc, args.command, home, started)


if __name__ == "__main__":
    sys.exit(main())
