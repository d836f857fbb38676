"""Tests for dagster_embedmap.core.store against both real embedded engines: Qdrant's in-process
engine (qdrant-edge, the default) and qdrant-client's local mode. The same tests run on each."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

from dagster_embedmap.core.errors import EmbedMapStoreError
from dagster_embedmap.core.store import StoreLocation, VectorStore, open_store, point_id

MAP = "test-map"
DIM = 8


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def records(n: int, seed: int = 0, prefix: str = "r"):
    rng = np.random.default_rng(seed)
    rids = [f"{prefix}{i}" for i in range(n)]
    pids = [point_id(MAP, r) for r in rids]
    vectors = unit(rng.normal(size=(n, DIM)))
    payloads = [{"record_id": r, "text": f"text of {r}", "lang": "en" if i % 2 == 0 else "fr"} for i, r in enumerate(rids)]
    return rids, pids, vectors, payloads


ENGINES = ["edge", "local"]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def location(tmp_path, engine) -> StoreLocation:
    return StoreLocation(path=str(tmp_path / "qdrant"), lock_timeout_s=5, engine=engine)


@pytest.fixture
def store(location):
    with open_store(location, "docs") as s:
        yield s


# -- point ids ------------------------------------------------------------------------------------


def test_point_id_is_deterministic_uuid_and_differs_between_maps_and_records():
    a = point_id("map-a", "42")
    assert a == point_id("map-a", "42")
    assert str(uuid.UUID(a)) == a
    assert uuid.UUID(a).version == 5
    assert a != point_id("map-b", "42")
    assert a != point_id("map-a", "43")
    # the separator keeps (map, record) pairs apart
    assert point_id("ab", "c") != point_id("a", "bc")


def test_location_describe_never_shows_api_key(tmp_path):
    assert StoreLocation(path=str(tmp_path)).describe() == f"embedded:{tmp_path.resolve()}"
    remote = StoreLocation(url="https://qdrant.example:6333", api_key="sekret")
    assert not remote.embedded
    assert "sekret" not in remote.describe()


# -- collection -----------------------------------------------------------------------------------


def test_empty_store_has_no_collection(store):
    assert not store.exists()
    assert store.dimension() is None
    assert store.count() == 0
    assert list(store.scroll()) == []


def test_ensure_collection_creates_once(store):
    assert store.ensure_collection(DIM) is True
    assert store.exists()
    assert store.dimension() == DIM
    assert store.ensure_collection(DIM) is False


def test_wrong_dimension_is_refused_and_points_are_kept(store):
    _, pids, vectors, payloads = records(5)
    store.upsert_partition("p1", pids, vectors, payloads)
    ids_before, vecs_before, pay_before = store.read_vectors()
    with pytest.raises(EmbedMapStoreError) as err:
        store.ensure_collection(DIM + 1)
    msg = str(err.value)
    assert "'docs'" in msg and f"{DIM}-d" in msg and f"{DIM + 1}-d" in msg
    assert store.dimension() == DIM
    assert store.count() == 5
    ids_after, vecs_after, pay_after = store.read_vectors()
    assert ids_after == ids_before
    np.testing.assert_array_equal(vecs_after, vecs_before)
    assert pay_after == pay_before


def test_upsert_with_wrong_dimension_is_refused_and_points_are_kept(store):
    _, pids, vectors, payloads = records(4)
    store.upsert_partition("p1", pids, vectors, payloads)
    vecs_before = store.read_vectors()[1]
    rng = np.random.default_rng(1)
    with pytest.raises(EmbedMapStoreError):
        store.upsert_partition("p1", pids[:2], unit(rng.normal(size=(2, DIM * 2))), payloads[:2])
    assert store.count("p1") == 4
    np.testing.assert_array_equal(store.read_vectors()[1], vecs_before)


def test_drop_removes_the_collection(store):
    _, pids, vectors, payloads = records(3)
    store.upsert_partition("p1", pids, vectors, payloads)
    store.drop()
    assert not store.exists()
    assert store.count() == 0
    store.drop()  # dropping twice is fine
    assert not store.exists()


def test_mismatched_lengths_are_rejected(store):
    _, pids, vectors, payloads = records(3)
    with pytest.raises(ValueError, match="same length"):
        store.upsert_partition("p1", pids[:2], vectors, payloads)
    assert not store.exists()


# -- partitions -----------------------------------------------------------------------------------


def test_upsert_is_idempotent(store):
    _, pids, vectors, payloads = records(20)
    assert store.upsert_partition("p1", pids, vectors, payloads) == (20, 0)
    assert store.count() == 20
    assert store.upsert_partition("p1", pids, vectors, payloads) == (20, 0)
    assert store.count() == 20
    assert store.count("p1") == 20
    assert store.partition_point_ids("p1") == set(pids)


def test_small_batches_write_every_point(store):
    _, pids, vectors, payloads = records(23)
    assert store.upsert_partition("p1", pids, vectors, payloads, batch_size=5) == (23, 0)
    assert store.count("p1") == 23


def test_reupsert_with_fewer_ids_deletes_stale_points(store):
    _, pids, vectors, payloads = records(10)
    store.upsert_partition("p1", pids, vectors, payloads)
    keep = [0, 2, 3, 9]
    upserted, deleted = store.upsert_partition(
        "p1", [pids[i] for i in keep], vectors[keep], [payloads[i] for i in keep]
    )
    assert (upserted, deleted) == (4, 6)
    assert store.count("p1") == 4
    assert store.partition_point_ids("p1") == {pids[i] for i in keep}


def test_upsert_replaces_changed_payload_and_vector(store):
    _, pids, vectors, payloads = records(3)
    store.upsert_partition("p1", pids, vectors, payloads)
    new_vectors = vectors.copy()
    new_vectors[1] = unit(np.arange(1, DIM + 1)[None, :])[0]
    new_payloads = [dict(p) for p in payloads]
    new_payloads[1] = {"record_id": "r1", "text": "changed"}
    store.upsert_partition("p1", pids, new_vectors, new_payloads)
    ids, vecs, pays = store.read_vectors()
    at = ids.index(pids[1])
    np.testing.assert_allclose(vecs[at], new_vectors[1], atol=1e-6)
    assert pays[at] == {"record_id": "r1", "text": "changed", "partition": "p1"}


def test_partitions_are_independent(store):
    _, pa, va, pla = records(6, seed=1, prefix="a")
    _, pb, vb, plb = records(4, seed=2, prefix="b")
    store.upsert_partition("A", pa, va, pla)
    store.upsert_partition("B", pb, vb, plb)
    assert store.count("A") == 6 and store.count("B") == 4 and store.count() == 10
    # rewriting A with fewer points leaves B alone
    assert store.upsert_partition("A", pa[:2], va[:2], pla[:2]) == (2, 4)
    assert store.count("A") == 2 and store.count("B") == 4
    assert store.partition_point_ids("B") == set(pb)
    # an empty rewrite of A empties A only
    assert store.upsert_partition("A", [], np.empty((0, DIM), np.float32), []) == (0, 2)
    assert store.count("A") == 0 and store.count("B") == 4


def test_delete_partition(store):
    _, pa, va, pla = records(5, seed=1, prefix="a")
    _, pb, vb, plb = records(3, seed=2, prefix="b")
    store.upsert_partition("A", pa, va, pla)
    store.upsert_partition("B", pb, vb, plb)
    assert store.delete_partition("A") == 5
    assert store.count("A") == 0
    assert store.count("B") == 3
    assert store.delete_partition("A") == 0
    assert store.delete_partition("never-written") == 0


def test_every_point_carries_its_partition(store):
    _, pids, vectors, payloads = records(4)
    store.upsert_partition("2024-05-01", pids, vectors, payloads)
    _, _, pays = store.read_vectors("2024-05-01")
    assert [p["partition"] for p in pays] == ["2024-05-01"] * 4
    assert {p["record_id"] for p in pays} == {"r0", "r1", "r2", "r3"}


# -- payloads -------------------------------------------------------------------------------------


def test_set_payloads_merges_fields(store):
    rids, pids, vectors, payloads = records(5)
    store.upsert_partition("p1", pids, vectors, payloads)
    update = {pids[i]: {"x": float(i), "y": -float(i), "topic_id": i % 2, "topic_label": f"t{i % 2}"} for i in range(3)}
    store.set_payloads(update, batch_size=2)
    ids, _, pays = store.read_vectors()
    by_id = dict(zip(ids, pays))
    for i in range(5):
        pay = by_id[pids[i]]
        # original fields survive
        assert pay["record_id"] == rids[i]
        assert pay["text"] == payloads[i]["text"]
        assert pay["lang"] == payloads[i]["lang"]
        assert pay["partition"] == "p1"
        if i < 3:
            assert pay["x"] == float(i) and pay["y"] == -float(i)
            assert pay["topic_id"] == i % 2 and pay["topic_label"] == f"t{i % 2}"
        else:
            assert "x" not in pay and "topic_id" not in pay
    # a second update overwrites only the fields it names
    store.set_payloads({pids[0]: {"topic_label": "renamed"}})
    pay0 = dict(zip(*store.read_vectors()[::2]))[pids[0]]
    assert pay0["topic_label"] == "renamed" and pay0["x"] == 0.0 and pay0["lang"] == "en"


# -- reading --------------------------------------------------------------------------------------


def test_read_vectors_returns_what_was_written(store):
    _, pids, vectors, payloads = records(30)
    store.upsert_partition("p1", pids, vectors, payloads)
    ids, vecs, pays = store.read_vectors()
    assert ids == sorted(pids)
    assert vecs.dtype == np.float32 and vecs.shape == (30, DIM)
    order = [pids.index(i) for i in ids]
    np.testing.assert_allclose(vecs, vectors[order], atol=1e-6)
    assert [p["record_id"] for p in pays] == [payloads[k]["record_id"] for k in order]


def test_read_vectors_of_one_partition_and_of_an_empty_store(store):
    assert store.read_vectors()[1].shape[0] == 0
    _, pa, va, pla = records(3, seed=1, prefix="a")
    _, pb, vb, plb = records(2, seed=2, prefix="b")
    store.upsert_partition("A", pa, va, pla)
    store.upsert_partition("B", pb, vb, plb)
    ids, vecs, _ = store.read_vectors("B")
    assert set(ids) == set(pb)
    assert vecs.shape == (2, DIM)


def test_vectors_of_gives_the_stored_vectors_of_the_ids_that_exist(store):
    _, pids, vectors, payloads = records(30)
    store.upsert_partition("p1", pids, vectors, payloads)
    missing = "00000000-0000-0000-0000-000000000000"
    got = store.vectors_of([pids[3], missing, pids[17]] + pids[20:], batch_size=4)
    assert set(got) == {pids[3], pids[17], *pids[20:]}
    for pid, vec in got.items():
        assert vec.dtype == np.float32
        np.testing.assert_allclose(vec, vectors[pids.index(pid)], atol=1e-6)
    assert store.vectors_of([]) == {}


def test_scroll_pages_through_everything(store):
    _, pids, vectors, payloads = records(25)
    store.upsert_partition("p1", pids, vectors, payloads)
    seen = [str(r.id) for r in store.scroll(page_size=4, with_payload=["record_id"])]
    assert sorted(seen) == sorted(pids)
    first = next(iter(store.scroll(page_size=4, with_payload=["record_id"])))
    assert set(first.payload) == {"record_id"}


def test_search_finds_nearest_first_and_honours_filter(store):
    rids, pids, vectors, payloads = records(40, seed=3)
    store.upsert_partition("p1", pids, vectors, payloads)
    rng = np.random.default_rng(9)
    target = 7  # "fr" (odd index)
    query = vectors[target] + 0.05 * rng.normal(size=DIM).astype(np.float32)
    hits = store.search(query, k=5)
    assert len(hits) == 5
    assert hits[0][0] == pids[target]
    assert hits[0][2]["record_id"] == rids[target]
    scores = [h[1] for h in hits]
    assert scores == sorted(scores, reverse=True)
    expected = np.argsort(-(vectors @ unit(query[None, :])[0]))[:5]
    assert [h[0] for h in hits] == [pids[i] for i in expected]

    filtered = store.search(query, k=5, must={"lang": "en"})
    assert len(filtered) == 5
    assert all(h[2]["lang"] == "en" for h in filtered)
    assert pids[target] not in {h[0] for h in filtered}
    en = [i for i in range(40) if i % 2 == 0]
    best_en = max(en, key=lambda i: float(vectors[i] @ unit(query[None, :])[0]))
    assert filtered[0][0] == pids[best_en]


# -- the folder lock ------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from dagster_embedmap.core.store import StoreLocation, open_store
    with open_store(StoreLocation(path=sys.argv[1], engine=sys.argv[2]), "docs") as store:
        store.ensure_collection(4)
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


def _hold(folder, engine):
    """Another process that opens the embedded store and keeps it until a line arrives on its stdin."""
    folder.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), engine], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def test_second_open_waits_then_fails_while_folder_is_held(tmp_path, engine):
    folder = tmp_path / "qdrant"
    holder = _hold(folder, engine)
    try:
        start = time.monotonic()
        with pytest.raises(EmbedMapStoreError) as err:
            with open_store(StoreLocation(path=str(folder), lock_timeout_s=0.6, engine=engine), "docs"):
                pass
        waited = time.monotonic() - start
        assert waited >= 0.5  # it retried before giving up
        assert str(folder.resolve()) in str(err.value)
        assert "held" in str(err.value)
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    assert holder.returncode == 0
    # once released, the folder opens
    with open_store(StoreLocation(path=str(folder), lock_timeout_s=5, engine=engine), "docs") as s:
        assert s.dimension() == 4 and s.count() == 0  # what the holder wrote is intact


def test_open_waits_for_a_holder_that_lets_go(tmp_path, engine):
    folder = tmp_path / "qdrant"
    holder = _hold(folder, engine)
    try:
        import threading

        release = threading.Timer(0.5, lambda: (holder.stdin.write("\n"), holder.stdin.flush()))
        release.start()
        start = time.monotonic()
        with open_store(StoreLocation(path=str(folder), lock_timeout_s=30, engine=engine), "docs") as s:
            assert s.count() == 0
        assert time.monotonic() - start >= 0.4
        release.join()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def test_open_store_releases_the_lock_even_when_the_block_raises(location):
    with pytest.raises(KeyError):
        with open_store(location, "docs") as s:
            s.ensure_collection(DIM)
            raise KeyError("boom")
    with open_store(StoreLocation(path=location.path, lock_timeout_s=0.3, engine=location.engine), "docs") as s:
        assert s.dimension() == DIM


def test_data_persists_across_opens(location):
    _, pids, vectors, payloads = records(6)
    with open_store(location, "docs") as s:
        s.upsert_partition("p1", pids, vectors, payloads)
    with open_store(location, "docs") as s:
        assert s.count("p1") == 6
        assert isinstance(s, VectorStore)
        np.testing.assert_allclose(s.read_vectors()[1], vectors[np.argsort(pids)], atol=1e-6)
    with open_store(location, "other") as s:
        assert not s.exists()


def test_an_empty_first_partition_does_not_fix_the_collection_dimension(store):
    assert store.upsert_partition("empty", [], np.empty((0, 8), np.float32), []) == (0, 0)
    assert not store.exists()
    _, ids, vectors, payloads = records(3)
    store.upsert_partition("full", ids, vectors, payloads)
    assert store.dimension() == vectors.shape[1] and store.count() == 3
    # an emptied partition removes its points and leaves the others
    _, ids2, vectors2, payloads2 = records(1, prefix="z")
    store.upsert_partition("full2", ids2, vectors2, payloads2)
    assert store.upsert_partition("full2", [], np.empty((0, vectors.shape[1]), np.float32), []) == (0, 1)
    assert store.count("full2") == 0 and store.count("full") == 3


def test_a_local_mode_collection_is_not_silently_hidden_by_the_edge_engine(tmp_path):
    folder = tmp_path / "qdrant"
    _, pids, vectors, payloads = records(3)
    with open_store(StoreLocation(path=str(folder), engine="local"), "docs") as s:
        s.upsert_partition("p1", pids, vectors, payloads)
    with pytest.raises(EmbedMapStoreError, match="engine='local'"):
        with open_store(StoreLocation(path=str(folder)), "docs"):
            pass
    with open_store(StoreLocation(path=str(folder), engine="local"), "docs") as s:
        assert s.count() == 3  # nothing was touched


def test_edge_delete_by_partition_uses_the_payload_index_and_leaves_the_rest(tmp_path):
    with open_store(StoreLocation(path=str(tmp_path / "q")), "docs") as s:
        for p in range(5):
            _, pids, vectors, payloads = records(200, seed=p, prefix=f"p{p}-")
            s.upsert_partition(f"p{p}", pids, vectors, payloads)
        assert s.delete_partition("p2") == 200
        assert s.count() == 800 and s.count("p2") == 0 and s.count("p3") == 200
        assert s.delete_partition("p2") == 0


def test_edge_store_refuses_a_collection_name_that_is_not_a_folder_name(tmp_path):
    with pytest.raises(EmbedMapStoreError, match="cannot name a folder"):
        with open_store(StoreLocation(path=str(tmp_path / "q")), "../escape"):
            pass


def test_an_unreachable_server_is_retried_with_backoff_then_named_without_its_key():
    location = StoreLocation(url="http://127.0.0.1:9", api_key="sekret-key", retries=2, timeout_s=2)
    started = time.monotonic()
    with pytest.raises(EmbedMapStoreError) as err:
        with open_store(location, "docs") as s:
            s.count()
    waited = time.monotonic() - started
    assert 1.4 <= waited < 10  # backoff 0.5 s + 1 s, then it gives up
    message = str(err.value)
    assert "http://127.0.0.1:9" in message and "3 tries" in message and "'collection_exists'" in message
    assert "sekret-key" not in message and "sekret-key" not in repr(err.value.__cause__)


# -- keep_open: one load of an embedded shard for the steps of an in-process build ----------------


def _count_loads(monkeypatch) -> list[str]:
    import qdrant_edge as qe

    loads: list[str] = []
    real = qe.EdgeShard.load

    def load(path, *args, **kwargs):
        loads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(qe.EdgeShard, "load", staticmethod(load))
    return loads


def test_keep_open_loads_a_shard_once_for_many_blocks_and_releases_it_after(tmp_path, monkeypatch):
    from dagster_embedmap.core.store import keep_open

    location = StoreLocation(path=str(tmp_path / "qdrant"), lock_timeout_s=1)
    _, pids, vectors, payloads = records(6)
    with open_store(location, "docs") as s:
        s.upsert_partition("p0", pids[:3], vectors[:3], payloads[:3])
    loads = _count_loads(monkeypatch)
    with keep_open():
        with open_store(location, "docs") as first:
            first.upsert_partition("p1", pids[3:], vectors[3:], payloads[3:])
        with open_store(location, "docs", read_only=True) as second:
            assert second is first and second.count() == 6
        # another process waits for the lock while the block holds the shard
        code = textwrap.dedent(f"""
            from dagster_embedmap.core.store import StoreLocation, open_store
            try:
                with open_store(StoreLocation(path={location.path!r}, lock_timeout_s=0.5), "docs") as s:
                    s.count()
                print("opened")
            except Exception as exc:
                print(type(exc).__name__)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "EmbedMapStoreError", out.stderr[-1500:]
    assert len(loads) == 1
    with open_store(location, "docs") as again:  # released, and everything written is there
        assert again.count() == 6 and again.count("p1") == 3


def test_keep_open_closes_a_shard_whose_block_failed_and_loads_it_again(tmp_path, monkeypatch):
    from dagster_embedmap.core.store import keep_open

    location = StoreLocation(path=str(tmp_path / "qdrant"), lock_timeout_s=1)
    _, pids, vectors, payloads = records(4)
    with open_store(location, "docs") as s:
        s.upsert_partition("p0", pids, vectors, payloads)
    loads = _count_loads(monkeypatch)
    with keep_open():
        with pytest.raises(RuntimeError):
            with open_store(location, "docs") as failing:
                failing.count()
                raise RuntimeError("a step failed")
        with open_store(location, "docs") as after:
            assert after is not failing and after.count() == 4
    assert len(loads) == 2


def test_a_block_kept_open_is_on_disk_when_its_process_dies_before_the_end(tmp_path):
    location = StoreLocation(path=str(tmp_path / "qdrant"), lock_timeout_s=5)
    code = textwrap.dedent(f"""
        import os, numpy as np
        from dagster_embedmap.core.store import StoreLocation, keep_open, open_store, point_id
        location = StoreLocation(path={location.path!r}, lock_timeout_s=5)
        vectors = np.eye(3, {DIM}, dtype=np.float32)
        with keep_open():
            with open_store(location, "docs") as s:
                s.upsert_partition("p0", [point_id("m", r) for r in "abc"], vectors, [{{"record_id": r}} for r in "abc"])
            os._exit(0)  # killed between two steps: the shard is never closed
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    with open_store(location, "docs") as s:
        assert s.count() == 3 and s.count("p0") == 3


def test_an_open_edge_store_reads_payloads_once_and_keeps_them_current_through_its_writes(tmp_path, monkeypatch):
    location = StoreLocation(path=str(tmp_path / "qdrant"), lock_timeout_s=5)
    _, pids, vectors, payloads = records(6)
    with open_store(location, "docs") as s:
        s.upsert_partition("p0", pids[:4], vectors[:4], payloads[:4])
        first = {p.id: p.payload for p in s.scroll(with_payload=True)}
        pages: list[int] = []
        real = type(s)._scroll_page
        monkeypatch.setattr(type(s), "_scroll_page", lambda self, *a: pages.append(1) or real(self, *a))
        s.set_payloads({pids[0]: {"topic_id": 7}, pids[1]: {"text": "changed"}})
        again = {p.id: p.payload for p in s.scroll(with_payload=True)}
        assert not pages  # served from what the first read kept, with the writes applied
        assert again[pids[0]] == {**first[pids[0]], "topic_id": 7} and again[pids[1]]["text"] == "changed"
        again[pids[2]]["text"] = "a caller's own copy"
        assert {p.id: p.payload for p in s.scroll(with_payload=True)}[pids[2]] == first[pids[2]]
        s.upsert_partition("p1", pids[4:], vectors[4:], payloads[4:])  # any other write: read again
        after = {p.id: p.payload for p in s.scroll(with_payload=True)}
        assert pages and len(after) == 6 and after[pids[0]]["topic_id"] == 7
        assert {p.id for p in s.scroll(partition="p1", with_payload=True)} == set(pids[4:])
    with open_store(location, "docs") as fresh:  # and on disk, as the store wrote it
        assert {p.id: p.payload for p in fresh.scroll(with_payload=True)} == after
