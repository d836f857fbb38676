"""The embedded vector store: upserts, filtered queries and deletes, engine against engine, same run.

    .venv/bin/python benchmarks/store.py                    # edge at 100,000 points, both engines at 20,000
    .venv/bin/python benchmarks/store.py --n 100000 --local-n 0

Goes through :class:`dagster_embedmap.core.store.VectorStore` exactly as the assets do: partitions of
5,000 random unit 384-d vectors with the pipeline's payload (record id, partition, text snippet,
topic id), then

- upsert rate (points/s over all partitions; target >= 5,000),
- a filtered top-10 query (``topic_id == t``; median over 200 queries; target < 10 ms),
- an unfiltered top-10 query (median),
- delete one partition (target < 1 s),
- set payloads on 10% of the points (what the topics step does), points/s.

qdrant-client's local mode runs on the smaller size only (it is the slow baseline); the ratio
column divides edge's figure by local mode's at the same size.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dagster_embedmap.core.store import StoreLocation, open_store, point_id

DIM = 384
PART = 5_000


def run(engine: str, n: int, folder: Path, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    location = StoreLocation(path=str(folder), engine=engine)
    out: dict[str, float] = {}
    n_parts = max(1, n // PART)
    upsert_s = 0.0
    with open_store(location, "bench") as store:
        for p in range(n_parts):
            rids = [f"{p}-{i}" for i in range(PART)]
            vectors = rng.normal(size=(PART, DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            payloads = [{"record_id": r, "text": f"text of record {r} " * 5, "topic_id": int(i % 20)}
                        for i, r in enumerate(rids)]
            ids = [point_id("bench", r) for r in rids]
            started = time.perf_counter()
            store.upsert_partition(f"part-{p:03d}", ids, vectors, payloads)
            upsert_s += time.perf_counter() - started
        total = n_parts * PART
        out["upsert points/s"] = total / upsert_s
        queries = rng.normal(size=(200, DIM)).astype(np.float32)
        for name, must in (("filtered top-10 query, median ms", lambda i: {"topic_id": i % 20}),
                           ("top-10 query, median ms", lambda i: None)):
            store.search(queries[0], k=10, must=must(0))  # warm
            times = []
            for i, q in enumerate(queries):
                started = time.perf_counter()
                hits = store.search(q, k=10, must=must(i))
                times.append(time.perf_counter() - started)
                assert len(hits) == 10
            out[name] = 1000 * float(np.median(times))
        ids = [point_id("bench", f"{p}-{i}") for p in range(n_parts) for i in range(0, PART, 10)]
        started = time.perf_counter()
        store.set_payloads({pid: {"x": 1.0, "y": 2.0, "topic_id": 3} for pid in ids})
        out["set payloads points/s"] = len(ids) / (time.perf_counter() - started)
        started = time.perf_counter()
        deleted = store.delete_partition("part-000")
        out["delete one partition, s"] = time.perf_counter() - started
        assert deleted == PART and store.count() == total - PART
    started = time.perf_counter()
    with open_store(location, "bench") as store:
        assert store.count() == total - PART
    out["reopen + count, s"] = time.perf_counter() - started
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="points for the edge engine")
    parser.add_argument("--local-n", type=int, default=20_000,
                        help="points for both engines, side by side (0: skip qdrant-client's local mode)")
    args = parser.parse_args()
    targets = {"upsert points/s": ">= 5,000", "filtered top-10 query, median ms": "< 10",
               "delete one partition, s": "< 1"}
    tmp = Path(tempfile.mkdtemp(prefix="embedmap-store-"))
    try:
        if args.local_n:
            edge = run("edge", args.local_n, tmp / "edge-small")
            local = run("local", args.local_n, tmp / "local-small")
            print(f"\n{args.local_n:,} points of {DIM}-d, {args.local_n // PART} partitions\n")
            print("| figure | edge | qdrant-client local | edge / local | target |")
            print("|---|---|---|---|---|")
            for key in edge:
                print(f"| {key} | {edge[key]:,.2f} | {local[key]:,.2f} | {edge[key] / local[key]:.3g} | {targets.get(key, '')} |")
        big = run("edge", args.n, tmp / "edge-big")
        print(f"\n{args.n:,} points of {DIM}-d, {args.n // PART} partitions, edge engine\n")
        print("| figure | edge | target |")
        print("|---|---|---|")
        for key, value in big.items():
            print(f"| {key} | {value:,.2f} | {targets.get(key, '')} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
