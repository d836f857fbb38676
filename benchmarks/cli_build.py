"""The whole `embedmap build` command against BERTopic's fit plus its 2-D document map, given the same vectors.

    .venv/bin/python benchmarks/cli_build.py              # 20,000 synthetic 384-d vectors (benchmarks/projection.py)
    .venv/bin/python benchmarks/cli_build.py --n 5000
    .venv/bin/python benchmarks/cli_build.py --repeats 3  # 3 pairs, interleaved; the ratio of the medians

Both sides run as a fresh process each, timed from start to exit, the way a user runs them:

- ours: ``embedmap build points.parquet --text-column text --vector-column emb --home H`` (one partition:
  documents, collection, layout fit, placement, topics and labels, the HTML map and its checks);
- BERTopic 0.17: a script that loads the same vectors and texts, ``BERTopic().fit_transform(docs,
  embeddings)``, then the 2-D map the way its docs advise for ``visualize_documents`` (UMAP to 2-D with
  10 neighbours, ``min_dist=0``, cosine, handed over as ``reduced_embeddings``).

Quality beside the time, on the same records: NMI of the fine topics against the planted groups
(scatter left out) and trustworthiness of the 2-D map (scikit-learn, 10 neighbours, cosine, on 5,000
seeded rows). Targets (issue 14): ours at most 0.5x BERTopic's time, NMI and trustworthiness no lower.
Exit status 3 when one is missed. With ``--repeats R`` the two sides run R times each, one after the
other in turn (so a noisy stretch of the machine falls on both), each time into a new home; the ratio
is that of the two medians, and every pair's own ratio is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

BERTOPIC = r"""
import json, sys, numpy as np
vectors = np.load(sys.argv[1]); texts = json.load(open(sys.argv[2]))
from bertopic import BERTopic
from umap import UMAP
model = BERTopic(verbose=False)
topics, _ = model.fit_transform(texts, vectors)
xy = UMAP(n_neighbors=10, n_components=2, min_dist=0.0, metric="cosine").fit_transform(vectors)
model.visualize_documents(texts, reduced_embeddings=xy)
np.save(sys.argv[3], np.asarray(xy, dtype=np.float32)); np.save(sys.argv[4], np.asarray(topics))
"""


def timed_output(cmd: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds of a fresh process running ``cmd``, start to exit, and its standard output."""
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if out.returncode:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-3000:])
        raise SystemExit(f"{cmd[0]} exited {out.returncode}")
    return seconds, out.stdout


def timed(cmd: list[str], env: dict) -> float:
    return timed_output(cmd, env)[0]


def read_ours(home: Path, name: str, ids: list[str]):
    """Each record's (x, y) and fine topic, in the order of ``ids``."""
    from dagster_embedmap.core.store import StoreLocation, open_store
    from dagster_embedmap.core.store.payload import level_field, points_frame

    with open_store(StoreLocation(path=str(home / "qdrant")), name, read_only=True) as store:
        points = points_frame(store)
    depth = max(int(c.split("_")[1]) for c in points.columns
                if c.startswith("topic_") and c.endswith("_id") and c.split("_")[1].isdigit()) + 1
    row = {rid: i for i, rid in enumerate(points["id"].to_list())}
    order = np.array([row[r] for r in ids])
    xy = np.column_stack([points["x"].to_numpy(), points["y"].to_numpy()])[order]
    return xy, points[level_field(depth - 1, "id")].to_numpy()[order]


def quality(vectors, truth, xy, topics, rows) -> tuple[float, float]:
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import normalized_mutual_info_score

    keep = truth >= 0
    nmi = float(normalized_mutual_info_score(truth[keep], np.asarray(topics)[keep]))
    return nmi, float(trustworthiness(vectors[rows], xy[rows], n_neighbors=10, metric="cosine"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs, interleaved (median of each side)")
    args = parser.parse_args()
    import polars as pl

    from projection import synthetic

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"commit {commit.strip()}{' (with uncommitted changes)' if dirty.strip() else ''}, n={args.n:,}")
    vectors, texts, truth = synthetic(args.n)
    ids = [f"r{i}" for i in range(len(vectors))]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NUMBA_CACHE_DIR": os.environ.get(
        "NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba")), "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pl.DataFrame({"id": ids, "text": texts, "emb": pl.Series(vectors.tolist(), dtype=pl.List(pl.Float32))}) \
            .write_parquet(work / "points.parquet")
        np.save(work / "vectors.npy", vectors)
        (work / "texts.json").write_text(json.dumps(texts))
        embedmap = str(Path(sys.executable).with_name("embedmap"))
        ours_runs, theirs_runs = [], []
        for r in range(max(1, args.repeats)):
            home = work / f"home{r}"
            ours_runs.append(timed([embedmap, "build", str(work / "points.parquet"), "--text-column", "text",
                                    "--vector-column", "emb", "--home", str(home)], env))
            theirs_runs.append(timed([sys.executable, "-c", BERTOPIC, str(work / "vectors.npy"),
                                      str(work / "texts.json"), str(work / "bt_xy.npy"), str(work / "bt_topics.npy")],
                                     env))
            if args.repeats > 1:
                print(f"pair {r + 1}: ours {ours_runs[-1]:.1f} s, BERTopic {theirs_runs[-1]:.1f} s, "
                      f"ratio {ours_runs[-1] / theirs_runs[-1]:.2f}", flush=True)
        ours_s, theirs_s = float(np.median(ours_runs)), float(np.median(theirs_runs))
        ours_xy, ours_topics = read_ours(home, "points", ids)
        bt_xy, bt_topics = np.load(work / "bt_xy.npy"), np.load(work / "bt_topics.npy")
    rows = np.random.default_rng(0).choice(len(vectors), size=min(5000, len(vectors)), replace=False)
    ours_q, theirs_q = quality(vectors, truth, ours_xy, ours_topics, rows), quality(vectors, truth, bt_xy, bt_topics, rows)
    ratio = ours_s / theirs_s
    if args.repeats > 1:
        print(f"medians of {args.repeats} runs each:")
    print("| side | whole command | fine topics | NMI | trustworthiness |\n|---|---|---|---|---|")
    print(f"| `embedmap build` | {ours_s:.1f} s | {len(set(ours_topics.tolist()))} | {ours_q[0]:.3f} | {ours_q[1]:.3f} |")
    print(f"| BERTopic fit + 2-D map | {theirs_s:.1f} s | {len(set(bt_topics.tolist()) - {-1})} (+ outliers "
          f"{(bt_topics == -1).mean():.0%}) | {theirs_q[0]:.3f} | {theirs_q[1]:.3f} |")
    met = ratio <= 0.5 and ours_q[0] >= theirs_q[0] and ours_q[1] >= theirs_q[1]
    print(f"ratio ours / BERTopic: {ratio:.2f} (target <= 0.5); NMI {'>=' if ours_q[0] >= theirs_q[0] else '<'} "
          f"BERTopic's, trustworthiness {'>=' if ours_q[1] >= theirs_q[1] else '<'} BERTopic's: "
          f"{'met' if met else 'missed'}")
    return 0 if met else 3


if __name__ == "__main__":
    sys.exit(main())
