"""Incremental maps: what adding one partition costs, and whether the old points stay put.

    .venv/bin/python benchmarks/incremental.py              # N = 10,000 records in 20 partitions, then +5%
    .venv/bin/python benchmarks/incremental.py --n 2000     # a quicker run
    .venv/bin/python benchmarks/incremental.py --wiki --n 2000   # real texts through the real model

Builds a map from N records (bring-your-own 384-d vectors: synthetic clustered vectors with texts
drawn from per-cluster vocabularies) in 20 partitions through the real assets (embedded Qdrant, UMAP,
HDBSCAN, rendering), then lands one more partition of 5% of N and brings the map up to date. Prints,
from the same run: the update's wall time as a fraction of the full build (target <= 0.10), the
records that went through the embeddings step (target: only the new ones), and layout stability of
the old points (share of each old point's 10 nearest 2-D neighbours kept; target >= 0.9). Then it
refits the layout and prints the Procrustes disparity and the neighbour share after the refit.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl


def synthetic(n: int, start: int, rng: np.random.Generator, centres: np.ndarray, vocab: list[list[str]]) -> pl.DataFrame:
    k = len(centres)
    topic = rng.integers(0, k, size=n)
    vectors = centres[topic] + rng.normal(scale=0.35, size=(n, centres.shape[1]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [" ".join(rng.choice(vocab[t], size=12)) + f" record {start + i}" for i, t in enumerate(topic)]
    return pl.DataFrame({"id": [f"r{start + i}" for i in range(n)], "text": texts, "truth": topic,
                         "emb": vectors.astype(np.float32).tolist()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--new-share", type=float, default=0.05)
    parser.add_argument("--home", help="work folder (default: a temp folder)")
    parser.add_argument("--wiki", action="store_true",
                        help="Wikipedia summaries embedded by the bundled model instead of given vectors")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
    import dagster as dg

    from dagster_embedmap import FileSource, MapKeys, build_embedmap_defs, embedmap_resources, materialize_map
    from dagster_embedmap.core.layout.align import neighbour_preservation
    from dagster_embedmap.core.store.payload import points_frame
    from dagster_embedmap.core.store import StoreLocation, open_store

    work = Path(args.home or tempfile.mkdtemp(prefix="embedmap-incremental-")).resolve()
    landing, home = work / "landing", work / "home"
    landing.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 384))  # |centre| ~ 20, noise |.| ~ 7: 30 well separated groups
    words = [f"w{i}" for i in range(3000)]
    vocab = [list(rng.choice(words, size=40, replace=False)) for _ in range(30)]
    per = args.n // args.partitions
    new = int(args.n * args.new_share)
    if args.wiki:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from dagster_embedmap.core.records.datasets import load_wiki_summaries

        corpus = load_wiki_summaries(n=args.n + new).select("id", "text", "category")

        def batch(count: int, start: int) -> pl.DataFrame:
            return corpus.slice(start, count)
    else:
        def batch(count: int, start: int) -> pl.DataFrame:
            return synthetic(count, start, rng, centres, vocab)
    for p in range(args.partitions):
        batch(per, p * per).write_parquet(landing / f"part-{p:03d}.parquet")
    pdef = dg.DynamicPartitionsDefinition(name="bench_batches")
    defs = dg.Definitions.merge(
        build_embedmap_defs("bench", FileSource(str(landing / "*.parquet")), vector_column=None if args.wiki else "emb",
                            partitions_def=pdef, home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("bench")
    (work / "dagster").mkdir(exist_ok=True)
    instance = dg.DagsterInstance.local_temp(tempdir=str(work / "dagster"))

    def embedded_rows(result) -> int:
        """Records the embeddings step computed (model calls; with given vectors: records taken)."""
        return sum(e.materialization.metadata["embedded"].value for r in result.runs
                   for e in r.get_asset_materialization_events() if e.asset_key == keys.embeddings)

    def coords() -> pl.DataFrame:
        with open_store(StoreLocation(path=str(home / "qdrant")), "bench") as store:
            return points_frame(store).select("id", "x", "y", "topic_id")

    instance.add_dynamic_partitions("bench_batches", [f"part-{p:03d}" for p in range(args.partitions)])
    started = time.perf_counter()
    full = materialize_map(defs, keys, instance=instance, log_level="WARNING", log=lambda m: None)
    full_s = time.perf_counter() - started
    before = coords()

    batch(new, per * args.partitions).write_parquet(landing / "part-new.parquet")
    instance.add_dynamic_partitions("bench_batches", ["part-new"])
    started = time.perf_counter()
    update = materialize_map(defs, keys, instance=instance, partition_keys=["part-new"], log_level="WARNING")
    update_s = time.perf_counter() - started
    after = coords()
    joined = before.join(after, on="id", suffix="_after")
    kept = neighbour_preservation(joined.select("x", "y").to_numpy(), joined.select("x_after", "y_after").to_numpy(), 10)
    same_topic = float((joined["topic_id"] == joined["topic_id_after"]).mean())

    started = time.perf_counter()
    refit = materialize_map(defs, keys, instance=instance, partition_keys=[], refit=True, log_level="WARNING")
    refit_s = time.perf_counter() - started
    refitted = coords()
    joined2 = after.join(refitted, on="id", suffix="_refit")
    kept_refit = neighbour_preservation(joined2.select("x", "y").to_numpy(), joined2.select("x_refit", "y_refit").to_numpy(), 10)
    model_meta = refit.metadata(keys.projection_model)
    topic_meta = refit.metadata(keys.topics)

    kind = "Wikipedia summaries, embedded by all-MiniLM-L6-v2" if args.wiki else "given 384-d vectors"
    print(f"\nN = {args.n} records ({kind}) in {args.partitions} partitions, then +{new} ({args.new_share:.0%}) in one more")
    print("| figure | value | target |")
    print("|---|---|---|")
    print(f"| full build wall time | {full_s:.1f} s | |")
    print(f"| incremental update wall time | {update_s:.1f} s | |")
    print(f"| incremental / full | {update_s / full_s:.3f} | <= 0.10 |")
    what = "records embedded by the model" if args.wiki else "records through the embeddings step (vectors given)"
    print(f"| {what}: full / update | {embedded_rows(full)} / {embedded_rows(update)} "
          f"| update = {new} new only |")
    print(f"| old points keeping their 10 nearest 2-D neighbours after the update | {kept:.3f} | >= 0.9 |")
    print(f"| old points keeping their topic after the update | {same_topic:.3f} | |")
    print(f"| refit (layout v{model_meta['version']}) wall time | {refit_s:.1f} s | |")
    print(f"| refit: Procrustes disparity to the previous layout on shared points | "
          f"{model_meta['alignment_disparity']:.4f} | low |")
    print(f"| refit: points keeping their 10 nearest 2-D neighbours | {kept_refit:.3f} | |")
    print(f"| refit: topics / changes | {topic_meta['topics']} / {topic_meta.get('topic_changes', '-')} | |")
    instance.dispose()
    ok = update_s / full_s <= 0.10 and embedded_rows(update) == new and kept >= 0.9
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
