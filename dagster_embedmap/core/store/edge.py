"""A collection in Qdrant's in-process engine (``qdrant-edge-py``), the embedded default."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence


from ..errors import EmbedMapSpaceError, EmbedMapStoreError
from ..paths import free_bytes, human_bytes, sparse_bytes

from .base import VectorStore
from .location import _INDEXED, StoreLocation, StoredPoint


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




PAYLOAD_CACHE_UP_TO = 100_000
"""Collections up to this many points keep their payloads in memory after a full read (``_matching``)."""


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
        self._payloads: dict[str, dict[str, Any]] | None = None  # see _matching
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
        self._payloads = None
        self._open().update(operation)

    def flush(self) -> None:
        """Write what this store changed to disk (the shard stays open)."""
        if self._shard is not None and not self.read_only:
            self._shard.flush()

    def close(self) -> None:
        self._payloads = None
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
        cached = self._payloads
        for pid, fields in payloads.items():
            self._update(qe.UpdateOperation.set_payload([pid], dict(fields)))
        if cached is not None and all(pid in cached for pid in payloads):
            for pid, fields in payloads.items():  # what set_payload did: the given fields replaced, the rest kept
                cached[pid].update(fields)
            self._payloads = cached

    def _matching(self, must, with_payload=False, with_vectors=False, page_size=2048):
        """As :meth:`VectorStore._matching`; the payloads of every point (no filter, no vectors) are read
        once per opening of a collection of up to :data:`PAYLOAD_CACHE_UP_TO` points and kept, kept
        current by this store's payload writes and dropped by any other write (two steps of one
        in-process run, topics then the map, each read them all). Each point's payload is a copy."""
        if must is not None or with_payload is not True or with_vectors:
            yield from super()._matching(must, with_payload, with_vectors, page_size)
            return
        if self._payloads is None:
            if self.count() > PAYLOAD_CACHE_UP_TO:
                yield from super()._matching(None, True, False, page_size)
                return
            self._payloads = {p.id: p.payload for p in super()._matching(None, True, False, max(page_size, 16384))}
        for pid, payload in self._payloads.items():
            yield StoredPoint(pid, dict(payload), None)

    def _scroll_page(self, must, limit, offset, with_payload, with_vectors):
        import qdrant_edge as qe

        records, offset = self._open().scroll(qe.ScrollRequest(
            offset=offset, limit=limit, filter=self._filter(must), with_payload=with_payload,
            with_vector=with_vectors,
        ))
        # each read of ``r.payload`` builds a new dict, the point's own: read once, not copied again
        return [StoredPoint(str(r.id), r.payload or {}, list(r.vector) if with_vectors else None)
                for r in records], offset

    def _retrieve(self, ids, with_payload, with_vectors=False):
        records = self._open().retrieve(list(ids), with_payload, with_vectors)
        return [StoredPoint(str(r.id), dict(r.payload or {}), list(r.vector) if with_vectors else None)
                for r in records]

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
