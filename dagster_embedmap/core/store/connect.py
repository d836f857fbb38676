"""Opening a collection: the engine a location names, locks, and retries against a server."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


from ..errors import EmbedMapStoreError
from ..paths import file_lock

from .client import ClientStore
from .edge import EdgeStore
from .base import VectorStore
from .location import StoreLocation


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
