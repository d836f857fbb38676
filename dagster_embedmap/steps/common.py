"""What the steps share: the log they write to, how they open the store, reading the documents."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import polars as pl

from ..core.paths import Log, MapLayout, read_or_set_aside
from ..core.store import VectorStore

__all__ = ["Check", "NullLog", "StoreOpener", "read_documents", "pending_partitions", "without_pending", "Log"]

StoreOpener = Callable[[], AbstractContextManager[VectorStore]]
"""Opens the map's collection for one block of work (``QdrantResource.open(collection)``, or
``lambda: open_store(location, collection)``)."""


class NullLog:
    """A log that drops everything."""

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass


@dataclass
class Check:
    """The outcome of one asset check."""

    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


def read_documents(layout: MapLayout, partition: str, rematerialize: str) -> pl.DataFrame:
    """A partition's documents file. Missing or unreadable, it fails naming the file and the step
    (``rematerialize``) that writes it again from the source; an unreadable one is set aside first."""
    path = layout.documents(partition)
    frame = read_or_set_aside(path, pl.read_parquet, holds=f"the validated records of partition {partition!r}",
                              fix=f"materialize {rematerialize} for the partition: it writes them again from the source")
    if frame is None:
        raise FileNotFoundError(f"{path}: partition {partition!r} has no documents yet; materialize "
                                f"{rematerialize} for it first")
    return frame


def pending_partitions(layout: MapLayout, map_name: str, rematerialize: str, log: Log) -> set[str]:
    """Partitions whose points are half written (a collection step interrupted): left off, said loudly."""
    pending = layout.pending_partitions()
    if pending:
        log.warning(
            f"partition(s) {sorted(pending)} of map {map_name!r} were interrupted while writing their points; they "
            f"are left out until {rematerialize} is materialized for them again"
        )
    return pending


def without_pending(layout: MapLayout, map_name: str, rematerialize: str, log: Log, ids: list[str],
                    vectors: np.ndarray, payloads: list[dict]) -> tuple[list[str], np.ndarray, list[dict]]:
    """``store.read_vectors()``'s points without those of partitions whose points are half written."""
    pending = pending_partitions(layout, map_name, rematerialize, log)
    if not pending:
        return ids, vectors, payloads
    keep = [i for i, p in enumerate(payloads) if p.get("partition") not in pending]
    return [ids[i] for i in keep], vectors[keep], [payloads[i] for i in keep]
