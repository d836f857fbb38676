"""Where a map's collection lives (:class:`StoreLocation`), its point ids and the points read back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..settings import setting





_NAMESPACE = uuid.UUID("3f6b1c3e-8d0a-4c2e-9a57-6f2d0e9b4a11")
# payload fields the pipeline filters by: indexed where the engine supports it
_INDEXED = (("partition", "keyword"), ("record_id", "keyword"), ("topic_id", "integer"))


def point_id(map_name: str, record_id: str) -> str:
    """The Qdrant point id of one record of one map (a UUID5, stable across runs and machines)."""
    return str(uuid.uuid5(_NAMESPACE, f"{map_name}\x1f{record_id}"))


@dataclass(frozen=True)
class StoreLocation:
    """Where the Qdrant collection lives. Give ``url`` for a server, else ``path`` for the embedded engine."""

    path: str | None = setting(
        ".embedmap/qdrant",
        """Folder of the embedded engine (created if missing). Ignored when url is set.""")
    url: str | None = setting(
        None,
        """Qdrant server or cluster URL, e.g. https://qdrant.example.com:6333.""")
    api_key: str | None = setting(
        None,
        """API key for the server; pass dg.EnvVar('QDRANT_API_KEY'), never a literal. Sent only to the server
        (use an https:// URL so it travels encrypted); never logged, never in metadata or errors (left out
        of ``repr`` and of :meth:`describe`).""", secret=True)
    timeout_s: int = setting(
        60,
        """Seconds before a server request times out.""", ge=1)
    prefer_grpc: bool = setting(
        False,
        """Talk gRPC to the server instead of REST.""")
    lock_timeout_s: float = setting(
        600.0,
        """Embedded engine only: how long a step waits for another process to release the folder.""", ge=0)
    retries: int = setting(
        3,
        """Server only: retries of a request that failed on the network (refused, timed out, 502-504), with
        backoff 0.5 s, 1 s, 2 s, ...; then the step fails naming the URL.""", ge=0)
    engine: Literal["edge", "local"] = setting(
        "edge",
        """Embedded engine only: 'edge' (Qdrant's in-process engine, qdrant-edge-py; fast, the default) or
        'local' (qdrant-client's local mode, for maps written before edge became the default).""")
    shard_number: int | None = setting(
        None,
        """Server only: shards of the collection when this creates it (spread over a cluster's nodes); None:
        the server's default.""", ge=1)
    replication_factor: int | None = setting(
        None,
        """Server only: copies of each shard in a cluster; None: the server's default.""", ge=1)
    write_consistency_factor: int | None = setting(
        None,
        """Server only: replicas that must confirm a write; None: the server's default.""", ge=1)

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
