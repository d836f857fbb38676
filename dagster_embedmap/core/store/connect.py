"""Opening a collection: the engine a location names, locks, and retries against a server."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack, contextmanager
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


class _Kept:
    """The embedded shards a :func:`keep_open` block holds open, by shard folder, with their locks."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.stores: dict[str, tuple[EdgeStore, ExitStack]] = {}

    def close(self) -> None:
        for store, lock in self.stores.values():
            try:
                store.close()
            finally:
                lock.close()
        self.stores.clear()


_kept: _Kept | None = None


@contextmanager
def keep_open() -> Iterator[None]:
    """Within the block, embedded collections opened by :func:`open_store` in this thread stay open (and
    locked) from their first opening to the end of the block, instead of being loaded again by every
    step of an in-process run (a shard's load is 0.1-0.3 s). Each ``open_store`` block still ends with
    the shard's writes flushed to disk, so a step that succeeded is on disk whatever happens next; a
    block that raises closes its shard (the next one loads it from disk again). Nested blocks share the
    outer one. For runs in one process only: other processes wait for the lock until the block ends."""
    global _kept
    if _kept is not None:
        yield
        return
    _kept = _Kept()
    try:
        yield
    finally:
        kept, _kept = _kept, None
        kept.close()


@contextmanager
def _kept_store(location: StoreLocation, collection: str, kept: _Kept) -> Iterator["VectorStore"]:
    probe = EdgeStore(collection, location)
    key = str(probe.shard_path)
    if key not in kept.stores:
        lock = ExitStack()
        held = lambda: EmbedMapStoreError(_wait_note(location, Path(f"shard {probe.shard_path}")))  # noqa: E731
        lock.enter_context(file_lock(probe.lock_path, location.lock_timeout_s, held))
        kept.stores[key] = (probe, lock)
    store, lock = kept.stores[key]
    try:
        yield store
    except BaseException:
        del kept.stores[key]
        try:
            store.close()
        finally:
            lock.close()
        raise
    store.flush()


@contextmanager
def open_store(location: StoreLocation, collection: str, read_only: bool = False) -> Iterator["VectorStore"]:
    """Open the collection for the duration of a block and always release it (and the embedded lock).

    ``read_only`` promises not to write: the embedded engine then reads even from a full disk (see
    :class:`EdgeStore`). Inside :func:`keep_open` an embedded collection stays open between blocks."""
    kept = _kept
    if location.embedded and location.engine == "edge" and kept is not None and kept.thread == threading.get_ident():
        with _kept_store(location, collection, kept) as store:
            yield store
        return
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
