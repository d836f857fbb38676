"""Errors the core raises for input a user must fix, or for a store or file that cannot be used."""

from __future__ import annotations

__all__ = ["EmbedMapInputError", "EmbedMapStoreError", "EmbedMapFileError", "EmbedMapSpaceError"]


class EmbedMapInputError(ValueError):
    """Bad input: the message names the partition, the column and the record ids involved."""


class EmbedMapStoreError(RuntimeError):
    """The vector store refused an operation (wrong dimension, locked folder, unreachable server)."""


class EmbedMapFileError(RuntimeError):
    """A file of the map's home cannot be read or written: the message names it, says what it holds
    and how to recover."""


class EmbedMapSpaceError(EmbedMapFileError):
    """Not enough free space where the map writes: the message names the folder and the space needed."""
