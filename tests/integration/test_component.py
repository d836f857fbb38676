"""EmbedMapComponent: maps declared in defs.yaml, loaded from a sandboxed defs folder the way `dg`
and `dagster dev` load a project, and materialized for real."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from dagster_embedmap import EmbedMapComponent, MapKeys, QdrantResource
from dagster_embedmap.core.store import StoreLocation, open_store

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "embedmap_example"
DG = str(Path(sys.executable).with_name("dg"))


def _component(sandbox, folder: str, attributes: dict) -> Path:
    return sandbox.scaffold_component(
        component_cls=EmbedMapComponent, defs_path=folder,
        defs_yaml_contents={"type": "dagster_embedmap.EmbedMapComponent", "attributes": attributes},
    )


def _load_error(sandbox, defs_path) -> str:
    """The whole chain of the error that loading raises."""
    with pytest.raises(Exception) as err:
        with sandbox.load_component_and_build_defs(defs_path=defs_path):
            pass
    messages, cause = [], err.value
    while cause is not None:
        messages.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return "\n".join(messages)


def test_a_landing_folder_map_from_yaml_materializes_a_partition(tmp_path, wiki_small, monkeypatch):
    monkeypatch.setenv("EMBEDMAP_TEST_GPU_NODE", "nvidia-l4")
    monkeypatch.setenv("EMBEDMAP_TEST_DEVICE", "cpu")
    with create_defs_folder_sandbox() as sandbox:
        landing = sandbox.project_root / "landing"
        landing.mkdir()
        wiki_small.head(12).write_ndjson(landing / "day1.jsonl")
        wiki_small.slice(12, 12).write_ndjson(landing / "day2.jsonl")
        defs_path = _component(sandbox, "tickets_map", {
            "name": "tickets",
            "source": {"path": "landing/*.jsonl"},
            "metadata_columns": ["category"],
            "home": "maps",
            "embedding": {"model": "all-MiniLM-L6-v2", "device": "{{ env.EMBEDMAP_TEST_DEVICE }}", "batch_size": 32},
            "topics": {"levels": 2},
            "schedule": {"refit_cron": "0 4 * * *", "sensor_interval_s": 60, "max_runs_per_tick": 3},
            "gpu": {"pool": "gpu", "kubernetes_gpus": 1,
                    "kubernetes_node_selector": {"cloud.google.com/gke-accelerator": "{{ env.EMBEDMAP_TEST_GPU_NODE }}"}},
        })
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, EmbedMapComponent)
            keys = MapKeys.for_map("tickets")
            assets = {key for a in defs.assets for key in a.keys}
            assert set(keys.per_partition) | {keys.projection_model, keys.topics, keys.map} <= assets
            # per-map resources, the landing sensor, the refit schedule, the GPU tags
            assert set(defs.resources) == {"tickets_embedder", "tickets_qdrant"}
            embedder = defs.resources["tickets_embedder"]
            assert (embedder.model, embedder.device, embedder.batch_size) == ("all-MiniLM-L6-v2", "cpu", 32)
            assert defs.resources["tickets_qdrant"].path == str(sandbox.project_root / "maps" / "qdrant")
            sensor = defs.get_sensor_def("tickets_landing_sensor")
            assert sensor.minimum_interval_seconds == 60
            assert defs.get_schedule_def("tickets_refit_schedule").cron_schedule == "0 4 * * *"
            embeddings = defs.get_assets_def(keys.embeddings)
            tags = embeddings.op.tags
            k8s = json.loads(tags["dagster-k8s/config"])  # Dagster keeps tag values as JSON strings
            assert k8s["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": 1}
            assert k8s["pod_spec_config"]["node_selector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
            assert embeddings.op.pool == "gpu"  # the concurrency pool that keeps GPU steps from oversubscribing
            pdef = embeddings.partitions_def
            assert isinstance(pdef, dg.DynamicPartitionsDefinition)

            with dg.instance_for_test() as instance:
                instance.add_dynamic_partitions(pdef.name, ["day1", "day2"])
                result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys.ingest),
                                        partition_key="day2", instance=instance, resources=defs.resources)
                assert result.success
        with open_store(StoreLocation(path=str(sandbox.project_root / "maps" / "qdrant")), "tickets") as store:
            assert store.count() == 12 and store.count("day2") == 12
            assert {r.payload["record_id"] for r in store.scroll()} == set(wiki_small.slice(12, 12)["id"])


def test_an_asset_source_with_time_windows_and_a_server_from_the_environment(monkeypatch):
    monkeypatch.setenv("EMBEDMAP_TEST_QDRANT_URL", "https://qdrant.example:6333")
    monkeypatch.setenv("EMBEDMAP_TEST_QDRANT_KEY", "not-in-the-definitions")
    with create_defs_folder_sandbox() as sandbox:
        defs_path = _component(sandbox, "news_map", {
            "name": "news",
            "source": {"asset_key": "raw/news"},
            "text_column": "body",
            "partitions": {"type": "daily", "start": "2026-01-01"},
            "qdrant": {"url": "{{ env.EMBEDMAP_TEST_QDRANT_URL }}", "api_key_env_var": "EMBEDMAP_TEST_QDRANT_KEY",
                       "shard_number": 3, "replication_factor": 2},
        })
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (_, defs):
            keys = MapKeys.for_map("news")
            documents = defs.get_assets_def(keys.documents)
            assert isinstance(documents.partitions_def, dg.DailyPartitionsDefinition)
            assert dg.AssetKey(["raw", "news"]) in documents.dependency_keys
            qdrant = defs.resources["news_qdrant"]
            assert isinstance(qdrant, QdrantResource) and qdrant.url == "https://qdrant.example:6333"
            assert isinstance(qdrant.api_key, dg.EnvVar) and qdrant.api_key.env_var_name == "EMBEDMAP_TEST_QDRANT_KEY"
            assert "not-in-the-definitions" not in repr(qdrant)
            with dg.build_resources({"q": qdrant}) as built:  # resolved at run time
                location = built.q.location()
            assert location.api_key == "not-in-the-definitions"
            assert location.collection_options() == {"shard_number": 3, "replication_factor": 2}


def test_classifiers_declared_in_yaml_become_their_assets(monkeypatch):
    with create_defs_folder_sandbox() as sandbox:
        defs_path = _component(sandbox, "tickets_map", {
            "name": "tickets", "source": {"asset_key": "raw/tickets"}, "text_column": "body",
            "classifiers": [
                {"name": "kind", "examples": "labels/kind.csv", "min_macro_f1": 0.7},
                {"name": "guess", "descriptions": {"billing": "invoices and refunds", "login": "passwords"},
                 "threshold": 0.6},
                {"name": "tags", "examples_asset": "raw/ticket_tags", "multi_label": True},
            ],
        })
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            train = defs.get_assets_def(dg.AssetKey(["tickets", "classifier_kind"]))
            classes = defs.get_assets_def(dg.AssetKey(["tickets", "classes_guess"]))
            assert [c.name for c in train.check_specs] == ["cross_validated_macro_f1"]
            assert classes.partitions_def is not None and "tickets_qdrant" in classes.required_resource_keys
            guess = defs.get_assets_def(dg.AssetKey(["tickets", "classifier_guess"]))
            assert {"tickets_qdrant", "tickets_embedder"} <= guess.required_resource_keys  # descriptions: the model
            spec = component.classifiers[0].spec(Path(sandbox.project_root))
            assert spec.examples == str(Path(sandbox.project_root) / "labels" / "kind.csv")
            assert component.classifiers[1].spec(Path("/")).settings.threshold == 0.6
            tags = defs.get_assets_def(dg.AssetKey(["tickets", "classifier_tags"]))  # below the labels asset
            assert dg.AssetKey(["raw", "ticket_tags"]) in tags.dependency_keys
            assert component.classifiers[2].spec(Path("/")).settings.multi_label is True
            assert dg.AssetKey(["tickets", "classes_tags"]) in defs.get_assets_def(dg.AssetKey(["tickets", "map"])) \
                .asset_deps[dg.AssetKey(["tickets", "map"])]

        pictures = _component(sandbox, "pictures_map", {"name": "pictures", "source": {"path": "img/*.csv"},
                                                        "text_column": "caption", "image_column": "path",
                                                        "bad_image": "fail"})
        with sandbox.load_component_and_build_defs(defs_path=pictures) as (component, defs):
            assert component.image_column == "path" and component.bad_image == "fail"
            assert defs.get_assets_def(dg.AssetKey(["pictures", "documents"])) is not None
        bad = _component(sandbox, "bad_classifier", {"name": "m", "source": {"path": "x/*.jsonl"},
                                                     "classifiers": [{"name": "Kind"}]})
        assert "classifier name 'Kind'" in _load_error(sandbox, bad)


@pytest.mark.parametrize("attributes, fragments", [
    ({"name": "m", "source": {"path": "x/*.jsonl"}, "text_colum": "body"}, ["attributes.text_colum", "defs.yaml:"]),
    ({"name": "m", "source": {"path": "x/*.jsonl"}, "topics": {"level": 2}}, ["attributes.topics.", ".level",
                                                                               "Extra inputs are not permitted"]),
    ({"name": "m", "source": {"path": "x/*.jsonl"}, "embedding": {"batch_size": "many"}},
     ["attributes.embedding", "batch_size", "valid integer"]),
    ({"name": "m", "source": {"pth": "x/*.jsonl"}}, ["attributes.source.", ".pth"]),
    ({"name": "m", "source": {"path": "x/*.jsonl"}, "partitions": {"type": "daily"}},
     ["partitions: type 'daily' needs a 'start' date"]),
    ({"name": "m", "source": {}}, ["source: give exactly one of 'path' (files) or 'asset_key'"]),
    ({"name": "m", "source": {"path": "x/*.jsonl"}, "empty_text": "drop"}, ["empty_text", "Input should be 'skip' or 'fail'"]),
], ids=["top-level typo", "nested typo", "wrong type", "source typo", "time window without start",
        "source without a kind", "value not allowed"])
def test_a_bad_field_is_named_in_the_error(attributes, fragments):
    with create_defs_folder_sandbox() as sandbox:
        defs_path = _component(sandbox, "bad_map", attributes)
        message = _load_error(sandbox, defs_path)
    for fragment in fragments:
        assert fragment in message, message[:2000]


def test_the_scaffolded_defs_yaml_loads_and_names_the_map_after_its_folder():
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.scaffold_component(component_cls=EmbedMapComponent, defs_path="support_tickets")
        text = (defs_path / "defs.yaml").read_text()
        assert "EmbedMapComponent" in text and "name: support_tickets" in text
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert component.name == "support_tickets"
            assert defs.get_sensor_def("support_tickets_landing_sensor") is not None


def _dg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([DG, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


def test_dg_checks_the_example_project_and_names_a_wrong_field(tmp_path):
    checked = _dg("check", "defs", cwd=EXAMPLE)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    # a copy of the landing map's defs.yaml with a typo: dg check yaml points at the field and line
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".embedmap", "landing", "*.egg-info"))
    defs_yaml = copy / "src" / "embedmap_example" / "defs" / "landing_map" / "defs.yaml"
    doc = yaml.safe_load(defs_yaml.read_text())
    doc["attributes"]["text_colum"] = doc["attributes"].pop("text_column")
    defs_yaml.write_text(yaml.safe_dump(doc))
    bad = _dg("check", "yaml", str(defs_yaml.parent), cwd=copy)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "'text_colum' was unexpected" in out, out[-3000:]
    listed = _dg("list", "components", "--json", cwd=EXAMPLE)
    assert "dagster_embedmap.EmbedMapComponent" in listed.stdout
    # dg scaffold writes a defs.yaml that dg check yaml accepts as it is
    scaffolded = _dg("scaffold", "defs", "dagster_embedmap.EmbedMapComponent", "support_tickets", cwd=copy)
    assert scaffolded.returncode == 0, scaffolded.stdout[-2000:] + scaffolded.stderr[-2000:]
    new_yaml = copy / "src" / "embedmap_example" / "defs" / "support_tickets" / "defs.yaml"
    assert "type: dagster_embedmap.EmbedMapComponent" in new_yaml.read_text()
    ok = _dg("check", "yaml", str(new_yaml.parent), cwd=copy)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]


def test_the_example_project_holds_the_demo_map_and_the_landing_map():
    checked = subprocess.run(
        [sys.executable, "-c", "import dagster as dg; from embedmap_example.definitions import defs; "
         "d = defs(); print(sorted(k.to_user_string() for a in d.assets for k in a.keys))"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert checked.returncode == 0, checked.stderr[-3000:]
    keys = checked.stdout
    assert "wiki_articles" in keys and "wiki/map" in keys and "landing/map" in keys


def test_the_readme_yaml_builds_as_written(monkeypatch):
    """The defs.yaml shown in the README is valid and builds what it says."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("# defs/support_tickets/defs.yaml\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("QDRANT_URL", "https://qdrant.example:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "kept-out-of-the-config")
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.scaffold_component(component_cls=EmbedMapComponent, defs_path="support_tickets",
                                               defs_yaml_contents=yaml.safe_load(block))
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            keys = MapKeys.for_map("support_tickets")
            embeddings = defs.get_assets_def(keys.embeddings)
            assert embeddings.backfill_policy.max_partitions_per_run == 8
            assert "dagster-k8s/config" in embeddings.op.tags and embeddings.op.pool == "gpu"
            qdrant = defs.resources["support_tickets_qdrant"]
            assert qdrant.url == "https://qdrant.example:6333" and isinstance(qdrant.api_key, dg.EnvVar)
            assert (qdrant.shard_number, qdrant.replication_factor) == (4, 2)
            assert component.projection.sample_size == 20000 and component.labels.label_words == 3
            kind = component.classifiers[0]
            assert kind.name == "kind" and kind.min_macro_f1 == 0.7 and "billing" in kind.descriptions
            assert defs.get_assets_def(dg.AssetKey(["support_tickets", "classes_kind"])).partitions_def is not None
