"""The pure core of dagster-embedmap: plain functions and classes, no Dagster import.

One module per stage of the flow:

- :mod:`.documents`  validate a polars frame of records (id, text, metadata) and hash its texts
- :mod:`.embed`      turn texts into vectors with sentence-transformers (device, precision, batching)
- :mod:`.store`      the only place that knows Qdrant: collections, partitions, payloads, search
- :mod:`.project`    fit a 2-D projection (UMAP) and place points with it
- :mod:`.cluster`    find topics among the 2-D points (HDBSCAN) and give every point one
- :mod:`.hierarchy`  the topic tree: broad neighbourhoods over those topics
- :mod:`.label`      name the topics of every level with class-based TF-IDF keywords and phrases
- :mod:`.topic_model` one update of a map's topics: clusters, tree and labels, ids kept stable
- :mod:`.search` / :mod:`.duplicates`  semantic search, near-duplicates and outliers through Qdrant
- :mod:`.render`     the PNG preview and the standalone HTML map
- :mod:`.sources`    read records from parquet / CSV / JSONL files
- :mod:`.datasets`   the bundled demo corpus (Wikipedia vital-article summaries)

Heavy libraries (torch, sentence-transformers, umap, hdbscan, matplotlib) are imported inside the
functions that need them, so importing this package stays cheap.
"""
