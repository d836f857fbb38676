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


from .base import VectorStore
from .client import ClientStore
from .connect import keep_open, open_store
from .edge import EdgeStore
from .location import StoreLocation, StoredPoint, point_id

__all__ = ["StoreLocation", "VectorStore", "ClientStore", "EdgeStore", "StoredPoint", "point_id", "open_store", "keep_open"]
