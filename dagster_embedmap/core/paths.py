"""File layout of a map's home folder, and partition keys made safe as file names."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TypeVar

from .errors import EmbedMapFileError, EmbedMapSpaceError

__all__ = ["partition_filename", "atomic_path", "file_lock", "MapLayout", "set_aside", "read_or_set_aside",
           "read_json_state", "write_json", "free_bytes", "sparse_bytes", "human_bytes", "is_out_of_space",
           "out_of_space_error"]

T = TypeVar("T")


class Log(Protocol):
    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...

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
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        except Exception as exc:
            if is_out_of_space(exc):
                raise out_of_space_error(target, exc) from None
            raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def is_out_of_space(exc: BaseException) -> bool:
    """True for a failed write because the device is full (``ENOSPC``/``EDQUOT``, also as polars and
    SQLite word it)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "os error 28" in text or "database or disk is full" in text


def out_of_space_error(target: str | os.PathLike, exc: BaseException | None = None) -> EmbedMapSpaceError:
    target = Path(target)
    folder = target.parent if not target.is_dir() else target
    return EmbedMapSpaceError(
        f"no space left on the device holding {folder} while writing {target.name} "
        f"({human_bytes(free_bytes(folder))} free); the file it would replace is unchanged. Free some space "
        "there or give the map another home (--home / home=), then rerun: what was done is kept"
    )


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged writer can still use on the device holding ``path`` (its nearest existing
    folder)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    st = os.statvfs(folder)
    return int(st.f_bavail) * int(st.f_frsize)


def sparse_bytes(folder: str | os.PathLike) -> int:
    """Bytes the files under ``folder`` may still take on disk: their length minus what is allocated
    (the holes of sparse files, which memory-mapped writes fill)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            allocated = getattr(st, "st_blocks", 0) * 512
            total += max(0, st.st_size - allocated)
    return total


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


# -- derived files that cannot be read ------------------------------------------------------------


def set_aside(path: str | os.PathLike) -> Path:
    """Rename an unreadable file to ``<name>.corrupt-<UTC time>`` beside it (kept for inspection, out of
    every reader's way) and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, aside)
    return aside


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def read_or_set_aside(path: str | os.PathLike, read: Callable[[Path], T], *, holds: str, then: str | None = None,
                      fix: str | None = None, log: Log | None = None) -> T | None:
    """``read(path)``; None when the file does not exist.

    A file that exists but cannot be read is set aside (:func:`set_aside`) and named with what it
    ``holds``. With ``then`` (what happens instead, e.g. "every record of the partition is embedded
    again") that is logged as a warning and None is returned: the caller rebuilds what the file held.
    Without it, :class:`EmbedMapFileError` says so and how to recover (``fix``).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read(path)
    except Exception as exc:
        if isinstance(exc, EmbedMapFileError) or is_out_of_space(exc):
            raise
        reason = _reason(exc)
        try:
            aside = set_aside(path)
        except OSError:
            aside = None
        where = f"; it was set aside as {aside.name}" if aside is not None else ""
        message = f"{path} could not be read ({reason}); it holds {holds}{where}"
        if then is None:
            raise EmbedMapFileError(message + (f". {fix[0].upper()}{fix[1:]}" if fix else "")) from None
        if log is not None:
            log.warning(f"{message}, and {then}")
        return None


def read_json_state(path: str | os.PathLike, *, holds: str, then: str | None = None, fix: str | None = None,
                    log: Log | None = None) -> dict:
    """A JSON object kept in the home ({} when missing); unreadable: as :func:`read_or_set_aside`."""

    def read(p: Path) -> dict:
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        return data

    return read_or_set_aside(path, read, holds=holds, then=then, fix=fix, log=log) or {}


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


DEFAULT_HOME = ".embedmap"
"""The folder of a map's files when neither the caller nor ``$EMBEDMAP_HOME`` names one."""


def default_home() -> str:
    """``$EMBEDMAP_HOME``, else ``./.embedmap`` (:data:`DEFAULT_HOME`)."""
    return os.environ.get("EMBEDMAP_HOME") or DEFAULT_HOME


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


    def classifier(self, name: str) -> Path:
        """A trained classifier's arrays (``np.savez``; :meth:`SemanticClassifier.to_state`)."""
        return self.root / "classifiers" / f"{partition_filename(name)}.npz"

    def classifier_names(self) -> list[str]:
        """The map's trained classifiers, by name."""
        folder = self.root / "classifiers"
        return sorted(p.stem for p in folder.glob("*.npz")) if folder.is_dir() else []

    def classifier_info(self, name: str) -> Path:
        """What a classifier was trained on and how well it did (JSON)."""
        return self.root / "classifiers" / f"{partition_filename(name)}.json"

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
    path: str | os.PathLike, timeout_s: float | None = None, on_timeout: Callable[[], Exception] | None = None,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``, the file created if missing) for the block.

    Waits for another holder without limit, or up to ``timeout_s`` and then raises ``on_timeout()``
    (a ``TimeoutError`` by default); ``on_wait()`` is called once when the lock is taken and this has to
    wait. Where ``flock`` does not exist (Windows) it locks nothing.
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
        acquired = False
        if on_wait is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
            except BlockingIOError:
                on_wait()
        if not acquired and timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        elif not acquired:
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
