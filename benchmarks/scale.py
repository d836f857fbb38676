"""A map of up to 1,000,000 points on one box: each stage's time, peak memory, and how it grows.

    .venv/bin/python benchmarks/scale.py --n 100000 1000000

Bring-your-own-vector path on synthetic clustered 384-d unit vectors (60 topics under 8 broad
groups, 3% noise) with short synthetic texts, through the same core functions the assets call, in
the order the assets run them:

1. store: every partition (50,000 points) upserted into the embedded Qdrant (edge engine),
2. projection: UMAP fitted on a sample chosen by content (at most 20,000 points; the 2-D map and the
   10-d cluster space), every partition placed, coordinates written to the payload,
3. topics: HDBSCAN's cores in the cluster space, joined into topics, extended to every point, the
   topic tree and the labels of every level (c-TF-IDF candidates ranked by meaning with the bundled
   model, as for a map the model embeds) (``update_topics``), payloads,
4. map: the points read back from the store, the HTML map (text snippets cut to 60 characters
   at this size) and the PNG preview.

Prints seconds per stage, peak resident memory (``ru_maxrss``) and, between two sizes, each stage's
growth next to n log n (target: per-partition stages grow no worse than n log n; 1M points in under
30 minutes and 12 GiB).

``--baseline REV`` also times the topics step of an earlier commit on the very same coordinates and
texts, in the same run (a git worktree of REV in a temporary folder, its ``update_topics`` in a fresh
process) and prints the ratio (target for the topics issue: at most 1.5x).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))

DIM = 384
PART = 50_000
WORDS = [a + b + c for a in "bcdfghklmnprstvz" for b in "aeiou" for c in ("n", "r", "s", "l", "m", "t")]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_topics, n_broad = 60, 8
    broad = rng.normal(0, 1, (n_broad, DIM))
    centres = broad[np.arange(n_topics) % n_broad] + rng.normal(0, 0.7, (n_topics, DIM))
    topic = rng.integers(0, n_topics, n)
    noise = rng.random(n) < 0.03
    vectors = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, 100_000):  # in blocks, to keep the float64 temporaries small
        hi = min(n, lo + 100_000)
        block = np.where(noise[lo:hi, None], 0.0, centres[topic[lo:hi]]) + rng.normal(0, 0.9, (hi - lo, DIM))
        vectors[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    vocab = np.array(WORDS)
    topic_words = rng.integers(0, 40, (n, 8)) + (topic * 7)[:, None]
    filler = rng.integers(0, len(WORDS), (n, 4))
    texts = [" ".join(vocab[np.r_[tw % len(WORDS), fw]]) for tw, fw in zip(topic_words, filler)]
    return vectors, texts


def run(n: int, home: Path) -> dict[str, float]:
    import polars as pl

    from dagster_embedmap.core.embedding import Encoder, EncoderSettings
    from dagster_embedmap.core.store.payload import points_frame, vector_hashes
    from dagster_embedmap.core.layout.project import ProjectionSettings, fit_projection
    from dagster_embedmap.core.render import render_html_map, render_preview_png
    from dagster_embedmap.core.store import StoreLocation, open_store, point_id
    from dagster_embedmap.core.topics.model import update_topics

    out: dict[str, float] = {}
    started = time.perf_counter()
    vectors, texts = synthetic(n)
    out["synthetic data"] = time.perf_counter() - started
    location = StoreLocation(path=str(home / "qdrant"))
    parts = [(f"part-{p:03d}", p * PART, min(n, (p + 1) * PART)) for p in range(math.ceil(n / PART))]
    ids = [point_id("scale", str(i)) for i in range(n)]

    started = time.perf_counter()
    with open_store(location, "scale") as store:
        for name, lo, hi in parts:
            store.upsert_partition(name, ids[lo:hi], vectors[lo:hi],
                                   [{"record_id": str(i), "text": texts[i]} for i in range(lo, hi)])
        assert store.count() == n
    out["store: upsert every partition"] = time.perf_counter() - started

    started = time.perf_counter()
    settings = ProjectionSettings()
    model = fit_projection(ids, vectors, settings)  # the layout step's fit: a sample chosen by content
    out["projection: fit on the sample"] = time.perf_counter() - started
    started = time.perf_counter()
    xy = np.empty((n, 2), dtype=np.float32)
    with open_store(location, "scale") as store:
        for name, lo, hi in parts:
            xy[lo:hi] = model.place(ids[lo:hi], vectors[lo:hi])
            store.set_payloads({ids[i]: {"x": float(xy[i, 0]), "y": float(xy[i, 1])} for i in range(lo, hi)})
    out["projection: place every partition"] = time.perf_counter() - started

    if os.environ.get("EMBEDMAP_SCALE_SAVE"):  # for --baseline: the same coordinates and texts
        np.save(home / "xy.npy", xy)
        (home / "texts.txt").write_text("\n".join(texts))
    encoder = Encoder(EncoderSettings())
    started = time.perf_counter()
    space = model.cluster_space(ids, vector_hashes(vectors))  # as the topics step gets it
    update = update_topics(xy, [np.full(n, -1)], None, lambda: texts, space=space,
                           embed=lambda terms: encoder.encode(terms))
    out["topics: cluster, tree, labels"] = time.perf_counter() - started
    encoder.close()
    started = time.perf_counter()
    with open_store(location, "scale") as store:
        store.set_payloads({ids[i]: update.payload(i) for i in range(n)})
    out["topics: write payloads"] = time.perf_counter() - started
    del vectors

    started = time.perf_counter()
    with open_store(location, "scale") as store:
        points = points_frame(store)
    out["map: read the points back"] = time.perf_counter() - started
    started = time.perf_counter()
    drawable = points.drop_nulls(["x", "y"])
    render_html_map(drawable, home / "map.html", title=f"{n:,} points", text_limit=60)
    render_preview_png(drawable, home / "map.png", title=f"{n:,} points")
    out["map: HTML + PNG"] = time.perf_counter() - started
    out["HTML MB"] = (home / "map.html").stat().st_size / 1e6
    out["fine topics"] = float(len(np.unique(update.tree.fine[update.tree.fine >= 0])))
    out["broad topics"] = float(len(np.unique(update.tree.levels[0][update.tree.levels[0] >= 0])))
    out["peak memory GiB"] = peak_gib()
    assert points.height == n and pl.Series(points["topic_id"]).null_count() == 0
    return out


def baseline_topics(rev: str, home: Path) -> float:
    """Seconds the topics step of commit ``rev`` takes on the coordinates and texts saved in ``home``."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    tree = Path(tempfile.mkdtemp(prefix="embedmap-baseline-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=root, check=True, capture_output=True)
    try:
        code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
                "try:\n from dagster_embedmap.core.topics.model import update_topics\n"
                "except ImportError:\n from dagster_embedmap.core.topic_model import update_topics\n"  # before the regroup
                "import sys, time, numpy as np; "
                "xy = np.load(sys.argv[2]); texts = open(sys.argv[3]).read().split(chr(10)); t = time.perf_counter(); "
                "update_topics(xy, [np.full(len(xy), -1)], None, lambda: texts); print('SECONDS', time.perf_counter() - t)")
        proc = subprocess.run([sys.executable, "-c", code, str(tree), str(home / "xy.npy"), str(home / "texts.txt")],
                              capture_output=True, text=True, check=True)
        return float([x for x in proc.stdout.splitlines() if x.startswith("SECONDS ")][0].split()[1])
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--home", help="keep the files here (default: a temporary folder)")
    parser.add_argument("--baseline", metavar="REV", help="also time this commit's topics step on the same data")
    args = parser.parse_args()
    if args.baseline:
        os.environ["EMBEDMAP_SCALE_SAVE"] = "1"
    results = {}
    for n in args.n:
        home = Path(args.home or tempfile.mkdtemp(prefix="embedmap-scale-")) / f"n{n}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        started = time.perf_counter()
        # each size in its own process, so peak memory is that size's
        import subprocess

        code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); import scale; "
                f"print('RESULT', json.dumps(scale.run({n}, __import__('pathlib').Path({str(home)!r}))))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:])
            return 1
        import json

        results[n] = json.loads(line[0][7:])
        results[n]["total"] = time.perf_counter() - started
        if args.baseline:
            results[n]["baseline topics (REV)"] = baseline_topics(args.baseline, home)
            results[n]["topics / baseline"] = results[n]["topics: cluster, tree, labels"] / results[n]["baseline topics (REV)"]
        print(f"\n{n:,} points: {results[n]['total']:.0f} s, peak {results[n]['peak memory GiB']:.2f} GiB", flush=True)
        for key, value in results[n].items():
            print(f"  {key:<36} {value:10.2f}")
        if not args.home:
            shutil.rmtree(home.parent, ignore_errors=True)
    sizes = sorted(results)
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        nlogn = (b * math.log(b)) / (a * math.log(a))
        print(f"\ngrowth from {a:,} to {b:,} points (n log n grows {nlogn:.1f}x, n {b / a:.0f}x):")
        for key in results[a]:
            if key in ("HTML MB", "fine topics", "broad topics", "peak memory GiB", "topics / baseline") \
                    or results[a][key] <= 0:
                continue
            print(f"  {key:<36} {results[b][key] / results[a][key]:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
