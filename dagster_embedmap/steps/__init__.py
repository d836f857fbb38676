"""The map's steps as plain functions: one per asset, no Dagster import.

Each takes the map's layout on disk, a way to open its Qdrant collection, its settings and a ``log``
(anything with ``info`` and ``warning``: Dagster's ``context.log``, a ``logging.Logger``), does the work
(files written atomically, points upserted idempotently) and returns a result dataclass with what it
did. The asset layer (:mod:`dagster_embedmap.assets.bodies`) calls them and turns results into
metadata and check results; tests and tools call them directly.

- :mod:`.ingest`  per partition: documents, embeddings (only changed records), the partition's points
- :mod:`.layout`  the layout model (fitted on a sample) and each partition's placement
- :mod:`.topics`  the topic tree over the whole map, kept stable between runs
- :mod:`.render`  the map drawn from the store (PNG, HTML) and its checks
- :mod:`.duplicates`  near-duplicate pairs and topic outliers
- :mod:`.classify`  custom classifiers: train from labelled records / descriptions, tag each partition
- :mod:`.audit`   does every point agree with its record: text, vector, place and topic
"""

from .audit import PointAudit, audit_points
from .common import Check, NullLog, StoreOpener
from .duplicates import DuplicatesResult, find_duplicates
from .ingest import DocumentsResult, EmbeddingsResult, PointsResult, embed_partition, write_documents, write_points
from .layout import LayoutFit, Placement, fit_layout, load_layout_model, place_partition
from .render import MapRender, render_map
from .topics import TopicsResult, refresh_topics

__all__ = [
    "Check", "NullLog", "StoreOpener",
    "DocumentsResult", "EmbeddingsResult", "PointsResult", "write_documents", "embed_partition", "write_points",
    "LayoutFit", "Placement", "fit_layout", "load_layout_model", "place_partition",
    "TopicsResult", "refresh_topics",
    "PointAudit", "audit_points",
    "MapRender", "render_map", "DuplicatesResult", "find_duplicates",
]
