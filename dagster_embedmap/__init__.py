"""dagster-embedmap: turn a text collection into an explorable, lineage-tracked data map in Dagster.

    import dagster as dg
    from dagster_embedmap import FileSource, build_embedmap_defs, embedmap_resources

    defs = dg.Definitions.merge(
        build_embedmap_defs("articles", FileSource("data/*.jsonl"), text_column="body"),
        dg.Definitions(resources=embedmap_resources()),
    )

Importing this package loads nothing heavy: each name below loads its module on first use (Dagster
and polars for most; torch, sentence-transformers, umap and hdbscan only inside the steps that use
them), so ``embedmap`` commands that need no Dagster run start in a fraction of a second.
"""

from __future__ import annotations

import importlib
import os

__version__ = "0.1.0"

_WHERE = {
    "build_embedmap_defs": ".assets", "materialize_map": ".assets", "MapKeys": ".assets",
    "EmbedMapTranslator": ".assets", "EmbedMapStepProps": ".assets", "default_home": ".assets",
    "EmbedMapComponent": ".components", "k8s_gpu_tags": ".k8s", "FileSource": ".core.records.sources",
    "EmbedderResource": ".resources", "QdrantResource": ".resources",
    "ProjectionSettings": ".core.layout.project", "ClusterSettings": ".core.topics.cluster",
    "LabelSettings": ".core.topics.labels", "ClassifierSpec": ".core.classify",
    "ClassifierSettings": ".core.classify",
    "ImageSettings": ".core.records.images",
}
"""Where each public name lives (loaded on first use, see :func:`__getattr__`)."""


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:  # dg's component registry lists the package's names with dir()
    return sorted(set(globals()) | set(_WHERE))

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
    "ClassifierSpec",
    "ClassifierSettings",
    "ImageSettings",
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

    from .assets import default_home
    from .resources import EmbedderResource, QdrantResource

    folder = os.path.abspath(os.path.expanduser(str(home or default_home())))
    if os.environ.get(QDRANT_URL_ENV):
        qdrant = QdrantResource(
            url=dg.EnvVar(QDRANT_URL_ENV),
            api_key=dg.EnvVar(QDRANT_API_KEY_ENV) if os.environ.get(QDRANT_API_KEY_ENV) else None,
        )
    else:
        qdrant = QdrantResource(path=os.path.join(folder, "qdrant"))
    return {"embedder": EmbedderResource(**embedder), "qdrant": qdrant}
