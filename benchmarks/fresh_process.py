"""A fresh process against a warm one: the layout fit, the placement and the topics of 20,000 points.

    .venv/bin/python benchmarks/fresh_process.py              # 20,000 x 384-d, 2 fresh processes
    .venv/bin/python benchmarks/fresh_process.py --n 5000

Dagster runs each step in a fresh process, and ``embedmap build`` is one. Each child process here does
the work of the layout and topics steps twice through the production path (``fit_projection``,
``ProjectionModel.place``, ``assign_topics`` over ``cluster_space``): the first time is what a step pays
(imports aside), the second the same work warm, in the same process, so the ratio is measured in one
run. The first child may fill the compiled cache (``core/layout/compiled.py``); the figure is the last
child's. Target (issue 14): fresh at most 1.5x warm.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
centres = rng.normal(size=(30, 384))
v = (centres[rng.integers(0, 30, n)] + rng.normal(size=(n, 384)) * 0.8).astype(np.float32)
v /= np.linalg.norm(v, axis=1, keepdims=True)
ids = [str(i) for i in range(n)]
t = time.perf_counter()
from dagster_embedmap.core.layout.project import ProjectionSettings, fit_projection
from dagster_embedmap.core.store.payload import vector_hashes
from dagster_embedmap.core.topics.cluster import assign_topics
imports = time.perf_counter() - t
runs = []
for _ in range(2):
    t0 = time.perf_counter()
    model = fit_projection(ids, v, ProjectionSettings())
    t1 = time.perf_counter()
    xy = model.place(ids, v)
    model.place([f"new{i}" for i in range(1000)], v[:1000] + 0.01)
    t2 = time.perf_counter()
    topics = assign_topics(xy, np.full(n, -1), True, space=model.cluster_space(ids, vector_hashes(v)))
    t3 = time.perf_counter()
    runs.append({"fit": t1 - t0, "place": t2 - t1, "topics": t3 - t2, "total": t3 - t0,
                 "n_topics": int(topics.topic_ids.max()) + 1})
print(json.dumps({"imports": imports, "fresh": runs[0], "warm": runs[1]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--children", type=int, default=2)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"commit {commit.strip()}{' (with uncommitted changes)' if dirty.strip() else ''}, n={args.n:,}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = None
    for child in range(args.children):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.n)], capture_output=True, text=True, env=env,
                             cwd=ROOT)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads(out.stdout.strip().splitlines()[-1])
        fresh, warm = result["fresh"], result["warm"]
        print(f"child {child + 1}: imports {result['imports']:.1f} s | fresh fit {fresh['fit']:.1f} place "
              f"{fresh['place']:.1f} topics {fresh['topics']:.1f} = {fresh['total']:.1f} s | warm fit {warm['fit']:.1f} "
              f"place {warm['place']:.1f} topics {warm['topics']:.1f} = {warm['total']:.1f} s | "
              f"ratio {fresh['total'] / warm['total']:.2f} ({fresh['n_topics']} topics)")
    ratio = result["fresh"]["total"] / result["warm"]["total"]
    print(f"fresh / warm (last child): {ratio:.2f} (target <= 1.5)")
    return 0 if ratio <= 1.5 else 3


if __name__ == "__main__":
    sys.exit(main())
