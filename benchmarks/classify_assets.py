"""A classifier through the production path at 100,000 points: the CLI in fresh processes, the assets' runs.

    .venv/bin/python benchmarks/classify_assets.py                 # 100,000 points in 4 partitions
    .venv/bin/python benchmarks/classify_assets.py --n 20000 --partitions 2

A map of ``--n`` synthetic 384-d vectors (11 classes, unit length, given as a vector column, so no
model loads) is built by ``embedmap build`` in 4 partitions. Then, each in a fresh process as a user
runs them:

1. ``embedmap classify --examples labels.csv``: 20 labelled records per class; the classifier asset
   trains on their stored vectors read from Qdrant, each partition's ``classes_<name>`` run tags its
   points, and the map is drawn again;
2. a new partition lands and ``embedmap build`` runs it: placed and tagged in its own run, without
   training again.

Each asset's step time comes from the home's Dagster instance (``get_run_step_stats``); the baseline,
measured in the same run, is scikit-learn's ``LogisticRegression`` trained on the same labelled vectors
and predicting every point in process (no store, no Dagster), and the build of the map itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
CLASSES = 11


def vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(CLASSES, 384))
    members = rng.integers(0, CLASSES, n)
    x = centres[members] + rng.normal(scale=3.0, size=(n, 384))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), members


def write_partition(landing: Path, part: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    x, members = vectors(n, 100 + part)
    pl.DataFrame({"id": [f"p{part}-{i}" for i in range(n)], "text": [f"record {i} of class c{m}" for i, m in
                                                                       enumerate(members)],
                  "emb": pl.Series(x.tolist(), dtype=pl.List(pl.Float32))}).write_parquet(landing / f"p{part}.parquet")
    return x, members


def cli(*args: str) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dagster_embedmap.cli", *args], capture_output=True, text=True, env=env)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"embedmap {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return took


def step_times(home: Path) -> dict[str, list[float]]:
    """Every step's durations, by step key, over the home's runs."""
    import dagster as dg

    out: dict[str, list[float]] = {}
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:  # the CLI's instance
        for run in instance.get_runs():
            for s in instance.get_run_step_stats(run.run_id):
                if s.start_time and s.end_time:
                    out.setdefault(s.step_key, []).append(s.end_time - s.start_time)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    root = Path(tempfile.mkdtemp(prefix="classify-assets-"))
    landing, home = root / "landing", root / "home"
    landing.mkdir()
    per = args.n // args.partitions
    parts = [write_partition(landing, p, per) for p in range(args.partitions)]
    x = np.concatenate([p[0] for p in parts])
    members = np.concatenate([p[1] for p in parts])
    build = ["build", str(landing / "*.parquet"), "--text-column", "text", "--vector-column", "emb", "--home", str(home),
             "--name", "bench"]
    built = cli(*build)

    rng = np.random.default_rng(1)
    first = parts[0][1]
    labelled = np.concatenate([rng.choice(np.flatnonzero(first == c), args.per_class, replace=False)
                               for c in range(CLASSES)])
    labels = root / "labels.csv"
    pl.DataFrame({"id": [f"p0-{i}" for i in labelled], "label": [f"c{first[i]}" for i in labelled]}).write_csv(labels)

    t0 = time.perf_counter()  # the baseline: scikit-learn in process on the same labelled vectors, every point scored
    base = LogisticRegression(C=2.0, max_iter=1000).fit(parts[0][0][labelled], [f"c{first[i]}" for i in labelled])
    right_base = np.mean(base.predict(x) == np.array([f"c{m}" for m in members]))
    baseline = time.perf_counter() - t0

    before = step_times(home)
    classified = cli("classify", "--home", str(home), "--classifier", "kind", "--examples", str(labels))
    steps = step_times(home)
    train = steps.get("bench__classifier_kind", [])
    classes = steps.get("bench__classes_kind", [])
    redraw = steps.get("bench__map", [])[len(before.get("bench__map", [])):]
    points = pl.read_parquet(landing / "p0.parquet", columns=["id"]).height

    parts.append(write_partition(landing, args.partitions, per))
    added = cli(*build)
    after = step_times(home)
    new_classes = after.get("bench__classes_kind", [])[len(classes):]
    trained_again = len(after.get("bench__classifier_kind", [])) - len(train)

    out = root / "points.parquet"
    cli("export", "--home", str(home), "--out", str(out))
    exported = pl.read_parquet(out, columns=["id", "class_kind"])
    truth = {f"p{p}-{i}": f"c{m}" for p, (_, ms) in enumerate(parts) for i, m in enumerate(ms)}
    scored = exported.filter(pl.col("id").is_in(list(truth)) & pl.col("class_kind").is_not_null())
    right = np.mean([truth[i] == c for i, c in zip(scored["id"], scored["class_kind"])])

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    print(f"commit {commit}; {args.n:,} points ({args.partitions} partitions of {per:,}), {CLASSES} classes, "
          f"{len(labelled)} labelled")
    print(f"embedmap build (baseline: the map itself)          {built:7.1f} s")
    print(f"embedmap classify, the whole command               {classified:7.1f} s  ({classified / built:.2f}x the build)")
    print(f"  classifier_kind step (train on {len(labelled)} from Qdrant)  {train[0]:7.2f} s")
    print(f"  classes_kind steps, {len(classes)} partitions            {sum(classes):7.2f} s  "
          f"({np.mean(classes):.2f} s per {points:,} points: {1e6 * np.mean(classes) / points:.0f} ms per 1,000)")
    print(f"  map step (redrawn with the classes)              {sum(redraw):7.2f} s")
    print(f"scikit-learn LogisticRegression in process (fit + predict all)  {baseline:.2f} s: the classify "
          f"steps take {(train[0] + sum(classes)) / baseline:.1f}x that")
    print(f"a new partition of {per:,}: embedmap build {added:.1f} s, its classes_kind step "
          f"{sum(new_classes):.2f} s, classifier trained again: {trained_again} time(s)")
    print(f"best class right (points given a class, {scored.height:,} of {exported.height:,}): {right:.3f}; "
          f"scikit-learn's on all points: {right_base:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
