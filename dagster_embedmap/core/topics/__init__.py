"""Topics: the neighbourhoods of the map at every level.

- :mod:`.cluster`  fine topics: HDBSCAN cores, joined by constrained Ward linkage, every point assigned
- :mod:`.merge`    the constrained, size-weighted Ward linkage both levels use
- :mod:`.tree`     the topic tree: broad neighbourhoods over the fine topics
- :mod:`.labels`   name the topics of every level (c-TF-IDF candidates ranked by the model)
- :mod:`.match`    keep topic ids stable from one update to the next
- :mod:`.model`    one update of a map's topics: clusters, tree and labels, ids kept stable
- :mod:`.quality`  how well topics agree with known labels (NMI, ARI, label accuracy)
"""
