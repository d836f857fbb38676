"""Records: the raw input of a map.

- :mod:`.sources`    read records from parquet / CSV / JSONL files
- :mod:`.documents`  validate a polars frame of records (id, text, metadata) and hash its texts
- :mod:`.datasets`   the bundled demo corpus (Wikipedia vital-article summaries)
"""
