"""Layout: the 2-D map.

- :mod:`.project`  fit a UMAP projection on a content-ordered sample and place every point with it
- :mod:`.align`    keep a refitted layout where the previous one was (Procrustes onto shared points)
"""
