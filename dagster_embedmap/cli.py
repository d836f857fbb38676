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
import os
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

MANIFEST = "embedmap.json"


def _terminal_safe(message: object) -> str:
    """Text for a terminal: every control character (escape sequences, bells, ...) but newlines
    becomes a space, so record ids, partition keys and labels cannot drive the terminal."""
    return "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in str(message))


def _log(message: str) -> None:
    print(_terminal_safe(message), flush=True)


def _quiet_dagster() -> None:
    """Keep the console to our own progress lines: no per-event debug logs, no weight-loading bars."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


def _instance(home: Path):
    import dagster as dg

    folder = home / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.from_config(str(folder))


def _read_manifest(home: Path) -> dict:
    path = home / MANIFEST
    if not path.exists():
        return {"maps": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def _write_manifest(home: Path, name: str, entry: dict) -> None:
    home.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(home)
    manifest["maps"][name] = entry
    (home / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


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
    coll = result.metadata(keys.collection)
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
    import dagster as dg

    from . import build_embedmap_defs, embedmap_resources
    from .assets import MapKeys, materialize_map
    from .core.sources import FileSource

    home = Path(args.home).expanduser().resolve()
    source = FileSource(str(Path(args.input).expanduser().resolve()) if not any(c in args.input for c in "*?[") else args.input,
                        partition_column=args.partition_column)
    name = args.name or _map_name(args.input)
    started = time.perf_counter()
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
    _write_manifest(
        home,
        name,
        {
            "input": args.input,
            "text_column": args.text_column,
            "id_column": args.id_column,
            "vector_column": args.vector_column,
            "partition_column": args.partition_column,
            "qdrant_path": str(home / "qdrant"),
            "engine": "edge",
            "collection": name,
            "model": args.model,
        },
    )
    _quiet_dagster()
    instance = _instance(home)
    try:
        result = materialize_map(defs, MapKeys.for_map(name), instance=instance, log=_log, log_level="INFO")
    finally:
        instance.dispose()
    _summary(home, name, result, started)
    return 0 if result.success else 1


def cmd_demo(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser().resolve()
    os.environ["EMBEDMAP_HOME"] = str(home)
    os.environ["EMBEDMAP_DEMO_SIZE"] = "full" if args.full else str(args.size)
    from .assets import MapKeys, materialize_map
    from .examples import wiki

    started = time.perf_counter()
    _write_manifest(home, wiki.MAP_NAME, {"input": "wiki demo corpus", "qdrant_path": str(home / "qdrant"),
                                          "engine": "edge", "collection": wiki.MAP_NAME, "model": "all-MiniLM-L6-v2"})
    _quiet_dagster()
    instance = _instance(home)
    try:
        result = materialize_map(wiki.defs, MapKeys.for_map(wiki.MAP_NAME), instance=instance,
                                 include_upstream=True, log=_log, log_level="INFO")
    finally:
        instance.dispose()
    _summary(home, wiki.MAP_NAME, result, started)
    _log(f"\nopen {Path(home, wiki.MAP_NAME, 'map.html')} in a browser, or run "
         f"`DAGSTER_HOME={home / 'dagster'} dagster dev -w workspace.yaml` for the lineage and the runs")
    return 0 if result.success else 1


def cmd_export(args: argparse.Namespace) -> int:
    import polars as pl

    from .core.paths import MapLayout
    from .core.points import PIPELINE_FIELDS, full_texts, points_frame
    from .core.store import StoreLocation, open_store

    home = Path(args.home).expanduser().resolve()
    name, entry = _pick_map(home, args.name)
    # a manifest without an engine was written before the edge engine became the default
    location = StoreLocation(path=entry["qdrant_path"], engine=entry.get("engine", "local"))
    with open_store(location, entry["collection"]) as store:
        points = points_frame(store)
    if points.is_empty():
        raise SystemExit(f"embedmap: map {name!r} has no points in {entry['qdrant_path']}")
    points = points.drop(PIPELINE_FIELDS, strict=False)
    if args.with_text:  # the whole text, not the payload's snippet
        layout = MapLayout(home, name)
        points = points.with_columns(pl.Series("text", full_texts(points, layout.documents), dtype=pl.String))
    else:
        points = points.drop("text")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    points.write_parquet(out)
    _log(f"wrote {points.height} points of map {name!r} to {out} (columns: {', '.join(points.columns)})")
    return 0


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
    from .core.embed import Encoder, EncoderSettings
    from .core.search import search_map
    from .core.store import StoreLocation, open_store

    _quiet_dagster()
    home = Path(args.home).expanduser().resolve()
    name, entry = _pick_map(home, args.name)
    topic: int | str | None = None
    if args.topic is not None:
        topic = int(args.topic) if args.topic.lstrip("-").isdigit() else args.topic
    encoder = Encoder(EncoderSettings(model=entry.get("model") or "all-MiniLM-L6-v2", device=args.device))
    # a manifest without an engine was written before the edge engine became the default
    location = StoreLocation(path=entry["qdrant_path"], engine=entry.get("engine", "local"))
    with open_store(location, entry["collection"]) as store:
        if not store.exists():
            raise SystemExit(f"embedmap: map {name!r} has no collection in {entry['qdrant_path']}")
        hits = search_map(store, encoder, args.query, k=args.k, topic=topic, level=args.level,
                          partition=args.partition, where=_parse_where(args.where))
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
    return {"model": args.model, "device": args.device, "batch_size": args.batch_size}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedmap", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="build a map from a parquet / CSV / JSONL file (or a glob of them)")
    build.add_argument("input", help="file or glob; with a glob and no --partition-column, one partition per file")
    build.add_argument("--text-column", required=True, help="column holding the text to embed")
    build.add_argument("--id-column", default="id", help="column holding a unique record id (default: id)")
    build.add_argument("--vector-column", help="column of precomputed vectors (the model is then not used)")
    build.add_argument("--partition-column", help="column whose values split the records into partitions")
    build.add_argument("--home", required=True, help="folder for the map's files, Qdrant data and run history")
    build.add_argument("--name", help="map name (default: the input file's name)")
    build.add_argument("--empty-text", choices=["skip", "fail"], default="skip", help="records with blank text")
    build.set_defaults(func=cmd_build)

    demo = sub.add_parser("demo", help="build the demo map of Wikipedia vital-article summaries")
    demo.add_argument("--home", default=".embedmap", help="folder for the map (default: .embedmap)")
    demo.add_argument("--size", type=int, default=2000, help="number of articles (default 2000)")
    demo.add_argument("--full", action="store_true", help="all 10,033 articles (the uncategorised ones too)")
    demo.set_defaults(func=cmd_demo)

    build.add_argument("--model", default="all-MiniLM-L6-v2", help="sentence-transformers model or folder")
    build.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    build.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")

    search = sub.add_parser("search", help="semantic search: the records nearest to a query, with their topic")
    search.add_argument("query", help="what to look for, in words")
    search.add_argument("--home", required=True)
    search.add_argument("--name", help="which map, when the home holds several")
    search.add_argument("-k", type=int, default=10, help="how many records (default 10)")
    search.add_argument("--topic", help="only this topic: its id, or its exact label")
    search.add_argument("--level", type=int, help="the topic tree level --topic refers to (0 = broadest; "
                        "default: the finest)")
    search.add_argument("--partition", help="only this partition")
    search.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                        help="only records whose metadata FIELD equals VALUE (repeatable)")
    search.add_argument("--device", default="auto", help="device for embedding the query")
    search.add_argument("--json", action="store_true", help="one JSON object per hit")
    search.set_defaults(func=cmd_search)

    export = sub.add_parser("export", help="write the map's points (id, x, y, topic) to parquet")
    export.add_argument("--home", required=True)
    export.add_argument("--out", required=True, help="output parquet file")
    export.add_argument("--name", help="which map, when the home holds several")
    export.add_argument("--with-text", action="store_true", help="include each record's text (needed by "
                        "viewers such as Embedding Atlas: --text text --x x --y y)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .core.errors import EmbedMapInputError, EmbedMapStoreError

    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # a failed step arrives wrapped in Dagster's errors: show the user's cause
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, (EmbedMapInputError, EmbedMapStoreError, FileNotFoundError,
                                                           ValueError)):
            cause = cause.__cause__ or getattr(cause, "user_exception", None)
        if cause is None:
            raise
        print(_terminal_safe(f"embedmap: {cause}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
