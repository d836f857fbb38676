"""Backfills in batches: P partitions as P runs of one partition, against one run of all P
(``partitions_per_run=P``), through the real ingest assets (real model, embedded Qdrant).

    .venv/bin/python benchmarks/batched_backfill.py                 # 8 partitions of 100 texts, 2 rounds
    .venv/bin/python benchmarks/batched_backfill.py --partitions 16 --size 50 --rounds 3

Both run in this process with Dagster's in-process executor, alternating within each round, each on
a fresh home: what differs is one model load and one run's set-up per partition. A deployment that
starts a process per run (the default multiprocess executor, or a pod per run on Kubernetes) also
pays a Python start and the torch import per run, so the gain there is larger than measured here.
Prints the medians and the ratio batched / one-per-run (median of per-round ratios).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(root: Path, frame, partitions: int, size: int, per_run: int):
    import dagster as dg

    from dagster_embedmap import FileSource, build_embedmap_defs, embedmap_resources

    landing = root / "landing"
    landing.mkdir(parents=True)
    keys = [f"p{i:03d}" for i in range(partitions)]
    for i, key in enumerate(keys):
        frame.slice(i * size, size).write_ndjson(landing / f"{key}.jsonl")
    pdef = dg.DynamicPartitionsDefinition(name="bench_files")
    defs = dg.Definitions.merge(
        build_embedmap_defs("bench", FileSource(str(landing / "*.jsonl")), partitions_def=pdef, home=root / "home",
                            partitions_per_run=per_run),
        dg.Definitions(resources=embedmap_resources(root / "home")),
    )
    return defs, pdef, keys


def run(frame, partitions: int, size: int, batched: bool) -> float:
    import dagster as dg

    from dagster_embedmap import MapKeys

    keys_ = MapKeys.for_map("bench")
    with tempfile.TemporaryDirectory() as tmp:
        defs, pdef, keys = build(Path(tmp), frame, partitions, size, partitions if batched else 1)
        selection = dg.AssetSelection.assets(*keys_.ingest)
        run_config = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(pdef.name, keys)
            started = time.perf_counter()
            if batched:
                tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
                assert dg.materialize(list(defs.assets), selection=selection, instance=instance, tags=tags,
                                      resources=defs.resources, run_config=run_config).success
            else:
                for key in keys:
                    assert dg.materialize(list(defs.assets), selection=selection, instance=instance, partition_key=key,
                                          resources=defs.resources, run_config=run_config).success
            return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--size", type=int, default=100, help="records per partition")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from dagster_embedmap.core.records.datasets import load_wiki_summaries

    frame = load_wiki_summaries(n=args.partitions * args.size, seed=3).select("id", "text", "category")
    run(frame.head(args.size), 1, args.size, batched=True)  # warm: imports, numba, the model files in the page cache
    single, batched, ratios = [], [], []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {b: run(frame, args.partitions, args.size, batched=b) for b in order}
        single.append(times[False])
        batched.append(times[True])
        ratios.append(times[True] / times[False])
        print(f"round {r + 1}: one run per partition {times[False]:.1f} s, one run for all {times[True]:.1f} s")
    print(f"\n{args.partitions} partitions x {args.size} records, ingest (documents, embeddings, collection)")
    print(f"one run per partition   {statistics.median(single):7.1f} s (median of {args.rounds})")
    print(f"one run of {args.partitions:>2} partitions {statistics.median(batched):7.1f} s")
    print(f"batched / one-per-run = {statistics.median(ratios):.3f} (median of per-round ratios)")


if __name__ == "__main__":
    main()
