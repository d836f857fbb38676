"""The vector store: the only module that knows Qdrant.

One interface, :class:`VectorStore`, over the ways of running Qdrant:

- **embedded** (default, ``engine="edge"``): Qdrant's own in-process engine (PyPI ``qdrant-edge-py``),
  one shard per collection in ``<path>/edge/<collection>``, with payload indexes on the fields the
  pipeline filters by. No server to start. One process holds a shard at a time (a file lock);
  others wait for it (``lock_timeout_s``). See :class:`EdgeStore`.
- **embedded, qdrant-client's local mode** (``engine="local"``): ``QdrantClient(path=...)``, kept for
  maps written before the edge engine became the default; much slower (see benchmarks/README.md).
- **server / cluster**: ``QdrantClient(url=..., api_key=...)``. See :class:`ClientStore`.

The engines share every higher-level operation (idempotent partition upserts, reads, search) through
the base class; each implements a handful of primitives.

Points are keyed by a deterministic UUID derived from the map name and the record id, so upserting a
partition twice leaves one point per record. Each payload carries ``record_id`` and ``partition``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np

from .errors import EmbedMapInputError, EmbedMapSpaceError, EmbedMapStoreError
from .paths import file_lock, free_bytes, human_bytes, sparse_bytes

__all__ = ["StoreLocation", "VectorStore", "ClientStore", "EdgeStore", "StoredPoint", "point_id", "open_store"]

_NAMESPACE = uuid.UUID("3f6b1c3e-8d0a-4c2e-9a57-6f2d0e9b4a11")
# payload fields the pipeline filters by: indexed where the engine supports it
_INDEXED = (("partition", "keyword"), ("record_id", "keyword"), ("topic_id", "integer"))
# Free space the embedded engine needs (it memory-maps its files; see EdgeStore): a new shard's files
# (2 write-ahead-log segments, a vector chunk and the payload indexes: 152 MiB for a 384-d collection,
# measured), room to grow an existing one (a new log segment and a new vector chunk), and a margin for
# reading.
NEW_SHARD_BYTES = 160 * 2**20
GROWTH_BYTES = 64 * 2**20
READ_MARGIN_BYTES = 8 * 2**20


def _sparse_copy(src: str, dst: str) -> str:
    """Copy a file keeping its holes (the engine's files are mostly holes), where the system says where
    its data is (SEEK_DATA / SEEK_HOLE); a plain copy elsewhere."""
    import shutil

    if not hasattr(os, "SEEK_DATA"):
        return shutil.copy2(src, dst)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        offset = 0
        try:
            while offset < size:
                start = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
                end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
                fin.seek(start)
                fout.seek(start)
                remaining = end - start
                while remaining > 0:
                    chunk = fin.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    fout.write(chunk)
                    remaining -= len(chunk)
                offset = end
        except OSError:  # ENXIO: no data after offset
            pass
        fout.truncate(size)
    shutil.copystat(src, dst)
    return dst


def point_id(map_name: str, record_id: str) -> str:
    """The Qdrant point id of one record of one map (a UUID5, stable across runs and machines)."""
    return str(uuid.uuid5(_NAMESPACE, f"{map_name}\x1f{record_id}"))


@dataclass(frozen=True)
class StoreLocation:
    """Where the Qdrant collection lives. Give ``url`` for a server, else ``path`` for the embedded engine."""

    path: str | None = ".embedmap/qdrant"
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    """Never shown: left out of ``repr`` and of :meth:`describe`."""
    timeout_s: int = 60
    prefer_grpc: bool = False
    lock_timeout_s: float = 600.0
    retries: int = 3
    """Server only: how many times a request that failed on the network (refused, timed out, 502-504)
    is tried again, waiting 0.5 s, 1 s, 2 s, ... in between, before the step fails naming the URL."""
    engine: Literal["edge", "local"] = "edge"
    """Embedded engine: ``edge`` (Qdrant's in-process engine) or ``local`` (qdrant-client's local mode)."""
    shard_number: int | None = None
    """Server only: shards of a collection this creates (spread over a cluster's nodes); ``None``: the
    server's default."""
    replication_factor: int | None = None
    """Server only: copies of each shard in a cluster; ``None``: the server's default."""
    write_consistency_factor: int | None = None
    """Server only: replicas that must confirm a write; ``None``: the server's default."""

    def collection_options(self) -> dict[str, int]:
        """The sharding and replication settings given, as ``create_collection`` takes them."""
        options = {"shard_number": self.shard_number, "replication_factor": self.replication_factor,
                   "write_consistency_factor": self.write_consistency_factor}
        return {k: int(v) for k, v in options.items() if v is not None}

    @property
    def embedded(self) -> bool:
        return not self.url

    def folder(self) -> Path:
        return Path(self.path or ".embedmap/qdrant").expanduser().resolve()

    def describe(self) -> str:
        """Where the data is, for logs and metadata (never the API key)."""
        if self.url:
            return _public_url(self.url)
        return f"embedded:{self.folder()}" + (" (qdrant-client local mode)" if self.engine == "local" else "")


def _public_url(url: str) -> str:
    """The URL without user info, query or fragment (where credentials could hide)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class StoredPoint:
    """One point read back: its id (a UUID string), payload and, when asked for, vector."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


def _wait_note(location: StoreLocation, what: Path) -> str:
    return (
        f"the embedded Qdrant {what} is still held by another process after {location.lock_timeout_s:.0f} s; "
        "let it finish, or use a Qdrant server (url=...) for concurrent writers"
    )


def _transient(exc: BaseException) -> bool:
    """A failure worth retrying: the server could not be reached, timed out, or answered 502-504."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResponseHandlingException):  # connection refused / reset, timeouts
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in (502, 503, 504)
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpc ships with qdrant-client
        return False
    return isinstance(exc, grpc.RpcError) and exc.code() in (
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class _RetryingClient:
    """A qdrant-client whose calls are retried with exponential backoff on network failures, then fail
    with :class:`EmbedMapStoreError` naming the server (never the API key). Every call the store makes
    is idempotent (upserts by deterministic id, deletes, payload merges), so a retry cannot duplicate."""

    def __init__(self, client: Any, location: StoreLocation):
        self._client = client
        self._location = location

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name == "close":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            delay = 0.5
            for attempt in range(self._location.retries + 1):
                try:
                    return attr(*args, **kwargs)
                except Exception as exc:
                    if not _transient(exc):
                        raise
                    if attempt == self._location.retries:
                        raise EmbedMapStoreError(
                            f"Qdrant server {self._location.describe()} did not answer {name!r} after "
                            f"{attempt + 1} tries ({type(exc).__name__}: {str(exc)[:200]}); is it running and "
                            "reachable? Rerun the step once it is back: every write is idempotent, so the rerun completes "
                            "whatever this run left unfinished"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 8.0)

        return call


def _connect_client(location: StoreLocation):
    from qdrant_client import QdrantClient

    if not location.embedded:
        client = QdrantClient(
            url=location.url,
            api_key=location.api_key,
            timeout=location.timeout_s,
            prefer_grpc=location.prefer_grpc,
        )
        return _RetryingClient(client, location)
    folder = location.folder()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + location.lock_timeout_s
    delay = 0.2
    while True:
        try:
            return QdrantClient(path=str(folder))
        except RuntimeError as exc:  # the folder is held by another process
            if "already accessed" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise EmbedMapStoreError(_wait_note(location, Path(f"folder {folder}"))) from exc
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


@contextmanager
def open_store(location: StoreLocation, collection: str, read_only: bool = False) -> Iterator["VectorStore"]:
    """Open the collection for the duration of a block and always release it (and the embedded lock).

    ``read_only`` promises not to write: the embedded engine then reads even from a full disk (see
    :class:`EdgeStore`)."""
    if location.embedded and location.engine == "edge":
        store = EdgeStore(collection, location, read_only=read_only)
        held = lambda: EmbedMapStoreError(_wait_note(location, Path(f"shard {store.shard_path}")))  # noqa: E731
        with file_lock(store.lock_path, location.lock_timeout_s, held):
            try:
                yield store
            finally:
                store.close()
        return
    if location.embedded and location.engine != "local":
        raise EmbedMapStoreError(f"unknown embedded engine {location.engine!r}; use 'edge' or 'local'")
    client = _connect_client(location)
    try:
        yield ClientStore(client, collection, location)
    finally:
        client.close()


class VectorStore:
    """A map's collection: create it, write partitions, set payloads, read points back, search.

    Subclasses implement the primitives (``exists``, ``dimension``, ``_create``, ``drop``, ``count``,
    ``_upsert``, ``delete_points``, ``_delete_matching``, ``set_payloads``, ``_scroll_page``,
    ``_query``); everything else is shared, so every engine behaves the same.
    """

    def __init__(self, collection: str, location: StoreLocation | None = None):
        self.collection = collection
        self.location = location or StoreLocation()

    # -- primitives -----------------------------------------------------------------------------
    def exists(self) -> bool:
        raise NotImplementedError

    def dimension(self) -> int | None:
        raise NotImplementedError

    def _create(self, dimension: int) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def count(self, partition: str | None = None) -> int:
        raise NotImplementedError

    def _upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def delete_points(self, ids: Sequence[str]) -> None:
        raise NotImplementedError

    def _delete_matching(self, must: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]], batch_size: int = 512) -> None:
        """Merge per-point payload fields (``{point_id: {field: value}}``) into existing points
        (``batch_size`` points per request where the engine batches)."""
        raise NotImplementedError

    def _scroll_page(self, must: Mapping[str, Any] | None, limit: int, offset: Any,
                     with_payload: bool | list[str], with_vectors: bool) -> tuple[list[StoredPoint], Any]:
        raise NotImplementedError

    def _query(self, vectors: np.ndarray, k: int, must: Mapping[str, Any] | None, min_score: float | None,
               with_payload: bool) -> list[list[tuple[str, float, dict[str, Any]]]]:
        raise NotImplementedError

    def _retrieve(self, ids: Sequence[str], with_payload: bool | list[str]) -> list[StoredPoint]:
        """The points with these ids that exist (no vectors)."""
        raise NotImplementedError

    # -- collection -----------------------------------------------------------------------------
    def ensure_collection(self, dimension: int) -> bool:
        """Create the collection for ``dimension``-d cosine vectors; refuse a different dimension.

        Returns True when the collection was created by this call.
        """
        existing = self.dimension()
        if existing is not None:
            if existing != dimension:
                raise EmbedMapStoreError(
                    f"collection {self.collection!r} in {self.location.describe()} holds {existing}-d vectors but "
                    f"these are {dimension}-d (was the model changed?); nothing was written. To migrate, either "
                    f"(1) write to a new collection, e.g. build_embedmap_defs(..., "
                    f"collection_name='{self.collection}_{dimension}d'), and materialize every partition into it "
                    "(the old map stays readable meanwhile), or (2) rebuild in place: drop the collection "
                    "(VectorStore.drop(), or delete it on the server) and materialize every partition again"
                )
            return False
        self._create(int(dimension))
        return True

    # -- partitions -----------------------------------------------------------------------------
    def partition_point_ids(self, partition: str) -> set[str]:
        return {r.id for r in self.scroll(partition=partition, with_payload=False)}

    def upsert_partition(
        self,
        partition: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
        batch_size: int = 1024,
        before_write: Callable[[], None] | None = None,
    ) -> tuple[int, int]:
        """Make the collection hold exactly these points for ``partition``.

        First refuses, writing nothing, a dimension other than the collection's and ids that another
        partition holds; then calls ``before_write`` (if given), upserts every point (new or changed)
        and deletes the partition's points whose ids are no longer present. Rerunning with the same
        input changes nothing, and completes a run that was cut short. Returns (upserted, deleted).
        """
        if len(ids) != len(vectors) or len(ids) != len(payloads):
            raise ValueError("ids, vectors and payloads must have the same length")
        if len(ids):
            self.ensure_collection(int(vectors.shape[1]))
        elif not self.exists():  # an empty partition and no collection yet: nothing to write or delete
            return 0, 0
        before = self.partition_point_ids(partition)
        self._refuse_foreign(partition, [pid for pid in ids if pid not in before])  # the rest are its own
        self._reserve(len(ids), int(vectors.shape[1]) if len(ids) else 0)
        if before_write is not None:
            before_write()
        vectors = np.asarray(vectors, dtype=np.float32)
        for lo in range(0, len(ids), batch_size):
            hi = min(lo + batch_size, len(ids))
            self._upsert(ids[lo:hi], vectors[lo:hi], [{**payloads[i], "partition": partition} for i in range(lo, hi)])
        stale = sorted(before - set(ids))
        self.delete_points(stale)
        return len(ids), len(stale)

    def owners(self, ids: Sequence[str], batch_size: int = 1024) -> dict[str, dict[str, Any]]:
        """``{point id: {"partition", "record_id"}}`` for those of ``ids`` already stored."""
        out: dict[str, dict[str, Any]] = {}
        if not self.exists():
            return out
        for lo in range(0, len(ids), batch_size):
            for point in self._retrieve(list(ids[lo : lo + batch_size]), ["partition", "record_id"]):
                out[point.id] = point.payload
        return out

    def _refuse_foreign(self, partition: str, ids: Sequence[str]) -> None:
        """A record lives in one partition: refuse, before any write, ids another partition holds
        (``ids``: those not already in ``partition``)."""
        foreign = {pid: p for pid, p in self.owners(ids).items() if p.get("partition") != partition}
        if not foreign:
            return
        pairs = sorted((str(p.get("record_id", pid)), str(p.get("partition"))) for pid, p in foreign.items())
        shown = ", ".join(f"{rid!r} (in partition {part!r})" for rid, part in pairs[:5])
        more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
        raise EmbedMapInputError(
            f"partition {partition!r}: {len(pairs)} record id(s) already belong to another partition: {shown}{more}; "
            "ids must be unique across partitions. Remove them from one partition's records (rematerialize that "
            "partition first if they moved), or make ids unique, e.g. prefixed with the partition"
        )

    def _reserve(self, points: int, dimension: int) -> None:
        """Fail before writing ``points`` vectors of ``dimension`` when the store cannot take them (the
        embedded engine checks its device's free space); a server manages its own disk."""

    def delete_partition(self, partition: str) -> int:
        """Remove every point of ``partition``; returns how many there were."""
        if not self.exists():
            return 0
        n = self.count(partition)
        if n:
            self._delete_matching({"partition": partition})
        return n

    # -- reading --------------------------------------------------------------------------------
    def scroll(
        self,
        partition: str | None = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool = False,
        page_size: int = 2048,
    ) -> Iterator[StoredPoint]:
        """Every point (optionally of one partition), page by page."""
        if not self.exists():
            return
        payload_arg = list(with_payload) if not isinstance(with_payload, bool) else with_payload
        must = {"partition": partition} if partition is not None else None
        yield from self._matching(must, payload_arg, with_vectors, page_size)

    def _matching(self, must: Mapping[str, Any] | None, with_payload: bool | list[str] = False,
                  with_vectors: bool = False, page_size: int = 2048) -> Iterator[StoredPoint]:
        """Every point matching ``must`` (all points when None), page by page."""
        offset = None
        while True:
            records, offset = self._scroll_page(must, page_size, offset, with_payload, with_vectors)
            yield from records
            if offset is None:
                break

    def read_vectors(self, partition: str | None = None) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """(point ids, vectors as float32 (n, d), payloads) of every point, sorted by point id."""
        records = sorted(self.scroll(partition=partition, with_vectors=True), key=lambda r: r.id)
        ids = [r.id for r in records]
        dim = self.dimension() or 0
        vectors = np.asarray([r.vector for r in records], dtype=np.float32).reshape(len(records), dim)
        return ids, vectors, [r.payload for r in records]

    def neighbours(
        self, vectors: np.ndarray, k: int, min_score: float | None = None, batch_size: int = 64
    ) -> list[list[tuple[str, float]]]:
        """For each vector, the ids and scores of its ``k`` nearest points (at least ``min_score``),
        asked of Qdrant in batches."""
        out: list[list[tuple[str, float]]] = []
        vectors = np.asarray(vectors, dtype=np.float32)
        for lo in range(0, len(vectors), batch_size):
            for hits in self._query(vectors[lo : lo + batch_size], k, None, min_score, False):
                out.append([(pid, score) for pid, score, _ in hits])
        return out

    def search(
        self, vector: np.ndarray, k: int = 10, must: Mapping[str, Any] | None = None
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Top-``k`` points by cosine similarity, optionally restricted to exact payload matches."""
        return self._query(np.asarray(vector, dtype=np.float32)[None, :], k, must or None, None, True)[0]


class ClientStore(VectorStore):
    """A collection through ``qdrant_client``: a server or cluster, or the client's local mode."""

    def __init__(self, client: Any, collection: str, location: StoreLocation | None = None):
        super().__init__(collection, location)
        self.client = client

    @staticmethod
    def _filter(must: Mapping[str, Any] | None):
        from qdrant_client import models

        if not must:
            return None
        return models.Filter(
            must=[models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in must.items()]
        )

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def dimension(self) -> int | None:
        if not self.exists():
            return None
        return int(self.client.get_collection(self.collection).config.params.vectors.size)

    def _create(self, dimension: int) -> None:
        from qdrant_client import models

        self.client.create_collection(
            self.collection, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            **({} if self.location.embedded else self.location.collection_options()),
        )
        if not self.location.embedded:  # payload indexes are a server feature; local mode ignores them
            for field, schema in _INDEXED:
                self.client.create_payload_index(self.collection, field, field_schema=schema)

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self.collection)

    def count(self, partition: str | None = None) -> int:
        if not self.exists():
            return 0
        must = {"partition": partition} if partition is not None else None
        return int(self.client.count(self.collection, count_filter=self._filter(must), exact=True).count)

    def _upsert(self, ids, vectors, payloads) -> None:
        from qdrant_client import models

        points = [models.PointStruct(id=pid, vector=vec.tolist(), payload=dict(pl))
                  for pid, vec, pl in zip(ids, vectors, payloads)]
        self.client.upsert(self.collection, points=points, wait=True)

    def delete_points(self, ids: Sequence[str], batch_size: int = 1000) -> None:
        from qdrant_client import models

        for lo in range(0, len(ids), batch_size):
            self.client.delete(
                self.collection, points_selector=models.PointIdsList(points=list(ids[lo : lo + batch_size])), wait=True
            )

    def _delete_matching(self, must: Mapping[str, Any]) -> None:
        if self.location.embedded:  # local mode deletes by filter in O(n) per call; ids in batches are faster
            ids = sorted({r.id for r in self._matching(must)})
            self.delete_points(ids)
            return
        from qdrant_client import models

        self.client.delete(self.collection, points_selector=models.FilterSelector(filter=self._filter(must)), wait=True)

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]], batch_size: int = 512) -> None:
        from qdrant_client import models

        items = list(payloads.items())
        for lo in range(0, len(items), batch_size):
            ops = [
                models.SetPayloadOperation(set_payload=models.SetPayload(payload=dict(fields), points=[pid]))
                for pid, fields in items[lo : lo + batch_size]
            ]
            self.client.batch_update_points(self.collection, update_operations=ops, wait=True)

    def _scroll_page(self, must, limit, offset, with_payload, with_vectors):
        records, offset = self.client.scroll(
            self.collection, scroll_filter=self._filter(must), limit=limit, offset=offset,
            with_payload=with_payload, with_vectors=with_vectors,
        )
        return [StoredPoint(str(r.id), dict(r.payload or {}), r.vector if with_vectors else None)
                for r in records], offset

    def _retrieve(self, ids, with_payload):
        records = self.client.retrieve(self.collection, ids=list(ids), with_payload=with_payload, with_vectors=False)
        return [StoredPoint(str(r.id), dict(r.payload or {}), None) for r in records]

    def _query(self, vectors, k, must, min_score, with_payload):
        from qdrant_client import models

        flt = self._filter(must)
        requests = [models.QueryRequest(query=v.tolist(), limit=k, score_threshold=min_score, filter=flt,
                                        with_payload=with_payload) for v in vectors]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        return [[(str(p.id), float(p.score), dict(p.payload or {})) for p in r.points] for r in responses]


class EdgeStore(VectorStore):
    """A collection in Qdrant's in-process engine (``qdrant-edge-py``): one shard per collection.

    The shard lives in ``<path>/edge/<collection>``; ``<path>/edge/<collection>.json`` records the
    vector size (written before the shard, so a half-created shard is detected and rebuilt), and
    ``<collection>.lock`` serialises processes (held by :func:`open_store`). Payload indexes on
    ``partition``, ``record_id`` and ``topic_id`` make deletes and filtered searches cheap. Writes go
    through the shard's write-ahead log and are flushed when the store closes.

    The engine memory-maps its files (the write-ahead log and vector storage in 32 MiB segments, sparse
    until written); loading a shard fills their holes, and a write into a full device kills the process
    (SIGBUS) instead of failing. So before opening, the free space is checked against what the files may
    still take (their holes) plus room to grow, and a shortfall fails naming the folder and the space
    needed. Opened ``read_only`` on a device without that room, the shard is read from a private copy in
    the temporary folder (``$TMPDIR``), so reading a map never needs space where it lives.
    """

    def __init__(self, collection: str, location: StoreLocation | None = None, read_only: bool = False):
        super().__init__(collection, location)
        self.read_only = read_only
        self._copy: Path | None = None
        root = self.location.folder() / "edge"
        if collection in ("", ".", "..") or "/" in collection or "\\" in collection:
            raise EmbedMapStoreError(f"collection name {collection!r} cannot name a folder; use letters, digits, - and _")
        self.shard_path = root / collection
        self.meta_path = root / f"{collection}.json"
        self.lock_path = root / f"{collection}.lock"
        self._shard = None
        legacy = self.location.folder() / "collection" / collection
        if legacy.exists() and not self.meta_path.exists():
            raise EmbedMapStoreError(
                f"{self.location.folder()} holds collection {collection!r} written by qdrant-client's local mode; "
                "open it with engine='local' (QdrantResource(engine='local')), or rebuild the map with the "
                "default edge engine (materialize every partition again)"
            )

    # the shard is opened on first use and closed by open_store
    def _open(self, create_dimension: int | None = None):
        if self._shard is not None:
            return self._shard
        import qdrant_edge as qe

        if self.meta_path.exists() and (self.shard_path / "edge_config.json").exists():
            path = self._readable_path() if self.read_only else self._writable_path()
            try:
                self._shard = qe.EdgeShard.load(str(path))
            except Exception as exc:
                raise EmbedMapStoreError(self._unreadable(exc)) from None
        elif create_dimension is not None:
            import shutil

            self._refuse_read_only()
            self._need(NEW_SHARD_BYTES, "create")
            shutil.rmtree(self.shard_path, ignore_errors=True)  # a shard whose creation was cut short
            tmp = self.meta_path.with_suffix(".json.tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"dimension": create_dimension, "distance": "cosine", "engine": "qdrant-edge"}))
            os.replace(tmp, self.meta_path)
            config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=create_dimension, distance=qe.Distance.Cosine))
            self._shard = qe.EdgeShard.create(str(self.shard_path), config)
            kinds = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer}
            for field, schema in _INDEXED:
                self._shard.update(qe.UpdateOperation.create_field_index(field, kinds[schema]))
        return self._shard

    def _rebuild_hint(self) -> str:
        return (f"the collection is derived from the map's documents and embeddings: to rebuild it, delete "
                f"{self.shard_path} and {self.meta_path}, then materialize the collection step of every partition "
                "again (`embedmap build` does); nothing is embedded again")

    def _unreadable(self, exc: BaseException) -> str:
        reason = " ".join(str(exc).split())[:200]
        return (f"the embedded Qdrant shard {self.shard_path} could not be opened ({type(exc).__name__}: {reason}); it "
                f"holds the points of collection {self.collection!r}; {self._rebuild_hint()}")

    def _need(self, needed: int, action: str) -> None:
        """Fail, naming the folder, when its device has less than ``needed`` bytes free."""
        folder = self.shard_path.parent
        free = free_bytes(folder)
        if free < needed:
            raise EmbedMapSpaceError(
                f"not enough free space for the embedded Qdrant in {folder}: {human_bytes(free)} free, about "
                f"{human_bytes(needed)} needed to {action} collection {self.collection!r} (the engine maps its "
                "write-ahead log and vector files into memory and grows them 32 MiB at a time; writing into a "
                "full device would kill the process). Nothing was written. Free space there, give the map "
                "another home, or use a Qdrant server (url=...)"
            )

    def _reserve(self, points: int, dimension: int) -> None:
        # each point goes to the write-ahead log and to a segment: its vector and about 1 KiB of payload, twice
        incoming = 2 * points * (4 * dimension + 1024)
        self._need(sparse_bytes(self.shard_path) + GROWTH_BYTES + incoming, f"write {points} point(s) to")

    def _writable_path(self) -> Path:
        self._need(sparse_bytes(self.shard_path) + GROWTH_BYTES, "write to")
        return self.shard_path

    def _readable_path(self) -> Path:
        """The shard itself when its device has room for what loading it fills in, else a private copy in
        the temporary folder (made under the shard's lock, removed on close)."""
        import shutil
        import tempfile

        needed = sparse_bytes(self.shard_path / "segments") + READ_MARGIN_BYTES
        if free_bytes(self.shard_path) >= needed:
            return self.shard_path
        size = sum(f.stat().st_size for f in self.shard_path.rglob("*") if f.is_file())
        temp = Path(tempfile.gettempdir())
        if free_bytes(temp) < size + READ_MARGIN_BYTES:
            raise EmbedMapSpaceError(
                f"cannot read collection {self.collection!r}: the device of {self.shard_path} has "
                f"{human_bytes(free_bytes(self.shard_path))} free and opening the shard there needs about "
                f"{human_bytes(needed)}, and the temporary folder {temp} has {human_bytes(free_bytes(temp))} free for "
                f"a copy of about {human_bytes(size)}; free space in either (or set TMPDIR to a folder with room)"
            )
        self._copy = Path(tempfile.mkdtemp(prefix=f"embedmap-read-{self.collection}-", dir=temp))
        target = self._copy / "shard"
        shutil.copytree(self.shard_path, target, copy_function=_sparse_copy)
        return target

    def _refuse_read_only(self) -> None:
        if self.read_only:
            raise EmbedMapStoreError(f"collection {self.collection!r} was opened read-only; it cannot be written")

    def _update(self, operation) -> None:
        self._refuse_read_only()
        self._open().update(operation)

    def close(self) -> None:
        if self._shard is not None:
            try:
                if not self.read_only:
                    self._shard.flush()
            finally:
                self._shard.close()
                self._shard = None
        if self._copy is not None:
            import shutil

            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    @staticmethod
    def _filter(must: Mapping[str, Any] | None):
        import qdrant_edge as qe

        if not must:
            return None
        return qe.Filter(must=[qe.FieldCondition(key=key, match=qe.MatchValue(value)) for key, value in must.items()])

    def exists(self) -> bool:
        return self.meta_path.exists() and (self.shard_path / "edge_config.json").exists()

    def dimension(self) -> int | None:
        if not self.exists():
            return None
        try:
            return int(json.loads(self.meta_path.read_text())["dimension"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedMapStoreError(
                f"{self.meta_path} could not be read ({type(exc).__name__}: {exc}); it records the vector size of "
                f"collection {self.collection!r} (e.g. {{\"dimension\": 384, \"distance\": \"cosine\"}}): write it "
                f"again with the model's dimension, or rebuild: {self._rebuild_hint()}"
            ) from None

    def _create(self, dimension: int) -> None:
        self._open(create_dimension=dimension)

    def drop(self) -> None:
        import shutil

        self._refuse_read_only()
        self.close()
        if self.meta_path.exists():
            self.meta_path.unlink()
        shutil.rmtree(self.shard_path, ignore_errors=True)

    def count(self, partition: str | None = None) -> int:
        import qdrant_edge as qe

        if not self.exists():
            return 0
        must = {"partition": partition} if partition is not None else None
        return int(self._open().count(qe.CountRequest(exact=True, filter=self._filter(must))))

    def _upsert(self, ids, vectors, payloads) -> None:
        import qdrant_edge as qe

        points = [qe.Point(pid, vec.tolist(), dict(pl)) for pid, vec, pl in zip(ids, vectors, payloads)]
        self._update(qe.UpdateOperation.upsert_points(points))

    def delete_points(self, ids: Sequence[str], batch_size: int = 4096) -> None:
        import qdrant_edge as qe

        if not ids or not self.exists():
            return
        for lo in range(0, len(ids), batch_size):
            self._update(qe.UpdateOperation.delete_points(list(ids[lo : lo + batch_size])))

    def _delete_matching(self, must: Mapping[str, Any]) -> None:
        import qdrant_edge as qe

        self._update(qe.UpdateOperation.delete_points_by_filter(self._filter(must)))

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]], batch_size: int = 512) -> None:
        import qdrant_edge as qe

        if not payloads:
            return
        for pid, fields in payloads.items():
            self._update(qe.UpdateOperation.set_payload([pid], dict(fields)))

    def _scroll_page(self, must, limit, offset, with_payload, with_vectors):
        import qdrant_edge as qe

        records, offset = self._open().scroll(qe.ScrollRequest(
            offset=offset, limit=limit, filter=self._filter(must), with_payload=with_payload,
            with_vector=with_vectors,
        ))
        return [StoredPoint(str(r.id), dict(r.payload or {}), list(r.vector) if with_vectors else None)
                for r in records], offset

    def _retrieve(self, ids, with_payload):
        records = self._open().retrieve(list(ids), with_payload, False)
        return [StoredPoint(str(r.id), dict(r.payload or {}), None) for r in records]

    def _query(self, vectors, k, must, min_score, with_payload):
        import qdrant_edge as qe

        flt = self._filter(must)
        requests = [qe.QueryRequest(limit=k, query=qe.Query.Nearest(v.tolist()), filter=flt,
                                    score_threshold=min_score, with_payload=with_payload) for v in vectors]
        if len(requests) == 1:
            responses = [self._open().query(requests[0])]
        else:
            responses = self._open().query_batch(qe.QueryBatchRequest(requests))
        return [[(str(p.id), float(p.score), dict(p.payload or {}) if with_payload else {}) for p in r]
                for r in responses]
