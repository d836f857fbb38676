"""The demo corpus as a partitioned asset: Wikipedia vital-article summaries (CC BY-SA 4.0), one
polars DataFrame per batch. ``wiki_map/defs.yaml`` maps it."""

from dagster_embedmap.examples.wiki import wiki_articles

__all__ = ["wiki_articles"]
