"""Faults: a worker process is killed (SIGKILL, for real) in the middle of a step; a rerun heals.

A base map of two partitions (``a``, ``b``) is built once by a worker. Each fault test copies it, turns
``b`` into a new version (3 texts edited, 1 record removed, 2 added), runs a worker that kills itself
at one point of the update, checks what the kill left, reruns the worker, and checks that the collection
holds exactly one point per record with the latest payload and that the map matches the data.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dagster_embedmap.core.records.documents import content_hash
from dagster_embedmap.core.paths import MapLayout
from dagster_embedmap.core.store import StoreLocation, open_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKER = Path(__file__).with_name("fault_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(base: Path, *partitions: str, fault: str | None = None, env: dict | None = None, wait: bool = True):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("EMBEDMAP_FAULT", None)
    if fault:
        environment["EMBEDMAP_FAULT"] = fault
    args = [sys.executable, str(WORKER), str(base / "landing"), str(base / "home"), str(base / "dagster"), *partitions]
    proc = subprocess.Popen(args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _points(base: Path) -> dict[str, dict]:
    with open_store(StoreLocation(path=str(base / "home" / "qdrant")), "faults") as store:
        return {r.id: r.payload for r in store.scroll()}


def _expected(base: Path) -> dict[str, tuple[str, str]]:
    """record id -> (partition, content hash) of what the landing folder holds now."""
    out = {}
    for path in sorted((base / "landing").glob("*.jsonl")):
        for row in pl.read_ndjson(path).iter_rows(named=True):
            out[row["id"]] = (path.stem, content_hash(row["text"]))
    return out


def _assert_healed(base: Path, out: str) -> None:
    """One point per record, each with its latest text, placed and in a topic; the map's checks pass."""
    checks = json.loads(out.strip().splitlines()[-1])["checks"]
    assert checks and all(checks.values()), checks
    points = _points(base)
    expected = _expected(base)
    by_record = {p["record_id"]: p for p in points.values()}
    assert len(points) == len(by_record) == len(expected)  # one point per record, no stale or doubled point
    assert {rid: (p["partition"], p["content_hash"]) for rid, p in by_record.items()} == expected
    assert all(p.get("x") is not None and p.get("topic_id") is not None for p in points.values())
    layout = MapLayout(base / "home", "faults")
    assert not layout.pending_partitions()
    topics = pl.read_parquet(layout.topics)
    fine = topics.filter(pl.col("level") == topics["level"].max())
    assert fine["size"].sum() == len(expected)  # the topic table counts exactly the points on the map
    html = layout.html.read_text(encoding="utf-8")
    assert f"faults: {len(expected)} records" in html


@pytest.fixture(scope="module")
def base(tmp_path_factory, wiki_small):
    root = tmp_path_factory.mktemp("faults_base")
    (root / "landing").mkdir()
    (root / "dagster").mkdir()
    records = wiki_small.select("id", "text", "category").head(40)
    records.head(20).write_ndjson(root / "landing" / "a.jsonl")
    records.tail(20).write_ndjson(root / "landing" / "b.jsonl")
    code, out, err = _run(root)
    assert code == 0, err[-3000:]
    _assert_healed(root, out)
    return root


def _copy(base: Path, tmp_path: Path, wiki_small) -> Path:
    work = tmp_path / "work"
    shutil.copytree(base, work)
    b = pl.read_ndjson(work / "landing" / "b.jsonl")
    texts = b["text"].to_list()
    for i in (0, 5, 9):
        texts[i] = f"Revised: {texts[i]}"
    extra = wiki_small.select("id", "text", "category").slice(100, 2)
    b = pl.concat([b.with_columns(pl.Series("text", texts)).filter(pl.col("id") != b["id"][3]), extra])
    b.write_ndjson(work / "landing" / "b.jsonl")
    return work


FAULTS = ["embedding", "upsert", "projection", "topics", "map"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_worker_killed_mid_step_leaves_nothing_a_rerun_cannot_heal(base, tmp_path, wiki_small, fault):
    work = _copy(base, tmp_path, wiki_small)
    before = _points(work)
    old_map = MapLayout(work / "home", "faults").html.read_bytes()

    code, out, err = _run(work, "b", fault=fault)
    assert code == -signal.SIGKILL, (code, err[-3000:])

    after = _points(work)  # the edge shard reopens after the kill: what was written before it is there
    layout = MapLayout(work / "home", "faults")
    print(f"\n{fault}: points before {len(before)}, after the kill {len(after)}, "
          f"pending {sorted(layout.pending_partitions())}")
    if fault == "embedding":  # died before anything reached Qdrant
        assert after == before and not layout.pending_partitions()
    if fault == "upsert":  # half the new version written: the partition is marked, the global steps skip it
        assert layout.pending_partitions() == {"b"}
        changed = [p for pid, p in after.items() if before.get(pid) != p]
        assert 0 < len(changed) < 21, len(changed)
        # topics and the map built now leave the half-written partition out, and say so
        code, out, err = _run(work, "summary-only")
        assert code == 0, err[-3000:]
        checks = json.loads(out.strip().splitlines()[-1])["checks"]
        assert checks == {"faults/map:collection_matches_documents": False, "faults/map:every_point_mapped": True,
                          "faults/map:every_point_current": True}
        assert "faults: 20 records" in layout.html.read_text(encoding="utf-8")  # partition a only
    if fault == "projection":
        assert not layout.pending_partitions() and len(after) == 41
    if fault in ("projection", "topics", "map"):  # the points are all there with their new texts
        assert {p["record_id"]: p["content_hash"] for p in after.values()} == {
            rid: h for rid, (_, h) in _expected(work).items()}
    if fault == "map":  # the new map was whole beside the old one; the old one stays until replaced
        assert layout.html.read_bytes() == old_map

    code, out, err = _run(work, "b")
    assert code == 0, err[-3000:]
    _assert_healed(work, out)
    print(f"{fault}: after the rerun {len(_points(work))} points for {len(_expected(work))} records")


def test_partitions_ingested_in_parallel_into_one_collection_lose_nothing(base, tmp_path, wiki_small):
    work = tmp_path / "work"
    shutil.copytree(base, work)
    new = wiki_small.select("id", "text", "category").slice(40, 60)
    for i, name in enumerate(("c", "d", "e")):
        new.slice(20 * i, 20).write_ndjson(work / "landing" / f"{name}.jsonl")
    # the partitions are registered first, as the landing sensor would: workers adding the same keys at
    # the same moment race in Dagster's storage (a UNIQUE constraint), which is not what is tested here
    instance = dg.DagsterInstance.from_config(str(work / "dagster"))
    try:
        instance.add_dynamic_partitions("faults_files", ["c", "d", "e"])
    finally:
        instance.dispose()
    procs = [_run(work, "ingest-only", env={"EMBEDMAP_PARTITIONS": p}, wait=False) for p in ("c", "d", "e")]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    points = _points(work)
    expected = _expected(work)
    assert len(points) == 100 and {p["record_id"]: (p["partition"], p["content_hash"]) for p in points.values()} == expected
    code, out, err = _run(work)  # the global steps over everything: placement, topics, map
    assert code == 0, err[-3000:]
    _assert_healed(work, out)
