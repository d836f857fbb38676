"""Errors the core raises for input a user must fix."""

from __future__ import annotations

__all__ = ["EmbedMapInputError", "EmbedMapStoreError"]


class EmbedMapInputError(ValueError):
    """Bad input: the message names the partition, the column and the record ids involved."""


class EmbedMapStoreError(RuntimeError):
    """The vector store refused an operation (wrong dimension, locked folder, unreachable server)."""
