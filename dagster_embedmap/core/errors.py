"""Errors the core raises for input a user must fix, or for a store or file that cannot be used.

Each takes the message (what is wrong, naming the partition, column, records or file) and, where the
fix is said differently to a Python user and to a user of the ``embedmap`` command, ``fix`` (in terms
of Python arguments: part of the message, which the Dagster UI shows) and ``cli_fix`` (in terms of the
command's options, which the CLI shows instead: :func:`for_cli`)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["EmbedMapInputError", "EmbedMapStoreError", "EmbedMapFileError", "EmbedMapSpaceError",
           "EmbedMapModelError", "MapBuildInterrupted", "for_cli"]


class _Explained(Exception):
    def __init__(self, message: str, *, fix: str | None = None, cli_fix: str | None = None):
        super().__init__(f"{message}; {fix}" if fix else message)
        self.what, self.fix, self.cli_fix = message, fix, cli_fix

    def __reduce__(self):  # pickles (a subprocess's error) with both fixes
        return _rebuild, (type(self), self.what, self.fix, self.cli_fix)


def _rebuild(cls: type, message: str, fix: str | None, cli_fix: str | None) -> BaseException:
    return cls(message, fix=fix, cli_fix=cli_fix)


def for_cli(error: BaseException) -> str:
    """The error's message as the CLI says it: its fix in terms of the command's options, where it has one."""
    if isinstance(error, _Explained) and error.cli_fix:
        return f"{error.what}; {error.cli_fix}"
    return str(error)


class EmbedMapInputError(_Explained, ValueError):
    """Bad input: the message names the partition, the column and the record ids involved."""


class EmbedMapStoreError(_Explained, RuntimeError):
    """The vector store refused an operation (wrong dimension, locked folder, unreachable server)."""


class EmbedMapFileError(_Explained, RuntimeError):
    """A file of the map's home cannot be read or written: the message names it, says what it holds
    and how to recover."""


class EmbedMapSpaceError(EmbedMapFileError):
    """Not enough free space where the map writes: the message names the folder and the space needed."""


class EmbedMapModelError(EmbedMapInputError):
    """The embedding model cannot be loaded here (not installed, not cached and offline, no such folder):
    the message says which package to install or which folder to pass."""


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
