"""Projection and topics for given vectors: ours vs BERTopic (its fit plus its 2-D document map), same run.

    .venv/bin/python benchmarks/projection.py                       # 20,000 synthetic 384-d vectors
    .venv/bin/python benchmarks/projection.py --qdrant PATH         # the vectors of a built map (e.g. --full demo)
    .venv/bin/python benchmarks/projection.py --repeats 2 --no-cold # quicker

Ours: ``fit_projection(ids, vectors, ProjectionSettings())`` (the layout step's fit) (UMAP to 2-D, seeded, one thread, 100 epochs above
10,000 points) then ``update_topics`` (HDBSCAN on the 2-D map, the topic tree, c-TF-IDF labels of every
level), with the library defaults.
BERTopic: ``BERTopic().fit_transform(docs, embeddings)`` (UMAP to 5-d, HDBSCAN on 5-d, c-TF-IDF) plus
``visualize_documents(docs, embeddings=embeddings)`` (its own UMAP to 2-D and the plotly figure), i.e. what
BERTopic needs for topics *and* a document map. BERTopic is a benchmark-only dependency (``pip install
bertopic``).

Warm figures are medians over ``--repeats`` runs in this process after one warm-up run of each side (numba
compiles per process); cold figures are the first run in a fresh process (numba's on-disk cache as set up).
Target: ours <= 0.5 x BERTopic.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = [a + b + c for a in "bcdfghklmnprstvz" for b in "aeiou" for c in ("n", "r", "s", "l", "x", "m")]


def synthetic(n: int, dim: int = 384, k: int = 20, noise: float = 0.1, seed: int = 0):
    """``k`` groups of unequal size (plus ``noise`` share of scattered points) as 384-d unit vectors, with
    texts from a 30-word vocabulary per group and shared filler words. Truth -1 marks the scatter."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, k + 1) ** 0.7
    n_noise = int(round(n * noise))
    truth = np.concatenate([rng.choice(k, size=n - n_noise, p=weights / weights.sum()), np.full(n_noise, -1)])
    truth = truth[rng.permutation(n)]
    x = rng.normal(size=(n, dim)) / np.sqrt(dim) * 1.6  # spread: cosine to the centre about 0.53
    x[truth >= 0] += centres[truth[truth >= 0]]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    vocab = [list(rng.choice(WORDS, size=30, replace=False)) for _ in range(k)]
    filler = list(rng.choice(WORDS, size=60, replace=False))
    texts = []
    for t in truth:
        own = rng.choice(vocab[t], size=8).tolist() if t >= 0 else []
        texts.append(" ".join(own + rng.choice(filler, size=12 - len(own) // 2).tolist()))
    return x.astype(np.float32), texts, truth


def from_qdrant(path: str, collection: str):
    """Vectors, texts and categories of a built map, read from a copy of its embedded Qdrant folder."""
    from dagster_embedmap.core.errors import EmbedMapStoreError
    from dagster_embedmap.core.store import StoreLocation, open_store

    tmp = Path(tempfile.mkdtemp(prefix="embedmap-projbench-"))
    try:
        shutil.copytree(path, tmp / "qdrant")
        try:
            with open_store(StoreLocation(path=str(tmp / "qdrant")), collection) as store:
                _, vectors, payloads = store.read_vectors()
        except EmbedMapStoreError:  # a map written by qdrant-client's local mode
            with open_store(StoreLocation(path=str(tmp / "qdrant"), engine="local"), collection) as store:
                _, vectors, payloads = store.read_vectors()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    texts = [p.get("text") or "" for p in payloads]
    cats = [p.get("category") for p in payloads]
    names = sorted({c for c in cats if c and c != "Uncategorized"})
    truth = np.array([names.index(c) if c in names else -1 for c in cats])
    return np.asarray(vectors, dtype=np.float32), texts, truth


def reset_threads() -> None:
    """umap-learn calls numba.set_num_threads(1) when seeded, and that sticks for the process."""
    import numba

    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def run_ours(vectors, texts, **projection) -> dict:
    import dagster_embedmap.core.topics.model as tm
    from dagster_embedmap.core.layout.project import ProjectionSettings, fit_projection

    reset_threads()
    spent = {}
    inner = tm.assign_topics

    def timed_assign(*a, **kw):
        t = time.perf_counter()
        out = inner(*a, **kw)
        spent["hdbscan"] = time.perf_counter() - t
        return out

    t0 = time.perf_counter()
    ids = [str(i) for i in range(len(vectors))]  # the production path: the layout step's fit, then place
    model = fit_projection(ids, vectors, ProjectionSettings(**projection))
    t1 = time.perf_counter()
    xy = model.place(ids, vectors)
    t2 = time.perf_counter()
    tm.assign_topics = timed_assign
    try:
        update = tm.update_topics(xy, [], None, lambda: texts, recluster=True)
    finally:
        tm.assign_topics = inner
    t3 = time.perf_counter()
    fine = update.tree.levels[-1]
    return {
        "total": t3 - t0, "umap fit": t1 - t0, "transform": t2 - t1, "hdbscan": spent["hdbscan"],
        "tree + labels": t3 - t2 - spent["hdbscan"], "topics": int(len(set(fine.tolist()) - {-1})),
        "broad topics": int(len(set(update.tree.levels[0].tolist()) - {-1})),
        "outliers": 0.0, "labels": fine.tolist(),
    }


def run_bertopic(vectors, texts) -> dict:
    from bertopic import BERTopic

    reset_threads()
    t0 = time.perf_counter()
    model = BERTopic(verbose=False)
    topics, _ = model.fit_transform(texts, vectors)
    t1 = time.perf_counter()
    model.visualize_documents(texts, embeddings=vectors)
    t2 = time.perf_counter()
    topics = np.asarray(topics)
    return {
        "total": t2 - t0, "fit_transform": t1 - t0, "2-D document map": t2 - t1,
        "topics": int(len(set(topics.tolist()) - {-1})), "outliers": float((topics == -1).mean()),
        "labels": topics.tolist(),
    }


def run_ours_parallel(vectors, texts) -> dict:
    """``ProjectionSettings(parallel=True)``: every core, seeded through NumPy, not bit-reproducible."""
    return run_ours(vectors, texts, parallel=True)


SIDES = {"ours": run_ours, "bertopic": run_bertopic, "ours-parallel": run_ours_parallel}


def load(args):
    if args.qdrant:
        return from_qdrant(args.qdrant, args.collection)
    return synthetic(args.n)


def cold(args, side: str) -> dict:
    """The first run of ``side`` in a fresh process (imports timed apart)."""
    cmd = [sys.executable, __file__, "--_cold", side, "--n", str(args.n), "--collection", args.collection]
    if args.qdrant:
        cmd += ["--qdrant", args.qdrant]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def nmi(truth, labels) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    keep = truth >= 0
    return float(normalized_mutual_info_score(truth[keep], np.asarray(labels)[keep]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="synthetic points (default 20,000)")
    parser.add_argument("--qdrant", help="embedded Qdrant folder of a built map: use its vectors and texts")
    parser.add_argument("--collection", default="wiki")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process (cold) runs")
    parser.add_argument("--only", choices=sorted(SIDES), help="run one side only (exploration)")
    parser.add_argument("--parallel", action="store_true",
                        help="also time ours with ProjectionSettings(parallel=True) (the fit on every core)")
    parser.add_argument("--_cold", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._cold:
        vectors, texts, _ = load(args)
        t = time.perf_counter()
        __import__("bertopic" if args._cold == "bertopic" else "dagster_embedmap.core.topics.model")
        if args._cold != "bertopic":  # what the step imports on first use
            import dagster_embedmap.core.layout.project  # noqa: F401
            import umap  # noqa: F401
            import hdbscan  # noqa: F401
        imports = time.perf_counter() - t
        out = SIDES[args._cold](vectors, texts)
        out.pop("labels")
        print(json.dumps({"imports": imports, **out}))
        return 0

    vectors, texts, truth = load(args)
    source = f"Qdrant {args.qdrant}" if args.qdrant else "synthetic (20 groups + 10% scatter)"
    print(f"{len(vectors):,} x {vectors.shape[1]}-d vectors, {source}; {os.cpu_count()} CPU cores\n")
    sides = [args.only] if args.only else ["ours", "bertopic"] + (["ours-parallel"] if args.parallel else [])

    colds = {} if args.no_cold else {side: cold(args, side) for side in sides}
    for side in sides:  # warm-up: numba compiles what this process needs
        SIDES[side](vectors, texts)
    runs = {side: [] for side in sides}
    for _ in range(args.repeats):
        for side in sides:
            runs[side].append(SIDES[side](vectors, texts))

    def med(side, key):
        return float(np.median([r[key] for r in runs[side]]))

    def rng_(side, key):
        vals = [r[key] for r in runs[side]]
        return f"{min(vals):.1f}-{max(vals):.1f}"

    print(f"| step | warm, median of {args.repeats} (s) | range (s) | cold, fresh process (s) |")
    print("|---|---|---|---|")
    ours_parts = ["umap fit", "transform", "hdbscan", "tree + labels", "total"]
    parts = {"ours": ours_parts, "ours-parallel": ours_parts,
             "bertopic": ["fit_transform", "2-D document map", "total"]}
    for side in sides:
        c = colds.get(side, {})
        if c:
            print(f"| {side}: imports | - | - | {c['imports']:.1f} |")
        for key in parts[side]:
            name = f"**{side}: {key}**" if key == "total" else f"{side}: {key}"
            cold_s = f"{c[key]:.1f}" if key in c else "-"
            print(f"| {name} | {med(side, key):.1f} | {rng_(side, key)} | {cold_s} |")
    for ours in [s for s in sides if s.startswith("ours")]:
        if "bertopic" not in sides:
            break
        ratio = med(ours, "total") / med("bertopic", "total")
        print(f"\n{ours} / BERTopic, warm: **{ratio:.3f}** (target <= 0.5)", end="")
        if colds:
            print(f"; cold: **{colds[ours]['total'] / colds['bertopic']['total']:.3f}**", end="")
    print()
    print("\n| method | topics | share left as outliers | NMI vs truth (points with a truth label) |")
    print("|---|---|---|---|")
    for side in sides:
        last = runs[side][-1]
        extra = f" ({last['broad topics']} broad)" if "broad topics" in last else ""
        print(f"| {side} | {last['topics']}{extra} | {last['outliers']:.3f} | {nmi(truth, last['labels']):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
