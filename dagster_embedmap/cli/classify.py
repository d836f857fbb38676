"""``embedmap classify``: train a map's classifier from a labels file, a label column or class
descriptions, tag every point, redraw the map; or list the records worth labelling next.

The classifier is kept in the home's manifest, so a later ``embedmap build`` tags the partitions it
runs with it (without training again)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .home import _build_lock, _instance, _pick_map, _read_manifest, _store_location, _write_manifest
from .output import _log, _one_line

__all__ = ["cmd_classify", "map_definitions", "saved_classifiers", "tag_partitions"]


def _parse_describe(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        label, sep, text = pair.partition("=")
        if not sep or not label.strip() or not text.strip():
            raise SystemExit(f"embedmap: --describe {pair!r}: give LABEL=\"a description in words\"")
        out[label.strip()] = text.strip()
    return out


def saved_classifiers(entry: dict) -> list:
    """The map's classifiers as the manifest keeps them."""
    from ..core.classify import ClassifierSettings, ClassifierSpec

    return [ClassifierSpec(name, examples=c.get("examples"), label_column=c.get("label_column"),
                           descriptions=c.get("descriptions") or {}, min_macro_f1=c.get("min_macro_f1"),
                           settings=ClassifierSettings(threshold=c.get("threshold", ClassifierSettings().threshold),
                                                       multi_label=bool(c.get("multi_label", False))))
            for name, c in sorted((entry.get("classifiers") or {}).items())]


def map_definitions(home: Path, name: str, entry: dict, classifiers):
    """The map's definitions as ``embedmap build`` (or ``demo``) made them, with ``classifiers``."""
    import dagster as dg

    from .. import build_embedmap_defs, embedmap_resources
    from .build import file_source

    if entry.get("input") == "wiki demo corpus":
        from ..examples import wiki

        return wiki.map_defs(home, classifiers)
    if not entry.get("input") or entry.get("recovered"):
        raise SystemExit(f"embedmap: map {name!r} in {home} has no recorded input; build it again with "
                         "`embedmap build` first")
    source = file_source(entry["input"], entry.get("partition_column"))
    return dg.Definitions.merge(
        build_embedmap_defs(name, source, id_column=entry.get("id_column") or "id",
                            text_column=entry.get("text_column") or (None if entry.get("image_column") else "text"),
                            vector_column=entry.get("vector_column"), image_column=entry.get("image_column"),
                            home=home, collection_name=entry.get("collection"), classifiers=classifiers),
        dg.Definitions(resources=embedmap_resources(home, model=entry.get("model") or None)),
    )


def _run(defs, instance, keys, partition: str | None = None):
    """One in-process run of ``keys`` recorded in ``instance``, its console the CLI's (one line a message)."""
    from ..assets.run import run_selection
    from .output import _cli_logger

    return run_selection(list(defs.assets), defs.resources, list(keys), instance=instance, partition=partition,
                         run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                         loggers={"console": _cli_logger()})


def tag_partitions(defs, instance, name: str, classifiers, partitions: list[str], log=_log) -> None:
    """Materialize each classifier's classes for ``partitions``, then the map again (so its page
    colours by them)."""
    import dagster as dg

    from ..assets import MapKeys

    keys = MapKeys.for_map(name)
    prefix = keys.map.path[:-1]
    for spec in classifiers:
        key = dg.AssetKey([*prefix, f"classes_{spec.name}"])
        for partition in partitions:
            _run(defs, instance, [key], partition)
        log(f"classifier {spec.name!r}: tagged {len(partitions)} partition(s)")
    _run(defs, instance, [keys.map])


def cmd_classify(args: argparse.Namespace) -> int:
    from ..core.classify import ClassifierSettings, ClassifierSpec

    started = time.perf_counter()
    home = Path(args.home).expanduser().resolve()
    name, entry = _pick_map(home, args.name)
    descriptions = _parse_describe(args.describe)
    if not (args.examples or args.label_column or descriptions):
        if not args.uncertain:
            raise SystemExit(f"embedmap: give --examples FILE, --label-column COLUMN or --describe LABEL=TEXT to train "
                             f"classifier {args.classifier!r}, or --uncertain K to list the records to label next")
        return _print_uncertain(home, name, entry, args.classifier, args.uncertain, args.json)
    examples = str(Path(args.examples).expanduser().resolve()) if args.examples else None
    try:
        spec = ClassifierSpec(args.classifier, examples=examples, label_column=args.label_column,
                              descriptions=descriptions, min_macro_f1=args.min_macro_f1,
                              settings=ClassifierSettings(threshold=args.threshold, multi_label=args.multi_label))
    except ValueError as exc:
        raise SystemExit(f"embedmap: {exc}") from None
    if examples:
        from ..steps.classify import read_examples

        read_examples(examples, multi_label=args.multi_label)  # a bad labels file is named before anything loads
    others = [s for s in saved_classifiers(entry) if s.name != spec.name]
    defs = map_definitions(home, name, entry, [*others, spec])
    partitions = _partitions(defs, name)
    import dagster as dg

    from ..core.paths import MapLayout
    from ..core.store import keep_open

    with keep_open(), _build_lock(home, name):
        instance = _instance(home)
        try:
            train = dg.AssetKey([name, f"classifier_{spec.name}"])
            run = _run(defs, instance, [train])
            tag_partitions(defs, instance, name, [spec], partitions)
        finally:
            instance.dispose()
    entry = _read_manifest(home)["maps"][name]
    entry.setdefault("classifiers", {})[spec.name] = {
        "examples": examples, "label_column": args.label_column, "descriptions": descriptions,
        "threshold": args.threshold, "multi_label": args.multi_label, "min_macro_f1": args.min_macro_f1}
    _write_manifest(home, name, entry)
    info = json.loads(MapLayout(home, name).classifier_info(spec.name).read_text(encoding="utf-8"))
    _summary(spec.name, info, run.get_asset_check_evaluations())
    _log(f"map        {MapLayout(home, name).html} (colour by class_{spec.name}; {time.perf_counter() - started:.1f} s)")
    if args.uncertain:
        _print_uncertain(home, name, entry, spec.name, args.uncertain, args.json)
    return 0


def _partitions(defs, name: str) -> list[str]:
    from ..assets import MapKeys

    asset = defs.get_assets_def(MapKeys.for_map(name).collection)
    return list(asset.partitions_def.get_partition_keys()) if asset.partitions_def else []


def _summary(name: str, info: dict, checks) -> None:
    _log(f"classifier {name!r}: {info['mode']}{', multi-label' if info.get('multi_label') else ''}, "
         f"{len(info['classes'])} classes, {info['examples']} labelled records"
         + (f" ({len(info['unknown_ids'])} ids not in the map, left out)" if info.get("unknown_ids") else ""))
    v = info.get("validation")
    if v:
        _log(f"cross-validated ({v['folds']} folds): accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}")
        for row in v["per_class"]:
            _log(f"  {_one_line(row['class'], 30):30} f1 {row['f1']:.3f}  precision {row['precision']:.3f}  "
                 f"recall {row['recall']:.3f}  ({row['support']} labelled)")
    for check in checks:
        _log(f"check {check.check_name}: {'passed' if check.passed else 'FAILED'}"
             + (f" ({check.description})" if check.description else ""))


def _print_uncertain(home: Path, name: str, entry: dict, classifier: str, k: int, as_json: bool) -> int:
    from ..core.paths import MapLayout
    from ..core.store import open_store
    from ..steps.classify import read_examples, uncertain_records

    layout = MapLayout(home, name)
    saved = (entry.get("classifiers") or {}).get(classifier) or {}
    labelled = set(read_examples(saved["examples"], multi_label=bool(saved.get("multi_label")))["id"]) \
        if saved.get("examples") and Path(saved["examples"]).exists() else None
    location = _store_location(home, entry)
    frame = uncertain_records(lambda: open_store(location, entry["collection"], read_only=True), layout, name,
                              classifier, k, train_step=f"{name}/classifier_{classifier}", labelled=labelled)
    if as_json:
        for row in frame.iter_rows(named=True):
            print(json.dumps(row, ensure_ascii=True))
        return 0
    _log(f"the {frame.height} records classifier {classifier!r} is least sure about, spread over the map (label these next):")
    for rank, row in enumerate(frame.iter_rows(named=True), 1):
        _log(f"{rank:>3}. {_one_line(row['id'], 50)}  best guess {_one_line(row['class'], 30)} "
             f"({row['score']:.2f})  [{row['partition']}]\n      {_one_line(row['text'], 150)}")
    return 0
