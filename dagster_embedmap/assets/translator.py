"""How a map's steps become Dagster assets: an overridable translator, one ``get_*`` method per concern.

Subclass :class:`EmbedMapTranslator` and pass it as ``build_embedmap_defs(..., translator=...)`` to give
the assets other keys, groups, descriptions, owners, tags, kinds or automation conditions::

    class MyTranslator(EmbedMapTranslator):
        def get_asset_key(self, props):
            return dg.AssetKey(["analytics", props.map_name, props.step])

        def get_owners(self, props):
            return ["team:search"]

Each method gets the step's :class:`EmbedMapStepProps` (the map's name, the step, and what the factory
would use by default) and returns one attribute of its :class:`dagster.AssetSpec`. What the steps need to
run together (dependencies, partitions, checks, resources) is not the translator's: the factory wires it
from the translated keys. :meth:`dagster_embedmap.MapKeys.of` reads the translated keys back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import dagster as dg

__all__ = ["EmbedMapStepProps", "EmbedMapTranslator"]


@dataclass(frozen=True)
class EmbedMapStepProps:
    """One step of one map, as the factory would make it into an asset by default."""

    map_name: str
    step: str
    """One of :data:`dagster_embedmap.assets.keys.STEPS` (``documents`` ... ``duplicates``)."""
    key: dg.AssetKey
    group_name: str
    description: str
    kinds: frozenset[str]
    automation_condition: dg.AutomationCondition | None
    partitioned: bool
    """Per partition (documents, embeddings, collection, projection) or global."""
    metadata: Mapping[str, Any] = field(default_factory=dict)


class EmbedMapTranslator:
    """The default translation: the props as they are. Override any ``get_*`` method."""

    def get_asset_spec(self, props: EmbedMapStepProps) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=self.get_asset_key(props),
            group_name=self.get_group_name(props),
            description=self.get_description(props),
            owners=self.get_owners(props),
            tags=self.get_tags(props),
            kinds=self.get_kinds(props),
            automation_condition=self.get_automation_condition(props),
            metadata=self.get_metadata(props),
        )

    def get_asset_key(self, props: EmbedMapStepProps) -> dg.AssetKey:
        return props.key

    def get_group_name(self, props: EmbedMapStepProps) -> str | None:
        return props.group_name

    def get_description(self, props: EmbedMapStepProps) -> str | None:
        return props.description

    def get_owners(self, props: EmbedMapStepProps) -> list[str] | None:
        return None

    def get_tags(self, props: EmbedMapStepProps) -> Mapping[str, str] | None:
        return None

    def get_kinds(self, props: EmbedMapStepProps) -> set[str] | None:
        return set(props.kinds)

    def get_automation_condition(self, props: EmbedMapStepProps) -> dg.AutomationCondition | None:
        return props.automation_condition

    def get_metadata(self, props: EmbedMapStepProps) -> Mapping[str, Any] | None:
        return dict(props.metadata)
