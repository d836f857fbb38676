"""File layout of a map's home folder, and partition keys made safe as file names."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["partition_filename", "atomic_path", "file_lock", "MapLayout"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def partition_filename(partition_key: str) -> str:
    """A file-name stem for a partition key that cannot escape its folder.

    Readable characters are kept, everything else becomes ``_``; a short hash of the exact key is
    appended whenever the key was changed (or is long), so two keys never share a file.
    """
    cleaned = _SAFE.sub("_", partition_key).strip("._") or "partition"
    if cleaned != partition_key or len(cleaned) > 80:
        digest = hashlib.sha256(partition_key.encode("utf-8")).hexdigest()[:12]
        cleaned = f"{cleaned[:80]}-{digest}"
    return cleaned


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it over ``target`` only if the block succeeds.

    Readers therefore see either the old file or the new one, never half a file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


class MapLayout:
    """Where one map keeps its files: ``<home>/<map name>/...``."""

    def __init__(self, home: str | os.PathLike, map_name: str):
        self.home = Path(home).expanduser().resolve()
        self.root = self.home / partition_filename(map_name)

    def documents(self, partition_key: str) -> Path:
        return self.root / "documents" / f"{partition_filename(partition_key)}.parquet"

    def embeddings(self, partition_key: str) -> Path:
        return self.root / "embeddings" / f"{partition_filename(partition_key)}.parquet"

    def coordinates(self, partition_key: str) -> Path:
        return self.root / "coordinates" / f"{partition_filename(partition_key)}.parquet"

    def remove_partition_files(self, partition_key: str) -> None:
        """Forget a removed partition: its documents, embeddings, coordinates and pending mark."""
        for path in (self.documents(partition_key), self.embeddings(partition_key), self.coordinates(partition_key),
                     self.pending(partition_key)):
            path.unlink(missing_ok=True)

    # -- partitions whose points are being written ------------------------------------------------
    def pending(self, partition_key: str) -> Path:
        return self.root / "pending" / f"{partition_filename(partition_key)}.json"

    def mark_pending(self, partition_key: str, step: str) -> None:
        """Say that ``partition_key``'s points are being rewritten: until :meth:`clear_pending`, the
        collection may hold half of them, and the map's global steps leave the partition out."""
        with atomic_path(self.pending(partition_key)) as tmp:
            tmp.write_text(json.dumps({"partition": partition_key, "step": step, "since": time.time()}),
                           encoding="utf-8")

    def clear_pending(self, partition_key: str) -> None:
        self.pending(partition_key).unlink(missing_ok=True)

    def pending_partitions(self) -> set[str]:
        """Partitions whose last write into the collection started and did not finish."""
        folder = self.root / "pending"
        if not folder.is_dir():
            return set()
        keys = set()
        for path in folder.glob("*.json"):
            try:
                keys.add(str(json.loads(path.read_text(encoding="utf-8"))["partition"]))
            except (OSError, ValueError, KeyError):  # removed meanwhile, or unreadable: not ours to judge
                continue
        return keys

    @property
    def projection_model(self) -> Path:
        return self.root / "projection_model.pkl"

    @property
    def projection_model_info(self) -> Path:
        return self.root / "projection_model.json"

    @property
    def topics_state(self) -> Path:
        return self.root / "topics_state.json"

    @property
    def topics(self) -> Path:
        return self.root / "topics.parquet"


    @property
    def duplicates(self) -> Path:
        return self.root / "duplicates.parquet"

    @property
    def outliers(self) -> Path:
        return self.root / "outliers.parquet"

    @property
    def html(self) -> Path:
        return self.root / "map.html"

    @property
    def png(self) -> Path:
        return self.root / "map.png"


@contextmanager
def file_lock(
    path: str | os.PathLike, timeout_s: float | None = None, on_timeout: Callable[[], Exception] | None = None
) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``, the file created if missing) for the block.

    Waits for another holder without limit, or up to ``timeout_s`` and then raises ``on_timeout()``
    (a ``TimeoutError`` by default). Where ``flock`` does not exist (Windows) it locks nothing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout_s
            delay = 0.05
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise (on_timeout() if on_timeout else TimeoutError(f"{target} is locked")) from None
                    time.sleep(delay)
                    delay = min(delay * 1.5, 2.0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
