"""Errors the core raises for input a user must fix, or for a store or file that cannot be used."""

from __future__ import annotations

from typing import Sequence

__all__ = ["EmbedMapInputError", "EmbedMapStoreError", "EmbedMapFileError", "EmbedMapSpaceError", "MapBuildInterrupted"]


class EmbedMapInputError(ValueError):
    """Bad input: the message names the partition, the column and the record ids involved."""


class EmbedMapStoreError(RuntimeError):
    """The vector store refused an operation (wrong dimension, locked folder, unreachable server)."""


class EmbedMapFileError(RuntimeError):
    """A file of the map's home cannot be read or written: the message names it, says what it holds
    and how to recover."""


class EmbedMapSpaceError(EmbedMapFileError):
    """Not enough free space where the map writes: the message names the folder and the space needed."""


class MapBuildInterrupted(Exception):
    """The build was interrupted (Ctrl-C, SIGTERM): where it stopped, and which partitions were already
    written to the collection (``written``) and placed on the map (``placed``)."""

    def __init__(self, stage: str, written: Sequence[str], placed: Sequence[str], partitions: Sequence[str]):
        self.stage, self.written, self.placed, self.partitions = stage, list(written), list(placed), list(partitions)

        def some(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

        only_written = [p for p in self.written if p not in self.placed]
        parts = []
        if self.placed:
            parts.append(f"partition(s) {some(self.placed)} are written and placed")
        if only_written:
            parts.append(f"partition(s) {some(only_written)} are written to the collection, not yet placed")
        done = "; ".join(parts) if parts else f"none of the {len(self.partitions)} partition(s) was finished"
        super().__init__(f"interrupted during {stage}; {done}")
