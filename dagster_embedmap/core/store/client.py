"""A collection through ``qdrant_client``: a server or cluster, or the client's local mode."""

from __future__ import annotations

from typing import Any, Mapping, Sequence



from .base import VectorStore
from .location import _INDEXED, StoreLocation, StoredPoint


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

    def _retrieve(self, ids, with_payload, with_vectors=False):
        records = self.client.retrieve(self.collection, ids=list(ids), with_payload=with_payload,
                                       with_vectors=with_vectors)
        return [StoredPoint(str(r.id), dict(r.payload or {}), list(r.vector) if with_vectors else None)
                for r in records]

    def _query(self, vectors, k, must, min_score, with_payload):
        from qdrant_client import models

        flt = self._filter(must)
        requests = [models.QueryRequest(query=v.tolist(), limit=k, score_threshold=min_score, filter=flt,
                                        with_payload=with_payload) for v in vectors]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        return [[(str(p.id), float(p.score), dict(p.payload or {})) for p in r.points] for r in responses]
