"""The operations every engine shares (idempotent partition upserts, reads, search) over a few primitives."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import EmbedMapInputError, EmbedMapStoreError

from .location import StoreLocation, StoredPoint


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

    def _retrieve(self, ids: Sequence[str], with_payload: bool | list[str], with_vectors: bool = False) -> list[StoredPoint]:
        """The points with these ids that exist (their vectors too with ``with_vectors``)."""
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
                    f"these are {dimension}-d (was the model changed?); nothing was written",
                    fix=f"to migrate, either (1) write to a new collection, e.g. build_embedmap_defs(..., "
                        f"collection_name='{self.collection}_{dimension}d'), and materialize every partition into it "
                        "(the old map stays readable meanwhile), or (2) rebuild in place: drop the collection "
                        "(VectorStore.drop(), or delete it on the server) and materialize every partition again",
                    cli_fix=f"build with the model (--model) or the --vector-column the map was built with, or build "
                            f"the new vectors as a new map: add --name {self.collection}_{dimension}d (the old map "
                            "stays readable), or use a new --home",
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
        return self.payloads_of(ids, ["partition", "record_id"], batch_size)

    def payloads_of(self, ids: Sequence[str], fields: Sequence[str], batch_size: int = 1024) -> dict[str, dict[str, Any]]:
        """``{point id: {field: value}}`` (the payload ``fields`` it has) for those of ``ids`` stored."""
        out: dict[str, dict[str, Any]] = {}
        if not self.exists():
            return out
        for lo in range(0, len(ids), batch_size):
            for point in self._retrieve(list(ids[lo : lo + batch_size]), list(fields)):
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

    def vectors_of(self, ids: Sequence[str], batch_size: int = 1024) -> dict[str, np.ndarray]:
        """``{point id: vector (float32)}`` for those of ``ids`` that exist, asked for in batches."""
        ids = list(ids)
        out: dict[str, np.ndarray] = {}
        for lo in range(0, len(ids), batch_size):
            for r in self._retrieve(ids[lo:lo + batch_size], False, with_vectors=True):
                out[r.id] = np.asarray(r.vector, dtype=np.float32)
        return out

    def read_vectors(self, partition: str | None = None, with_payload: bool | Sequence[str] = True,
                     ) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """(point ids, vectors as float32 (n, d), payloads: all, the ``with_payload`` fields, or none
        with False) of every point, sorted by point id."""
        records = sorted(self.scroll(partition=partition, with_payload=with_payload, with_vectors=True),
                         key=lambda r: r.id)
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
