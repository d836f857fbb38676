"""Example code location: a data map of Wikipedia vital-article summaries.

A user asset, ``wiki_articles``, produces one polars DataFrame per batch (partition); the factory
builds the map from it. Settings come from the environment:

- ``EMBEDMAP_HOME``       where the map's files and the embedded Qdrant live (default ``./.embedmap``)
- ``EMBEDMAP_DEMO_SIZE``  how many articles (default 2000, from the 11 categories; ``full`` for all
  10,033, the 1,000 'Uncategorized' ones included)
- ``EMBEDMAP_DEMO_BATCHES`` how many partitions to split them into (default 4)
"""


import os

import dagster as dg
import polars as pl

from dagster_embedmap import build_embedmap_defs, default_home, embedmap_resources
from dagster_embedmap.core.records.datasets import load_wiki_summaries

MAP_NAME = "wiki"


def demo_size() -> int | None:
    raw = os.environ.get("EMBEDMAP_DEMO_SIZE", "2000")
    return None if raw.strip().lower() in ("full", "all") else int(raw)


BATCHES = int(os.environ.get("EMBEDMAP_DEMO_BATCHES", "4"))
batches = dg.StaticPartitionsDefinition([f"batch-{i:03d}" for i in range(BATCHES)])


@dg.asset(
    partitions_def=batches,
    group_name=MAP_NAME,
    kinds={"polars"},
    description="Wikipedia vital-article summaries (CC BY-SA 4.0) with their category, one batch per partition.",
)
def wiki_articles(context: dg.AssetExecutionContext) -> pl.DataFrame:
    size = demo_size()
    frame = load_wiki_summaries(n=size, batches=BATCHES, include_uncategorized=size is None)
    part = frame.filter(pl.col("batch") == context.partition_key).drop("batch")
    context.add_output_metadata({"dagster/row_count": part.height})
    return part


def map_defs(home=None, classifiers=()) -> dg.Definitions:
    """The demo map's definitions in ``home`` (default: ``$EMBEDMAP_HOME`` or ``./.embedmap``), with
    these :class:`~dagster_embedmap.ClassifierSpec`\ s (``embedmap classify`` adds them)."""
    home = home or default_home()
    return dg.Definitions.merge(
        dg.Definitions(assets=[wiki_articles]),
        build_embedmap_defs(
            MAP_NAME,
            source=wiki_articles,
            id_column="id",
            text_column="text",
            metadata_columns=["category", "description"],
            home=home,
            classifiers=classifiers,
        ),
        dg.Definitions(resources=embedmap_resources(home)),
    )


defs = map_defs()
