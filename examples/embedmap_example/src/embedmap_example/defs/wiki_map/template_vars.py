"""Values defs.yaml takes from Python: the demo map's partitions are its source asset's."""

import dagster as dg

from dagster_embedmap.examples.wiki import batches


@dg.template_var
def wiki_batches() -> list[str]:
    """The partition keys of ``wiki_articles`` (``$EMBEDMAP_DEMO_BATCHES`` batches, default 4)."""
    return batches.get_partition_keys()
