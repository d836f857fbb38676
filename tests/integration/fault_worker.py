"""A worker process for tests/integration/test_faults.py: builds a map over a landing folder, or some partitions of
it, with the real model, the embedded Qdrant edge engine and a Dagster instance on disk, and optionally
kills itself with SIGKILL at one point in the middle of a step.

    python tests/integration/fault_worker.py LANDING HOME INSTANCE_DIR [PARTITION ...]

``EMBEDMAP_FAULT`` names where to die (nothing is mocked: the real step runs until that point):

- ``embedding``: after the first chunk of texts went through the model, before any vector is saved;
- ``upsert``: after two batches of the partition's points were written to Qdrant, the rest not yet;
- ``projection``: after half of the partition's new coordinates were written to Qdrant;
- ``topics``: after half of the points' new topic fields were written to Qdrant;
- ``map``: after the new map.html was fully written beside the old one, before it replaces it.

On success it prints one JSON line: the run's check results.
"""

import json
import os
import signal
import sys
from contextlib import contextmanager


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_fault(point: str) -> None:
    from dagster_embedmap.core import embedding as embed, paths, store
    from dagster_embedmap.core.render import shared as render_files

    if point == "embedding":
        original = embed.Encoder.encode

        def encode(self, texts, progress=None, chunk_size=None):
            def kill_after_first_chunk(done, total, elapsed):
                if done < total:
                    die()

            return original(self, texts, progress=kill_after_first_chunk, chunk_size=4)

        embed.Encoder.encode = encode
    elif point == "upsert":
        original_partition, original_upsert = store.VectorStore.upsert_partition, store.EdgeStore._upsert
        calls = []

        def upsert_partition(self, partition, ids, vectors, payloads, batch_size=1024, before_write=None):
            return original_partition(self, partition, ids, vectors, payloads, batch_size=3, before_write=before_write)

        def _upsert(self, ids, vectors, payloads):
            original_upsert(self, ids, vectors, payloads)
            calls.append(len(ids))
            if len(calls) == 2:
                die()

        store.VectorStore.upsert_partition = upsert_partition
        store.EdgeStore._upsert = _upsert
    elif point in ("projection", "topics"):
        field = "layout_version" if point == "projection" else "topic_id"
        original = store.EdgeStore.set_payloads

        def set_payloads(self, payloads, batch_size=512):
            if payloads and field in next(iter(payloads.values())):
                half = dict(list(payloads.items())[: max(1, len(payloads) // 2)])
                original(self, half, batch_size)
                die()
            return original(self, payloads, batch_size)

        store.EdgeStore.set_payloads = set_payloads
    elif point == "map":
        original = paths.atomic_path

        @contextmanager
        def atomic_path(target):
            with original(target) as tmp:
                yield tmp
                if str(target).endswith("map.html"):
                    die()  # the new file is whole, the old one not yet replaced

        render_files.atomic_path = atomic_path  # what the HTML map and the PNG are written through
    else:
        raise SystemExit(f"unknown fault point {point!r}")


def main(argv: list[str]) -> int:
    landing, home, instance_dir, *partitions = argv
    point = os.environ.get("EMBEDMAP_FAULT")
    if point:
        install_fault(point)
    import dagster as dg

    from dagster_embedmap import FileSource, MapKeys, build_embedmap_defs, embedmap_resources, materialize_map

    pdef = dg.DynamicPartitionsDefinition(name="faults_files")
    defs = dg.Definitions.merge(
        build_embedmap_defs("faults", FileSource(os.path.join(landing, "*.jsonl")), partitions_def=pdef, home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("faults")
    instance = dg.DagsterInstance.from_config(instance_dir)
    try:
        names = sorted(f[: -len(".jsonl")] for f in os.listdir(landing) if f.endswith(".jsonl"))
        instance.add_dynamic_partitions(pdef.name, [n for n in names if not instance.has_dynamic_partition(pdef.name, n)])
        if partitions == ["ingest-only"]:  # several workers side by side: each ingests its partition only
            partitions = os.environ["EMBEDMAP_PARTITIONS"].split(",")
            for partition in partitions:
                result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys.ingest),
                                        partition_key=partition, instance=instance, resources=defs.resources)
                assert result.success
            print(json.dumps({"ingested": partitions}))
            return 0
        if partitions == ["summary-only"]:  # topics and the map from whatever the collection holds now
            result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys.summary),
                                    instance=instance, resources=defs.resources)
            checks = {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
                      for e in result.get_asset_check_evaluations()}
            print(json.dumps({"checks": checks}))
            return 0
        result = materialize_map(defs, keys, instance=instance, partition_keys=partitions or None, log_level="WARNING")
        print(json.dumps({"checks": result.check_results()}))
    finally:
        instance.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
