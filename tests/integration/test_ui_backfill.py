"""`bash scripts/ui.sh` (the README's one way to start the UI: `dg dev` on the example dg project), for
real: the project's maps (declared in YAML) load, the UI's GraphQL shows the lineage, and "Materialize
all" (an asset backfill over every partition, then the global steps) succeeds with every check passing."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from dagster_embedmap.core.store import StoreLocation, open_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
CHAIN = [["wiki_articles"], ["wiki", "documents"], ["wiki", "embeddings"], ["wiki", "collection"],
         ["wiki", "projection_model"], ["wiki", "projection"], ["wiki", "topics"], ["wiki", "map"]]
ALL_KEYS = CHAIN + [["wiki", "duplicates"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


@pytest.fixture
def dagster_dev(tmp_path):
    port = _free_port()
    (tmp_path / "dagster_home").mkdir()
    # Automation is off here, so the backfill alone is tested: automation-triggered runs would race it.
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("auto_materialize:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"), "EMBEDMAP_HOME": str(tmp_path / "maps"),
           "EMBEDMAP_DEMO_SIZE": "40", "EMBEDMAP_DEMO_BATCHES": "2"}
    log = open(tmp_path / "dagster_dev.log", "wb")
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "ui.sh"), "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _graphql(port, "{ version }")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "scripts/ui.sh (dg dev) did not start in 120 s"
                time.sleep(1)
        yield port, tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_lineage_shows_and_materialize_all_succeeds(dagster_dev):
    port, tmp_path = dagster_dev
    nodes = _graphql(port, "{ assetNodes { assetKey { path } dependencyKeys { path } isPartitioned } }")["assetNodes"]
    parents = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    chain = ["/".join(k) for k in CHAIN]
    for parent, child in zip(chain, chain[1:]):
        assert parent in parents[child]
    assert parents["wiki/projection"] == {"wiki/collection", "wiki/projection_model"}
    assert parents["wiki/duplicates"] == {"wiki/topics"}
    partitioned = {"/".join(n["assetKey"]["path"]): n["isPartitioned"] for n in nodes
                   if n["assetKey"]["path"][0].startswith("wiki")}  # the example project's other map: landing/*
    assert "landing/map" in parents
    assert partitioned == {"wiki_articles": True, "wiki/documents": True, "wiki/embeddings": True,
                           "wiki/collection": True, "wiki/projection_model": False, "wiki/projection": True,
                           "wiki/topics": False, "wiki/map": False, "wiki/duplicates": False}

    launched = _graphql(
        port,
        "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {"
        " __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
        {"p": {"assetSelection": [{"path": k} for k in ALL_KEYS], "allPartitions": True}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + 420
    status = None
    while time.monotonic() < deadline:
        status = _graphql(port, '{ partitionBackfillOrError(backfillId: "%s") { ... on PartitionBackfill { status } } }'
                          % launched["backfillId"])["partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED",):
            break
        time.sleep(3)
    log = (tmp_path / "dagster_dev.log").read_text(errors="replace")[-4000:]
    assert status == "COMPLETED_SUCCESS", (status, log)

    # every check ran and passed in the backfill's runs: per partition for the per-partition assets (2
    # batches), once for the map
    expected = {("embeddings", "embeddings_sane"): 2, ("collection", "partition_points_match_documents"): 2,
                ("projection", "every_point_projected"): 2, ("map", "collection_matches_documents"): 1,
                ("map", "every_point_mapped"): 1, ("map", "every_point_current"): 1}
    runs = {r["runId"] for r in _graphql(
        port, '{ partitionBackfillOrError(backfillId: "%s") { ... on PartitionBackfill { runs(limit: 100) { runId } } } }'
        % launched["backfillId"])["partitionBackfillOrError"]["runs"]}
    for (asset, check), count in expected.items():
        executions = _graphql(
            port, "query($k: AssetKeyInput!, $c: String!) { assetCheckExecutions(assetKey: $k, checkName: $c, limit: 50)"
            " { runId status } }", {"k": {"path": ["wiki", asset]}, "c": check})["assetCheckExecutions"]
        ours = [e for e in executions if e["runId"] in runs]
        assert len(ours) == count and all(e["status"] == "SUCCEEDED" for e in ours), (asset, check, executions)
    with open_store(StoreLocation(path=str(tmp_path / "maps" / "qdrant")), "wiki") as store:
        assert store.count() == 40
    assert (tmp_path / "maps" / "wiki" / "map.html").stat().st_size > 10_000
