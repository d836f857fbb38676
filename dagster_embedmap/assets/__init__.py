"""The Dagster layer's assets: a factory that wires one map, and a helper that materializes it in-process."""

from .factory import MapKeys, build_embedmap_defs, default_home
from .run import MapBuildResult, materialize_map

__all__ = ["build_embedmap_defs", "MapKeys", "default_home", "materialize_map", "MapBuildResult"]
