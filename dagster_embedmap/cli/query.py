"""``embedmap search`` and ``embedmap export``: read a built map, refusing filters the map does not have."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from .build import _quiet_dagster
from .home import _pick_map, _store_location, _warn_incomplete
from .output import _log, _one_line


def check_topic(home: Path, name: str, topic: int | str | None, level: int | None) -> None:
    """Refuse a --topic or --level the map's topic table lacks, and a --level without a --topic."""
    import polars as pl

    from ..core.paths import MapLayout
    from ..core.store.search import check_topic_filter

    topics = MapLayout(home, name).topics
    if topics.exists():
        check_topic_filter(pl.read_parquet(topics, columns=["level", "topic_id", "label"]), topic, level)
    if level is not None and topic is None:
        raise SystemExit(f"embedmap: --level {level} picks the topic tree level that --topic refers to; give --topic "
                         "too (search has no other use for it)")


def cmd_export(args: argparse.Namespace) -> int:
    import polars as pl

    from ..core.records.documents import RESERVED_COLUMNS
    from ..core.records.sources import output_format, write_table
    from ..core.paths import MapLayout
    from ..core.store.payload import PIPELINE_FIELDS, full_texts, points_frame
    from ..core.store import open_store

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


def _parse_where(pairs: Sequence[str]) -> dict[str, object]:
    where: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"embedmap: --where takes FIELD=VALUE, got {pair!r}")
        where[key] = int(value) if value.lstrip("-").isdigit() else value
    return where


def cmd_search(args: argparse.Namespace) -> int:
    from ..core.embedding import DEFAULT_MODEL, Encoder, EncoderSettings
    from ..core.store.search import explain_no_match, search_map
    from ..core.store import open_store

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
