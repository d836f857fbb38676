"""What `embedmap build` costs again after one more partition lands, and when nothing changed.

    .venv/bin/python benchmarks/cli_incremental.py              # 20 files of 1,000 given 384-d vectors, +5%
    .venv/bin/python benchmarks/cli_incremental.py --n 10000
    .venv/bin/python benchmarks/cli_incremental.py --wiki --n 10000   # Wikipedia summaries through the bundled model

Each build is the whole command in a fresh process, timed from start to exit, the way a user runs it:
``embedmap build 'landing/*.parquet' --text-column text --vector-column emb --home H`` (one partition
per file). The records are the synthetic groups of ``benchmarks/projection.py``, or with ``--wiki`` the
demo corpus's Wikipedia summaries, embedded by the bundled model (no ``--vector-column``). Three builds
in one run:

1. the full build of ``--partitions`` files of N / partitions records each (the baseline);
2. the same command again, nothing changed;
3. after one more file of ``--new-share`` x N records lands.

Prints each one's wall time and its ratio to the full build, which partitions each one ran, and the
map's point count after each. Target (issue 14): the build after the new file at most 0.10 of the full
build. Exit status 3 when it is missed or a build ran the wrong partitions.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def build(cmd: list[str], env: dict) -> tuple[float, list[str], str]:
    """Wall seconds, the partitions the build ran, and its output."""
    from cli_build import timed_output

    seconds, out = timed_output(cmd, env)
    return seconds, re.findall(r"^\[\d+/\d+\] partition (\S+): documents", out, flags=re.M), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--new-share", type=float, default=0.05)
    parser.add_argument("--wiki", action="store_true", help="Wikipedia summaries through the model (N <= 9,500)")
    args = parser.parse_args()
    import polars as pl

    from projection import synthetic

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    new = int(args.n * args.new_share)
    print(f"commit {commit.strip()}{' (with uncommitted changes)' if dirty.strip() else ''}, "
          f"{args.partitions} partitions of {args.n // args.partitions:,} "
          f"{'Wikipedia summaries (the model embeds them)' if args.wiki else 'given 384-d vectors'}, then one of {new:,}")
    if args.wiki:
        from dagster_embedmap.core.records.datasets import load_wiki_summaries

        frame = load_wiki_summaries(n=args.n + new).select("id", "text")
    else:
        vectors, texts, _ = synthetic(args.n + new)
        frame = pl.DataFrame({"id": [f"r{i}" for i in range(len(vectors))], "text": texts,
                              "emb": pl.Series(vectors.tolist(), dtype=pl.List(pl.Float32))})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    embedmap = str(Path(sys.executable).with_name("embedmap"))
    per = args.n // args.partitions
    with tempfile.TemporaryDirectory() as tmp:
        landing, home = Path(tmp) / "landing", Path(tmp) / "home"
        landing.mkdir()
        for p in range(args.partitions):
            frame.slice(p * per, per).write_parquet(landing / f"part-{p:03d}.parquet")
        cmd = [embedmap, "build", str(landing / "*.parquet"), "--text-column", "text",
               *([] if args.wiki else ["--vector-column", "emb"]), "--home", str(home), "--name", "bench"]
        full_s, full_ran, _ = build(cmd, env)
        same_s, same_ran, same_out = build(cmd, env)
        frame.slice(args.partitions * per, new).write_parquet(landing / f"part-{args.partitions:03d}.parquet")
        more_s, more_ran, more_out = build(cmd, env)
    points = re.findall(r"\((\d+) points\)", more_out)
    rows = [("full build", full_s, full_ran), ("again, nothing changed", same_s, same_ran),
            (f"after +{args.new_share:.0%} (one new file)", more_s, more_ran)]
    print("| build | wall time | ratio to the full build | partitions run |\n|---|---|---|---|")
    for what, seconds, ran in rows:
        print(f"| {what} | {seconds:.1f} s | {seconds / full_s:.3f} | {len(ran)} |")
    print(f"map after the new file: {points[-1] if points else '?'} points (expected {per * args.partitions + new})")
    right = (len(full_ran) == args.partitions and not same_ran and "up to date" in same_out
             and more_ran == [f"part-{args.partitions:03d}"]
             and points and int(points[-1]) == per * args.partitions + new)
    ratio = more_s / full_s
    print(f"after the new file / full build: {ratio:.3f} (target <= 0.10); partitions run as expected: "
          f"{'yes' if right else 'NO'}: {'met' if ratio <= 0.10 and right else 'missed'}")
    return 0 if ratio <= 0.10 and right else 3


if __name__ == "__main__":
    sys.exit(main())
