"""The Dagster layer's assets: a factory that wires one map through a translator, and a helper that
materializes it in-process."""

from .factory import build_embedmap_defs, default_home
from .keys import MapKeys
from .run import MapBuildResult, materialize_map
from .translator import EmbedMapStepProps, EmbedMapTranslator

__all__ = ["build_embedmap_defs", "MapKeys", "default_home", "materialize_map", "MapBuildResult",
           "EmbedMapTranslator", "EmbedMapStepProps"]
