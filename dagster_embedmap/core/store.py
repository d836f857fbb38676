"""The vector store: the only module that knows Qdrant.

One interface, :class:`VectorStore`, over two ways of running Qdrant:

- **embedded** (default): ``QdrantClient(path=...)``, an on-disk engine inside the Python process;
  no server to start. One process holds the folder at a time; others wait for it (``lock_timeout_s``).
- **server / cluster**: ``QdrantClient(url=..., api_key=...)``.

Points are keyed by a deterministic UUID derived from the map name and the record id, so upserting a
partition twice leaves one point per record. Each payload carries ``record_id`` and ``partition``.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import EmbedMapStoreError

__all__ = ["StoreLocation", "VectorStore", "point_id", "open_store"]

_NAMESPACE = uuid.UUID("3f6b1c3e-8d0a-4c2e-9a57-6f2d0e9b4a11")


def point_id(map_name: str, record_id: str) -> str:
    """The Qdrant point id of one record of one map (a UUID5, stable across runs and machines)."""
    return str(uuid.uuid5(_NAMESPACE, f"{map_name}\x1f{record_id}"))


@dataclass(frozen=True)
class StoreLocation:
    """Where the Qdrant collection lives. Give ``url`` for a server, else ``path`` for the embedded engine."""

    path: str | None = ".embedmap/qdrant"
    url: str | None = None
    api_key: str | None = None
    timeout_s: int = 60
    prefer_grpc: bool = False
    lock_timeout_s: float = 600.0

    @property
    def embedded(self) -> bool:
        return not self.url

    def describe(self) -> str:
        """Where the data is, for logs and metadata (never the API key)."""
        return self.url if self.url else f"embedded:{Path(self.path or '.').expanduser().resolve()}"


def _connect(location: StoreLocation):
    from qdrant_client import QdrantClient

    if not location.embedded:
        return QdrantClient(
            url=location.url,
            api_key=location.api_key,
            timeout=location.timeout_s,
            prefer_grpc=location.prefer_grpc,
        )
    folder = Path(location.path or ".embedmap/qdrant").expanduser().resolve()
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
                raise EmbedMapStoreError(
                    f"the embedded Qdrant folder {folder} is still held by another process after "
                    f"{location.lock_timeout_s:.0f} s; let it finish, or use a Qdrant server (url=...) for "
                    "concurrent writers"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


@contextmanager
def open_store(location: StoreLocation, collection: str) -> Iterator["VectorStore"]:
    """Open a connection for the duration of a block and always release it (and the folder lock)."""
    client = _connect(location)
    try:
        yield VectorStore(client, collection, location)
    finally:
        client.close()


class VectorStore:
    """A map's collection: create it, write partitions, set payloads, read points back, search."""

    def __init__(self, client: Any, collection: str, location: StoreLocation | None = None):
        self.client = client
        self.collection = collection
        self.location = location or StoreLocation()

    # -- collection -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def dimension(self) -> int | None:
        if not self.exists():
            return None
        params = self.client.get_collection(self.collection).config.params.vectors
        return int(params.size)

    def ensure_collection(self, dimension: int) -> bool:
        """Create the collection for ``dimension``-d cosine vectors; refuse a different dimension.

        Returns True when the collection was created by this call.
        """
        from qdrant_client import models

        existing = self.dimension()
        if existing is not None:
            if existing != dimension:
                raise EmbedMapStoreError(
                    f"collection {self.collection!r} holds {existing}-d vectors but these are {dimension}-d "
                    "(was the model changed?); use a new map/collection name, or drop the collection and "
                    "rebuild every partition"
                )
            return False
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=int(dimension), distance=models.Distance.COSINE),
        )
        if not self.location.embedded:  # payload indexes are a server feature; embedded mode ignores them
            for field, schema in (("partition", "keyword"), ("record_id", "keyword"), ("topic_id", "integer")):
                self.client.create_payload_index(self.collection, field, field_schema=schema)
        return True

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self.collection)

    # -- partitions -----------------------------------------------------------------------------
    @staticmethod
    def _partition_filter(partition: str | None):
        from qdrant_client import models

        if partition is None:
            return None
        return models.Filter(
            must=[models.FieldCondition(key="partition", match=models.MatchValue(value=partition))]
        )

    def count(self, partition: str | None = None) -> int:
        if not self.exists():
            return 0
        return int(self.client.count(self.collection, count_filter=self._partition_filter(partition), exact=True).count)

    def partition_point_ids(self, partition: str) -> set[str]:
        return {str(r.id) for r in self.scroll(partition=partition, with_payload=False)}

    def upsert_partition(
        self,
        partition: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
        batch_size: int = 256,
    ) -> tuple[int, int]:
        """Make the collection hold exactly these points for ``partition``.

        Upserts every point (new or changed), then deletes the partition's points whose ids are no
        longer present. Rerunning with the same input changes nothing. Returns (upserted, deleted).
        """
        from qdrant_client import models

        if len(ids) != len(vectors) or len(ids) != len(payloads):
            raise ValueError("ids, vectors and payloads must have the same length")
        if len(ids):
            self.ensure_collection(int(vectors.shape[1]))
        elif not self.exists():  # an empty partition and no collection yet: nothing to write or delete
            return 0, 0
        before = self.partition_point_ids(partition)
        for lo in range(0, len(ids), batch_size):
            points = [
                models.PointStruct(id=ids[i], vector=vectors[i].tolist(), payload={**payloads[i], "partition": partition})
                for i in range(lo, min(lo + batch_size, len(ids)))
            ]
            self.client.upsert(self.collection, points=points, wait=True)
        stale = sorted(before - set(ids))
        self.delete_points(stale)
        return len(ids), len(stale)

    def delete_points(self, ids: Sequence[str], batch_size: int = 1000) -> None:
        from qdrant_client import models

        for lo in range(0, len(ids), batch_size):
            self.client.delete(
                self.collection, points_selector=models.PointIdsList(points=list(ids[lo : lo + batch_size])), wait=True
            )

    def delete_partition(self, partition: str) -> int:
        """Remove every point of ``partition``; returns how many there were."""
        ids = sorted(self.partition_point_ids(partition))
        self.delete_points(ids)
        return len(ids)

    # -- payloads -------------------------------------------------------------------------------
    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]], batch_size: int = 512) -> None:
        """Merge per-point payload fields (``{point_id: {field: value}}``) into existing points."""
        from qdrant_client import models

        items = list(payloads.items())
        for lo in range(0, len(items), batch_size):
            ops = [
                models.SetPayloadOperation(set_payload=models.SetPayload(payload=dict(fields), points=[pid]))
                for pid, fields in items[lo : lo + batch_size]
            ]
            self.client.batch_update_points(self.collection, update_operations=ops, wait=True)

    # -- reading --------------------------------------------------------------------------------
    def scroll(
        self,
        partition: str | None = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: bool = False,
        page_size: int = 1024,
    ) -> Iterator[Any]:
        """Every point (optionally of one partition), page by page."""
        if not self.exists():
            return
        offset = None
        payload_arg = list(with_payload) if not isinstance(with_payload, bool) else with_payload
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=self._partition_filter(partition),
                limit=page_size,
                offset=offset,
                with_payload=payload_arg,
                with_vectors=with_vectors,
            )
            yield from records
            if offset is None:
                break

    def read_vectors(self, partition: str | None = None) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """(point ids, vectors as float32 (n, d), payloads) of every point, sorted by point id."""
        records = sorted(self.scroll(partition=partition, with_vectors=True), key=lambda r: str(r.id))
        ids = [str(r.id) for r in records]
        dim = self.dimension() or 0
        vectors = np.asarray([r.vector for r in records], dtype=np.float32).reshape(len(records), dim)
        return ids, vectors, [dict(r.payload or {}) for r in records]

    def neighbours(
        self, vectors: np.ndarray, k: int, min_score: float | None = None, batch_size: int = 64
    ) -> list[list[tuple[str, float]]]:
        """For each vector, the ids and scores of its ``k`` nearest points (at least ``min_score``),
        asked of Qdrant in batches."""
        from qdrant_client import models

        out: list[list[tuple[str, float]]] = []
        for lo in range(0, len(vectors), batch_size):
            requests = [
                models.QueryRequest(query=np.asarray(v, dtype=np.float32).tolist(), limit=k,
                                    score_threshold=min_score, with_payload=False)
                for v in vectors[lo : lo + batch_size]
            ]
            for response in self.client.query_batch_points(self.collection, requests=requests):
                out.append([(str(p.id), float(p.score)) for p in response.points])
        return out

    def search(
        self, vector: np.ndarray, k: int = 10, must: Mapping[str, Any] | None = None
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Top-``k`` points by cosine similarity, optionally restricted to exact payload matches."""
        from qdrant_client import models

        query_filter = None
        if must:
            query_filter = models.Filter(
                must=[models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in must.items()]
            )
        result = self.client.query_points(
            self.collection, query=np.asarray(vector, dtype=np.float32).tolist(), query_filter=query_filter,
            limit=k, with_payload=True,
        )
        return [(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]
