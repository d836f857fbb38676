"""Drop files into a landing folder, as an upstream system would: the example project's landing map
(``examples/embedmap_example``) picks each one up as a partition.

    python -m dagster_embedmap.examples.landing examples/embedmap_example/landing [--files 3] [--size 200]

Writes ``day-001.jsonl`` ... with Spanish Wikipedia vital-article summaries (CC BY-SA 4.0): id,
text, category. Files already there are left alone; the next number follows the last one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

from ..core.records.datasets import load_wiki_summaries

__all__ = ["land_files"]


def land_files(folder: str | Path, files: int = 3, size: int = 200, lang: str = "es-es") -> list[Path]:
    """Write ``files`` new JSON lines files of ``size`` records each into ``folder``; their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in folder.glob("day-*.jsonl") if (m := re.fullmatch(r"day-(\d+)", p.stem))]
    first = max(taken, default=0) + 1
    records = load_wiki_summaries(n=None, lang=lang, seed=0).drop("batch", "description")
    written = []
    for number in range(first, first + files):
        chunk = records.slice((number - 1) * size, size)
        if chunk.is_empty():
            break
        path = folder / f"day-{number:03d}.jsonl"
        tmp = path.with_suffix(".tmp")  # never a half file under a name the sensor watches
        chunk.write_ndjson(tmp)
        tmp.replace(path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the landing folder")
    parser.add_argument("--files", type=int, default=3, help="how many files (default 3)")
    parser.add_argument("--size", type=int, default=200, help="records per file (default 200)")
    args = parser.parse_args(argv)
    for path in land_files(args.folder, args.files, args.size):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
