"""dagster-embedmap: turn a text collection into an explorable, lineage-tracked data map in Dagster.

    import dagster as dg
    from dagster_embedmap import FileSource, build_embedmap_defs, embedmap_resources

    defs = dg.Definitions.merge(
        build_embedmap_defs("articles", FileSource("data/*.jsonl"), text_column="body"),
        dg.Definitions(resources=embedmap_resources()),
    )

Importing this package loads Dagster and polars only; torch, sentence-transformers, umap and
hdbscan load inside the steps that use them.
"""

from __future__ import annotations

import os

from .assets import EmbedMapStepProps, EmbedMapTranslator, MapKeys, build_embedmap_defs, default_home, materialize_map
from .core.topics.cluster import ClusterSettings
from .core.topics.labels import LabelSettings
from .core.layout.project import ProjectionSettings
from .components import EmbedMapComponent
from .core.records.sources import FileSource
from .k8s import k8s_gpu_tags
from .resources import EmbedderResource, QdrantResource

__version__ = "0.1.0"

__all__ = [
    "build_embedmap_defs",
    "embedmap_resources",
    "EmbedMapComponent",
    "k8s_gpu_tags",
    "materialize_map",
    "MapKeys",
    "EmbedMapTranslator",
    "EmbedMapStepProps",
    "FileSource",
    "EmbedderResource",
    "QdrantResource",
    "ProjectionSettings",
    "ClusterSettings",
    "LabelSettings",
    "default_home",
]


QDRANT_URL_ENV = "EMBEDMAP_QDRANT_URL"
QDRANT_API_KEY_ENV = "EMBEDMAP_QDRANT_API_KEY"


def embedmap_resources(home: str | os.PathLike | None = None, **embedder: object) -> dict[str, object]:
    """The default resources: the bundled model on the best device, and Qdrant.

    Qdrant is the embedded engine in ``<home>/qdrant``, unless ``$EMBEDMAP_QDRANT_URL`` names a server
    or cluster; its API key then comes from ``$EMBEDMAP_QDRANT_API_KEY``. Both are read through
    ``dg.EnvVar`` at run time, so neither value is stored with the definitions or shown in the UI.
    Keyword arguments go to :class:`EmbedderResource`.
    """
    import dagster as dg

    folder = os.path.abspath(os.path.expanduser(str(home or default_home())))
    if os.environ.get(QDRANT_URL_ENV):
        qdrant = QdrantResource(
            url=dg.EnvVar(QDRANT_URL_ENV),
            api_key=dg.EnvVar(QDRANT_API_KEY_ENV) if os.environ.get(QDRANT_API_KEY_ENV) else None,
        )
    else:
        qdrant = QdrantResource(path=os.path.join(folder, "qdrant"))
    return {"embedder": EmbedderResource(**embedder), "qdrant": qdrant}
