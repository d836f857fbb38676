"""``embedmap``: build, inspect and export data maps without writing Dagster code.

The commands run the very same assets in-process, recording runs in a Dagster instance inside
``--home`` (``<home>/dagster``), so ``DAGSTER_HOME=<home>/dagster dagster dev`` shows their history.

    embedmap build data.jsonl --text-column body --id-column id --home maps/
    embedmap export --home maps/ --out points.parquet
    embedmap search --home maps/ "rockets and orbits" [--topic 3] [-k 10]
    embedmap classify --home maps/ --classifier kind --examples labels.csv [--uncertain 20]
    embedmap demo --home .embedmap
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from .build import cmd_build, cmd_demo
from .classify import cmd_classify
from .query import cmd_export, cmd_search

__all__ = ["main", "run"]

INTERRUPTED = 130


def _setting_option(parser: argparse.ArgumentParser, settings: type, name: str) -> None:
    """``--<name>``, with the type, default, choices and help of field ``name`` of a core settings class:
    the CLI never restates them."""
    import typing

    from ..core.settings import described

    field = described(settings)[name]
    kind = typing.get_type_hints(settings)[name]
    choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
    parser.add_argument(f"--{name.replace('_', '-')}", default=field.default, choices=choices,
                        type=kind if kind in (int, float) else str,
                        help=field.metadata["description"].replace("%", "%%") + f" (default: {field.default})")


def _parser() -> argparse.ArgumentParser:
    from ..core.embedding.model import EncoderSettings
    from ..core.paths import DEFAULT_HOME

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
    build.add_argument("--text-column", help="column holding the text to embed (with --image-column: the captions; "
                       "optional there)")
    build.add_argument("--image-column", help="column of image paths (relative to the input's folder, or absolute): "
                       "those records are embedded from their image; needs a CLIP-family --model")
    build.add_argument("--bad-image", choices=["skip", "fail"], default="skip",
                       help="a missing or unreadable image: skip its record, named (default), or fail naming them")
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

    classify = sub.add_parser("classify", parents=[common], help="train a classifier from a few labelled records or "
                              "class descriptions and tag every record; or list the records to label next")
    classify.add_argument("--home", required=True, help="the folder the map was built in (build's --home)")
    classify.add_argument("--name", help="which map, when the home holds several")
    classify.add_argument("--classifier", required=True, help="its name (lower-case letters, digits, '_'): the "
                          "records get class_NAME and class_NAME_score")
    classify.add_argument("--examples", help="labels file: parquet, CSV or JSONL with columns id and label")
    classify.add_argument("--label-column", help="a metadata column of the records that holds labels (instead of "
                          "--examples)")
    classify.add_argument("--describe", action="append", default=[], metavar="LABEL=TEXT",
                          help="a class described in words (repeatable): zero-shot alone, a prior with examples")
    classify.add_argument("--threshold", type=float, default=0.5, help="a record whose best class scores under "
                          "this gets no class (default 0.5)")
    classify.add_argument("--multi-label", action="store_true", help="one-vs-rest: a record takes every class "
                          "scoring at least --threshold; the labels file may give a record several rows, one per "
                          "class (a list column with --label-column)")
    classify.add_argument("--min-macro-f1", type=float, help="a check fails when the cross-validated macro-F1 is "
                          "under this")
    classify.add_argument("--uncertain", type=int, metavar="K", help="list the K records the classifier is least "
                          "sure about, spread over the map (alone: of the classifier already trained)")
    classify.add_argument("--json", action="store_true", help="with --uncertain: one JSON object per record")
    classify.set_defaults(func=cmd_classify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .errors import USER_ERROR, report_failure, say
    from ..core.errors import MapBuildInterrupted

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


def run() -> None:
    """The ``embedmap`` command: :func:`main`, then exit without tearing the interpreter down. Every
    file, store and run record is closed by then; what is left is freeing the modules a build loaded
    (numba's compiled code, Dagster, torch), which took 1.2-1.5 s of each build's wall time here."""
    import gc
    import logging
    import os

    # a build allocates many long-lived objects (Dagster's modules and definitions, a map's payloads) and
    # little cyclic garbage: collecting the youngest generation every 700 allocations cost about 2% of an
    # update here (3.19 -> 3.12 s)
    gc.set_threshold(50_000, 20, 20)
    try:
        code = main()
    except SystemExit as stop:  # argparse's usage errors and --help
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
