"""Drive Dagster's declarative automation in a test, as its daemon would."""

from __future__ import annotations

import dagster as dg


def drive_automation(defs: dg.Definitions, instance: dg.DagsterInstance, state: dict, rounds: int = 8) -> list[set[str]]:
    """Evaluate the automation conditions and run what they request, until nothing more is requested
    (``state`` carries the daemon's cursor between calls). Each round's requests run one run per
    partition, upstream first (as the backfill the daemon launches would order them). Returns what each
    round requested ("key" or "key[partition]")."""
    graph = defs.resolve_asset_graph()
    order = {key: i for i, key in enumerate(graph.toposorted_asset_keys)}
    history = []
    for _ in range(rounds):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state.get("cursor"))
        state["cursor"] = result.cursor
        if not result.total_requested:
            return history
        requested, by_partition = set(), {}
        for key in graph.get_all_asset_keys():
            if not result.get_num_requested(key):
                continue
            for partition in result.get_requested_partitions(key):
                requested.add(key.to_user_string() + (f"[{partition}]" if partition else ""))
                by_partition.setdefault(partition, []).append(key)
        history.append(requested)
        runs = sorted(by_partition.items(), key=lambda kv: (min(order[k] for k in kv[1]), kv[0] or ""))
        for partition, keys in runs:
            assert dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys), partition_key=partition,
                                  instance=instance, resources=defs.resources).success
    raise AssertionError(f"automation did not settle: {history}")
