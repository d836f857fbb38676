"""The asset factory through an overridden translator: other keys, group, owners and tags, and the
changed graph materialized for real (embedded Qdrant, given vectors so no model loads)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl

from dagster_embedmap import (
    EmbedMapStepProps, EmbedMapTranslator, FileSource, MapKeys, build_embedmap_defs, embedmap_resources,
    materialize_map,
)
from dagster_embedmap.assets.keys import STEPS


class SearchTeamTranslator(EmbedMapTranslator):
    def get_asset_key(self, props: EmbedMapStepProps) -> dg.AssetKey:
        return dg.AssetKey(["analytics", "maps", props.map_name, f"{props.step}_v2"])

    def get_group_name(self, props: EmbedMapStepProps) -> str:
        return "search_maps"

    def get_owners(self, props: EmbedMapStepProps) -> list[str]:
        return ["team:search", "ana@example.com"] if props.partitioned else ["team:search"]

    def get_tags(self, props: EmbedMapStepProps) -> dict[str, str]:
        return {"tier": "gold", "stage": props.step}

    def get_description(self, props: EmbedMapStepProps) -> str:
        return f"[search team] {props.description}"


def _corpus(landing, n=60, dim=16):
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, dim)) * 4
    words = ["galaxy orbit telescope", "tomato garlic sauce", "striker goal penalty"]
    rows = [{"id": f"r{i}", "text": f"{words[i % 3]} number {i}",
             "emb": (centres[i % 3] + rng.normal(size=dim)).astype(np.float32).tolist()} for i in range(n)]
    frame = pl.DataFrame(rows)
    landing.mkdir()
    frame.head(n // 2).write_parquet(landing / "a.parquet")
    frame.tail(n - n // 2).write_parquet(landing / "b.parquet")
    return frame


def test_a_translator_renames_regroups_and_tags_every_asset_and_the_graph_still_builds(tmp_path):
    _corpus(tmp_path / "landing")
    name = "shelf"
    defs = dg.Definitions.merge(
        build_embedmap_defs(name, FileSource(str(tmp_path / "landing" / "*.parquet")), vector_column="emb",
                            home=str(tmp_path / "home"), translator=SearchTeamTranslator()),
        dg.Definitions(resources=embedmap_resources(str(tmp_path / "home"))),
    )
    keys = MapKeys.of(defs, name)
    assert [keys.key(s) for s in STEPS] == [dg.AssetKey(["analytics", "maps", name, f"{s}_v2"]) for s in STEPS]
    specs = {k: spec for a in defs.assets for k, spec in a.specs_by_key.items()}
    assert set(specs) == {keys.key(s) for s in STEPS}
    for step in STEPS:
        spec = specs[keys.key(step)]
        assert spec.group_name == "search_maps"
        assert spec.tags["tier"] == "gold" and spec.tags["stage"] == step
        assert "team:search" in spec.owners
        assert spec.description.startswith("[search team] ")
    # the wiring follows the new keys: dependencies, checks and jobs
    assert {d.asset_key for d in specs[keys.projection].deps} == {keys.collection, keys.projection_model}
    checks = {(c.asset_key, c.name) for a in defs.assets for c in a.check_specs}
    assert (keys.map, "every_point_current") in checks and (keys.embeddings, "embeddings_sane") in checks
    assert defs.resolve_job_def("shelf_map").asset_layer.executable_asset_keys == {keys.topics, keys.map}

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = materialize_map(defs, keys, instance=instance, log_level="WARNING")
        assert result.success
        assert all(result.check_results().values()), result.check_results()
        for step in STEPS[:-1]:  # duplicates is on demand
            assert instance.get_latest_materialization_event(keys.key(step)) is not None, step
        assert instance.get_latest_materialization_event(dg.AssetKey([name, "map"])) is None
        topics = result.metadata(keys.topics)
        assert topics["topics"] >= 2
    assert (tmp_path / "home" / name / "map.html").stat().st_size > 10_000
