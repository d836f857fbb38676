"""The pure core of dagster-embedmap: plain functions and classes, no Dagster import.

One subpackage per stage of the flow, in flow order:

- :mod:`.records`    read records from files, validate and hash them; the bundled demo corpus
- :mod:`.embedding`  texts to vectors with sentence-transformers or its ONNX export (device, precision)
- :mod:`.store`      the only place that knows Qdrant: collections, partitions, the payload schema
                     (:mod:`.store.payload`), semantic search, near-duplicates and outliers
- :mod:`.layout`     fit the 2-D projection (UMAP), place points with it, align refits
- :mod:`.topics`     fine topics (HDBSCAN + Ward), the topic tree, labels, stable ids, quality scores
- :mod:`.render`     the PNG preview and the standalone HTML map (its JS/CSS/HTML in ``render/static``)
- :mod:`.classify`   custom semantic classifiers over the vectors: examples, descriptions, or both

and two helpers every stage uses: :mod:`.errors` (the errors users see) and :mod:`.paths` (a map's
files: atomic writes, locks, disk space).

Heavy libraries (torch, sentence-transformers, umap, hdbscan, SciPy, Pillow) are imported inside the
functions that need them, so importing this package stays cheap.
"""
