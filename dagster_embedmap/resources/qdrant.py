"""The Qdrant resource: an embedded on-disk engine by default, a server or cluster by URL."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal, Optional

import dagster as dg
from pydantic import Field

from ..core.store import StoreLocation, VectorStore, open_store

__all__ = ["QdrantResource"]


class QdrantResource(dg.ConfigurableResource):
    """Where a map's collection lives. Leave ``url`` empty for the embedded engine in ``path`` (no server
    to run); set ``url`` (and ``api_key`` through ``dg.EnvVar``) for a Qdrant server or cluster. Both go
    through the same code."""

    path: str = Field(
        default=".embedmap/qdrant",
        description="Folder of the embedded engine (created if missing). Ignored when url is set.",
    )
    url: Optional[str] = Field(
        default=None, description="Qdrant server or cluster URL, e.g. https://qdrant.example.com:6333."
    )
    api_key: Optional[str] = Field(
        default=None, repr=False,
        description="API key for the server; pass dg.EnvVar('QDRANT_API_KEY'), never a literal. Sent only to "
        "the server (use an https:// URL so it travels encrypted); never logged, never in metadata or errors.",
    )
    timeout_s: int = Field(default=60, ge=1, description="Seconds before a server request times out.")
    retries: int = Field(
        default=3, ge=0,
        description="Server only: retries of a request that failed on the network (refused, timed out, 502-504), "
        "with backoff 0.5 s, 1 s, 2 s, ...; then the step fails naming the URL.",
    )
    prefer_grpc: bool = Field(default=False, description="Talk gRPC to the server instead of REST.")
    lock_timeout_s: float = Field(
        default=600.0,
        ge=0,
        description="Embedded engine only: how long a step waits for another process to release the folder.",
    )
    engine: Literal["edge", "local"] = Field(
        default="edge",
        description="Embedded engine only: 'edge' (Qdrant's in-process engine, qdrant-edge-py; fast, the default) "
        "or 'local' (qdrant-client's local mode, for maps written before edge became the default).",
    )

    shard_number: Optional[int] = Field(
        default=None, ge=1, description="Server only: shards of the collection when this creates it (spread over "
        "a cluster's nodes); None: the server's default.",
    )
    replication_factor: Optional[int] = Field(
        default=None, ge=1, description="Server only: copies of each shard in a cluster; None: the server's default.",
    )
    write_consistency_factor: Optional[int] = Field(
        default=None, ge=1, description="Server only: replicas that must confirm a write; None: the server's default.",
    )

    def location(self) -> StoreLocation:
        return StoreLocation(
            path=self.path,
            url=self.url,
            api_key=self.api_key,
            timeout_s=self.timeout_s,
            retries=self.retries,
            prefer_grpc=self.prefer_grpc,
            lock_timeout_s=self.lock_timeout_s,
            engine=self.engine,
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
            write_consistency_factor=self.write_consistency_factor,
        )

    @contextmanager
    def open(self, collection: str, read_only: bool = False) -> Iterator[VectorStore]:
        """A connection for one block of work; the embedded folder is released when it ends. ``read_only``:
        the block only reads (the embedded engine then reads even from a full disk)."""
        with open_store(self.location(), collection, read_only=read_only) as store:
            yield store
