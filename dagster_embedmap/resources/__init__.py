"""Dagster resources: the embedding model (GPU resource for inference) and the Qdrant store."""

from .embedder import EmbedderResource
from .qdrant import QdrantResource

__all__ = ["EmbedderResource", "QdrantResource"]
