"""The Qdrant resource: an embedded on-disk engine by default, a server or cluster by URL."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal, Optional

import dagster as dg

from ..core.store import StoreLocation, VectorStore, open_store
from .fields import field_of, settings_from

__all__ = ["QdrantResource"]


class QdrantResource(dg.ConfigurableResource):
    """Where a map's collection lives. Leave ``url`` empty for the embedded engine in ``path`` (no server
    to run); set ``url`` (and ``api_key`` through ``dg.EnvVar``) for a Qdrant server or cluster. Both go
    through the same code."""

    # each field's default, description and bounds: StoreLocation (core/store/location.py)
    path: str = field_of(StoreLocation, "path")
    url: Optional[str] = field_of(StoreLocation, "url")
    api_key: Optional[str] = field_of(StoreLocation, "api_key")
    timeout_s: int = field_of(StoreLocation, "timeout_s")
    retries: int = field_of(StoreLocation, "retries")
    prefer_grpc: bool = field_of(StoreLocation, "prefer_grpc")
    lock_timeout_s: float = field_of(StoreLocation, "lock_timeout_s")
    engine: Literal["edge", "local"] = field_of(StoreLocation, "engine")
    shard_number: Optional[int] = field_of(StoreLocation, "shard_number")
    replication_factor: Optional[int] = field_of(StoreLocation, "replication_factor")
    write_consistency_factor: Optional[int] = field_of(StoreLocation, "write_consistency_factor")

    def location(self) -> StoreLocation:
        return settings_from(self, StoreLocation)

    @contextmanager
    def open(self, collection: str, read_only: bool = False) -> Iterator[VectorStore]:
        """A connection for one block of work; the embedded folder is released when it ends. ``read_only``:
        the block only reads (the embedded engine then reads even from a full disk)."""
        with open_store(self.location(), collection, read_only=read_only) as store:
            yield store
