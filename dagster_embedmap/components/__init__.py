"""Dagster components of dagster-embedmap (registered for ``dg`` through the
``dagster_dg_cli.registry_modules`` entry point)."""

from .embedmap import EmbedMapComponent

__all__ = ["EmbedMapComponent"]
